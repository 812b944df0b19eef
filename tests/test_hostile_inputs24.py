"""Hostile data of issue 24: training weights that would copy rows without end (items 8), and
prompts holding the characters other readers take for line breaks (item 12). Each case was a
traceback, a machine out of memory or a record cut in two before it was fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tela_core.data import mix, sample_path
from tela_core.testkit import TelaCli

# -- item 8: weights -----------------------------------------------------------------------------


def test_a_huge_weight_on_the_command_line_is_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    """--weight 1e9 was a MemoryError traceback (1e6 grew to 4.7 GB first)."""
    data, out = sample_path(), tmp_path / "r"
    for weight in ("1e9", "1e6", "1e12", "1e300"):
        line = tela_cli.error(
            "run",
            "--family",
            "length",
            "--data",
            data,
            "--data",
            data,
            "--weight",
            "1",
            "--weight",
            weight,
            "--output",
            out,
        )
        assert "source2" in line and "at most 10,000" in line, line
        assert not out.exists()


def test_a_huge_weight_in_a_mix_file_is_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    """mix: weight 1e12 was an OverflowError traceback."""
    config = tmp_path / "run.yaml"
    config.write_text(
        f"mix:\n  - data: {sample_path()}\n  - data: {sample_path()}\n    weight: 1e12\n", encoding="utf-8"
    )
    line = tela_cli.error("run", "--family", "length", "--config", config, "--output", tmp_path / "r")
    assert str(config) in line and "mix entry 2" in line and "at most 10,000" in line, line


def test_weights_that_make_too_many_rows_are_refused_before_any_copy(
    tmp_path: Path, tela_cli: TelaCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A weight under the bound on a large source can still make more rows than memory holds: the
    rows are counted first and the source that adds the most is named with the bound."""
    monkeypatch.setattr(mix, "MAX_WEIGHTED_ROWS", 5_000)
    data, out = sample_path(), tmp_path / "r"
    line = tela_cli.error(
        "run", "--family", "length", "--data", data, "--data", data, "--weight", "1", "--weight", "100", "--output", out
    )
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


# -- item 12: characters other readers take for line breaks ---------------------------------------

BREAKS = "\u0085\u2028\u2029"


def _hostile_sample(tmp_path: Path, n: int = 3) -> tuple[Path, list[str]]:
    """``n`` records of the seed sample whose prompts hold U+0085 (as two MMLU prompts do), U+2028
    and U+2029, written as JSON escapes (so the input itself is readable by any reader)."""
    import json

    rows, prompts = [], []
    for i, line in enumerate(sample_path().read_text(encoding="utf-8").split("\n")[:n]):
        r = json.loads(line)
        hostile = f"{r['prompt']}{BREAKS[i % 3]}(part {i}){BREAKS}"
        r["messages"] = [{**m, "content": m["content"].replace(r["prompt"], hostile)} for m in r["messages"]]
        r["prompt"] = hostile
        rows.append(json.dumps(r))
        prompts.append(hostile)
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path, prompts


def _splitlines_records(path: Path) -> list[dict]:
    """What a reader that splits on Unicode line breaks gets: Python's str.splitlines()."""
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_jsonl_that_tela_writes_is_one_line_per_record_for_every_reader(tmp_path: Path, tela_cli: TelaCli) -> None:
    """tela wrote these characters raw (ensure_ascii=False); str.splitlines() cut the records in two
    (`JSONDecodeError: Unterminated string` in bench/flywheel.py)."""
    data, prompts = _hostile_sample(tmp_path)
    for command in (("data", "convert"), ("data", "sample", "--n", "3")):
        out = tmp_path / f"{command[1]}.jsonl"
        result = tela_cli(*command, data, out)
        assert result.exit_code == 0, result.output
        assert not any(ch in out.read_text(encoding="utf-8") for ch in BREAKS)
        assert sorted(r["prompt"] for r in _splitlines_records(out)) == sorted(prompts)


def test_collect_answers_with_line_break_characters_stay_one_line(tmp_path: Path) -> None:
    """A prompt (and an answer) holding U+0085/U+2028: answers.jsonl is one line per prompt for
    str.splitlines() too. The upstream is a STAND-IN (tela_core.testkit.replay_upstream)."""
    import json

    from tela_core.testkit.helpers import run_cli
    from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

    questions = ["What is 1 + 1?\u2028Say it.", "Line\u0085break: 2 + 2?", "Para\u2029graph 3 + 3?"]
    rec = {
        m: {q: Recorded(f"{2 * (i + 1)}\u2028done", 10, 3, 1.0) for i, q in enumerate(questions)}
        for m in ("small", "big")
    }
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "out"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions), encoding="utf-8")
    with ReplayUpstream(rec) as up:
        r = run_cli(
            "collect",
            "--prompts",
            prompts,
            "--model",
            f"small={up.base_url}#small",
            "--model",
            f"big={up.base_url}#big",
            "-o",
            out,
        )
    assert r.exit_code == 0, r.output
    rows = _splitlines_records(out / "answers.jsonl")
    assert [row["messages"][-1]["content"] for row in rows] == questions
    assert rows[0]["answers"]["small"]["text"] == "2\u2028done"


def test_route_json_lines_and_serve_log_lines_stay_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    import json

    from tela_core.infra.io import json_line_bytes

    router = tmp_path / "router"
    assert tela_cli("run", "--family", "length", "--data", sample_path(), "--output", router).exit_code == 0
    result = tela_cli("route", "--router", router, "--json", f"one{BREAKS}prompt", "two\u2028prompt")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == [f"one{BREAKS}prompt", "two\u2028prompt"]
    # the decision and shadow logs of tela serve write each record with this function
    line = json_line_bytes({"prompt": f"a{BREAKS}b", "w": float("nan")}).decode("utf-8")
    assert len(line.splitlines()) == 1 and json.loads(line) == {"prompt": f"a{BREAKS}b", "w": None}


def test_the_flywheel_bench_reads_jsonl_by_newline_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/flywheel.py read tela's answers with str.splitlines() and crashed at the second draw.
    It now splits on "\\n" only, so even a file with the characters raw (an older tela, another
    tool) reads whole."""
    import json

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    flywheel = pytest.importorskip("flywheel")
    raw = tmp_path / "raw.jsonl"
    records = [{"prompt": f"q{i}{BREAKS}", "n": i} for i in range(3)]
    raw.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert flywheel.jsonl(raw) == records
