"""Records are checked once, in the core, whichever source made them: a plugin's source cannot hand
tela a label of 7 or an outcome of 2.0, and a missing path is one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tela_core import Record, Source, hookimpl
from tela_core.data.records import seed_record
from tela_core.testkit.helpers import TelaCli

BAD: dict[str, Any] = {}


class Loose(Source):
    """Yields whatever the test puts in BAD["records"], without checking it."""

    name = "loose"

    def read(self, path: Path) -> Iterator[Record]:
        yield from BAD["records"]


class Plugin:
    @hookimpl
    def tela_register_sources(self, register):
        register(Loose)


@pytest.fixture()
def loose(tmp_path: Path, register_plugin: Any) -> Path:
    register_plugin(Plugin(), "loose-plugin")
    f = tmp_path / "data.txt"
    f.write_text("anything\n")
    return f


@pytest.mark.parametrize(
    "record, message",
    [
        (Record(prompt="q", label=7), "label must be an integer 1..5"),
        (Record(prompt="q", outcomes={"a": 2.0, "b": 1.0}), "outcomes['a'] must be in [0, 1], got 2.0"),
        (Record(prompt="q", outcomes={"a": float("nan")}), "outcomes['a'] must be a finite number"),
        (Record(prompt="q", costs={"a": -1.0}), "costs['a'] must be >= 0"),
        (Record(prompt="  "), "prompt must be a non-empty string"),
        ({"prompt": "q"}, "a source must yield tela_core.Record objects, got dict"),
    ],
)
def test_every_command_refuses_a_bad_record_from_any_source(
    loose: Path, record: Any, message: str, tela_cli: TelaCli
) -> None:
    BAD["records"] = [Record(prompt="fine", outcomes={"a": 1.0, "b": 0.0}), record]
    for cmd in (
        ["data", "check", "--source", "loose", str(loose)],
        ["run", "--source", "loose", "--data", str(loose), "--family", "length", "--output", str(loose.parent / "r")],
        ["eval", "--router", "random", "--source", "loose", "--data", str(loose), "-o", str(loose.parent / "e")],
    ):
        res = tela_cli(*cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert f"{loose}: record #2 (from source 'loose'): {message}" in res.output, res.output
        assert "Traceback" not in res.output
    assert not (loose.parent / "r").exists() and not (loose.parent / "e").exists()


def test_a_missing_path_is_one_line_for_any_source(loose: Path, tela_cli: TelaCli) -> None:
    res = tela_cli("data", "check", "--source", "loose", loose.parent / "nope.txt")
    assert res.exit_code == 2 and "nope.txt: file or folder not found" in res.output and "Traceback" not in res.output


def test_seed_record_refuses_a_label_outside_1_to_5() -> None:
    assert seed_record("q", 5).label == 5
    for label in (0, 7, True, 2.5):
        with pytest.raises(ValueError, match="a score label is an integer 1..5"):
            seed_record("q", label)  # type: ignore[arg-type]
