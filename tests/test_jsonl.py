"""The ``jsonl`` source: the seed's format, every bad-input case, and tela's extra keys.

Each bad case is checked through the CLI as a user meets it: ``FILE:LINE: message`` on the
output, exit code 2, and no output file (``tela data sample`` and ``tela data convert`` both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tela_core import InputError
from tela_core.data.prompts import SYSTEM_PROMPT, user_content
from tela_core.plugins.discovery import get_registry
from tela_core.testkit.helpers import TelaCli


def seed_obj(question: str = "What is 2+2?", label: str = "[[5]]", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_content(question)},
            {"role": "assistant", "content": label},
        ],
        "prompt": question,
    }
    obj.update(extra)
    return obj


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


def good(**kw: Any) -> str:
    return json.dumps(seed_obj(**kw))


def read(path: Path, **options: Any) -> list[Any]:
    return list(get_registry().create("source", "jsonl", options).read(path))


def test_reads_valid_file_and_skips_blank_lines(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "d.jsonl", [good(label="[[1]]"), "", "   ", good(question="Q2", label="[[4]]")])
    recs = read(f)
    assert [r.label for r in recs] == [1, 4]
    assert recs[1].prompt == "Q2"
    assert recs[0].messages[0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_extra_keys_are_read_into_the_record(tmp_path: Path) -> None:
    obj = seed_obj(outcomes={"weak": 1, "strong": 0.5}, costs={"weak": 0.001}, group="anatomy", id=7)
    f = write_lines(tmp_path / "d.jsonl", [json.dumps(obj)])
    (r,) = read(f)
    assert r.outcomes == {"weak": 1.0, "strong": 0.5}
    assert r.costs == {"weak": 0.001}
    assert r.group == "anatomy"
    assert r.id == "7"
    assert r.to_json()["outcomes"] == {"weak": 1.0, "strong": 0.5}


def test_unlabelled_records_allowed_when_asked(tmp_path: Path) -> None:
    obj = seed_obj()
    obj["messages"] = obj["messages"][:2]
    f = write_lines(tmp_path / "d.jsonl", [json.dumps(obj)])
    with pytest.raises(InputError, match=r"d\.jsonl:1: the last message must be the assistant's score"):
        read(f)
    (r,) = read(f, require_label=False)
    assert r.label is None


def test_records_with_outcomes_and_no_label_are_training_data(
    tmp_path: Path, tela_cli: TelaCli, isolated_cache
) -> None:
    """What `tela feedback` and `tela judge` over N models write (outcomes, no [[k]]) trains a family
    that learns from outcomes with no extra flag; a line with neither says how to read prompts."""
    models = ("small", "mid", "big")
    lines = []
    for i in range(40):
        obj = seed_obj(f"Prove lemma {i} about limits." if i % 2 else f"Say hello to guest {i}.")
        obj["messages"] = obj["messages"][:2]  # no [[k]]: the outcomes are the training signal
        model = models[i % 3]  # a verdict rates the one model that answered
        obj["outcomes"] = {model: 1.0 if model == "big" or i % 2 == 0 else 0.0}
        obj["costs"] = {model: {"small": 1e-5, "mid": 5e-5, "big": 3e-4}[model]}
        lines.append(json.dumps(obj))
    f = write_lines(tmp_path / "records.jsonl", lines)
    recs = read(f)
    assert len(recs) == 40 and recs[0].label is None and recs[1].outcomes == {"mid": 0.0}
    r = tela_cli("run", "--data", f, "--family", "embedding-knn", "-o", tmp_path / "knn")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "knn" / "models.json").read_text())["models"] == list(models)

    bare = seed_obj()
    bare["messages"] = bare["messages"][:2]
    bare_file = write_lines(tmp_path / "bare.jsonl", [json.dumps(bare)])
    err = tela_cli.error("run", "--data", bare_file, "--family", "embedding-knn", "-o", tmp_path / "o")
    assert "bare.jsonl:1:" in err and '"outcomes"' in err and "--set source.require_label=false" in err


def _msgs(**change: Any) -> str:
    obj = seed_obj()
    for k, v in change.items():
        idx, field = k.split("_", 1)
        obj["messages"][int(idx[1:])][field] = v
    return json.dumps(obj)


BAD_CASES: list[tuple[str, list[str | bytes], int, str]] = [
    ("non-utf8", [good(), b'{"prompt": "caf\xe9"}'], 2, "not valid UTF-8"),
    ("bad-json", [good(), good(), '{"messages": [}'], 3, "invalid JSON"),
    ("not-object", [good(), "[1, 2]"], 2, "expected a JSON object"),
    ("missing-messages", [json.dumps({"prompt": "x"})], 1, 'missing field "messages"'),
    ("missing-prompt", [good(), json.dumps({"messages": seed_obj()["messages"]})], 2, 'missing field "prompt"'),
    ("empty-prompt", [good(question=" ")], 1, '"prompt" must be a non-empty string'),
    ("unknown-role", [good(), _msgs(m1_role="human")], 2, "unknown role 'human'"),
    ("label-6", [good(), good(), good(label="[[6]]")], 3, "k in 1..5"),
    ("label-0", [good(label="[[0]]")], 1, "k in 1..5"),
    ("label-text", [good(label="five")], 1, "k in 1..5"),
    ("empty-content", [good(), _msgs(m1_content="")], 2, "content must be a non-empty string"),
    ("missing-content", [json.dumps({"prompt": "x", "messages": [{"role": "user"}]})], 1, 'with "role" and "content"'),
    ("no-label", [json.dumps({**seed_obj(), "messages": seed_obj()["messages"][:2]})], 1, "assistant's score"),
    ("outcome-range", [good(outcomes={"m": 1.5})], 1, "must be in [0, 1]"),
    ("outcome-type", [good(outcomes={"m": "yes"})], 1, "must be a number"),
    ("outcome-bool", [good(outcomes={"m": True})], 1, "must be a number"),
    ("costs-negative", [good(costs={"m": -1})], 1, "must be >= 0"),
    ("group-type", [good(group=["a"])], 1, '"group" must be a string'),
]


@pytest.mark.parametrize("lines,line,message", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
@pytest.mark.parametrize("command", ["sample", "convert", "check"])
def test_bad_input_names_file_and_line_exit_2_no_output(
    tmp_path: Path, lines: list[str | bytes], line: int, message: str, command: str, tela_cli: TelaCli
) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", lines)
    out = tmp_path / "out.jsonl"
    args = {
        "sample": ["data", "sample", "--n", "1", str(bad), str(out)],
        "convert": ["data", "convert", "--source", "jsonl", str(bad), str(out)],
        "check": ["data", "check", str(bad)],
    }[command]
    result = tela_cli(*args)
    assert result.exit_code == 2, result.output
    assert f"{bad}:{line}: " in result.output
    assert message in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.jsonl"]  # no temp file left either


def test_bad_json_names_the_column_of_its_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    """A line cut short is reported where it ends, not as "column 1" (json read the newline as a line 2)."""
    bad = write_lines(tmp_path / "bad.jsonl", [good(), '{"prompt": "x", ', good()])
    result = tela_cli("data", "check", bad)
    assert result.exit_code == 2
    assert f"{bad}:2: invalid JSON: Expecting property name enclosed in double quotes (column 17)" in result.output


def test_missing_file_is_a_clean_error(tmp_path: Path, tela_cli: TelaCli) -> None:
    result = tela_cli("data", "check", "--source", "jsonl", tmp_path / "nope.jsonl")
    assert result.exit_code == 2
    assert "nope.jsonl: file or folder not found" in result.output


def test_empty_input_is_an_error_and_writes_nothing(tmp_path: Path, tela_cli: TelaCli) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    out = tmp_path / "out.jsonl"
    result = tela_cli("data", "convert", empty, out)
    assert result.exit_code == 2
    assert f"{empty}: no records" in result.output
    assert not out.exists()
