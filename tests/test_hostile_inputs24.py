"""Hostile data of issue 24: training weights that would copy rows without end (items 8), and
prompts holding the characters other readers take for line breaks (item 12). Each case was a
traceback, a machine out of memory or a record cut in two before it was fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tela_core.data import mix
from tela_core.data import sample_path
from tela_core.testkit import TelaCli


# -- item 8: weights -----------------------------------------------------------------------------

def test_a_huge_weight_on_the_command_line_is_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    """--weight 1e9 was a MemoryError traceback (1e6 grew to 4.7 GB first)."""
    data, out = sample_path(), tmp_path / "r"
    for weight in ("1e9", "1e6", "1e12", "1e300"):
        line = tela_cli.error("run", "--family", "length", "--data", data, "--data", data,
                              "--weight", "1", "--weight", weight, "--output", out)
        assert "source2" in line and "at most 10,000" in line, line
        assert not out.exists()


def test_a_huge_weight_in_a_mix_file_is_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    """mix: weight 1e12 was an OverflowError traceback."""
    config = tmp_path / "run.yaml"
    config.write_text(f"mix:\n  - data: {sample_path()}\n  - data: {sample_path()}\n    weight: 1e12\n", encoding="utf-8")
    line = tela_cli.error("run", "--family", "length", "--config", config, "--output", tmp_path / "r")
    assert str(config) in line and "mix entry 2" in line and "at most 10,000" in line, line


def test_weights_that_make_too_many_rows_are_refused_before_any_copy(tmp_path: Path, tela_cli: TelaCli,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A weight under the bound on a large source can still make more rows than memory holds: the
    rows are counted first and the source that adds the most is named with the bound."""
    monkeypatch.setattr(mix, "MAX_WEIGHTED_ROWS", 5_000)
    data, out = sample_path(), tmp_path / "r"
    line = tela_cli.error("run", "--family", "length", "--data", data, "--data", data,
                          "--weight", "1", "--weight", "100", "--output", out)
    assert f"{data} (source2): weight 100" in line and "at most 5,000 training rows" in line, line
    assert not out.exists()
    # under the bound, the weights apply as before
    records, origins = mix.weigh(list(range(10)), [0] * 5 + [1] * 5, [1, 3.4])
    assert len(records) == 5 + 17 and origins.count(1) == 17


def test_weights_of_one_keep_a_large_source_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound is on rows that weights add: data larger than it, unweighted, trains as it is."""
    monkeypatch.setattr(mix, "MAX_WEIGHTED_ROWS", 10)
    records, _ = mix.weigh(list(range(50)), [0] * 25 + [1] * 25, [1, 0.4])
    assert len(records) == 25 + 10
