"""``tela judge`` over one model's answers: a model added later is judged alone (issue 28).

The models and the judge model are the replay STAND-IN of tests/judge_support.py (a loopback
server, not a model API). What a team adding a model relies on: the new model's answers alone are
rated by a judge that rates each answer on its own (``llm-judge``, ``reference``), one judge call
per answer, so the models judged before are not paid for again; a rerun asks nothing twice; a
judge that compares two answers (``pairwise``) is refused in one line naming the judges that can.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tela_core.testkit.helpers import one_error_line, run_cli
from tela_core.testkit.replay_upstream import ReplayUpstream


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _one_model(answers: Path, tmp_path: Path, model: str = "small") -> Path:
    """The answers file with ``model``'s answers only (as tela collect writes for one --model)."""
    rows = _jsonl(answers / "answers.jsonl")
    tmp_path.mkdir(exist_ok=True)
    one = tmp_path / "one.jsonl"
    one.write_text(
        "".join(json.dumps({**r, "answers": {model: r["answers"][model]}}) + "\n" for r in rows), encoding="utf-8"
    )
    return one


def _calls(up: ReplayUpstream) -> int:
    return sum(up.requests_for("judge").values())


def test_one_models_answers_are_rated_alone_once(tmp_path: Path, answers: Path, upstream: ReplayUpstream) -> None:
    one = _one_model(answers, tmp_path)
    out = tmp_path / "judged"
    argv = ["judge", "--answers", one, "--judge", "llm-judge", "--judge-model", f"judge={upstream.base_url}#judge"]
    argv += ["--price", "judge=5,15", "-o", out]
    # a budget that stops part-way, then a rerun with more: what was judged is never asked again
    r = run_cli(*argv, "--max-cost", "0.05")
    assert r.exit_code == 0, r.output
    first = _calls(upstream)
    assert 0 < first < 24, r.output
    r = run_cli(*argv, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert _calls(upstream) == 24  # one judge call per answer, none twice
    assert s["judged"] == 24 and s["errors"] == 0 and s["outcomes_by_model"] == {"small": 24}
    records = _jsonl(out / "records.jsonl")
    assert len(records) == 24
    for i, rec in enumerate(records):
        assert rec["outcomes"] == {"small": 1.0 if i % 3 else 0.0}  # the stand-in judge rates 1 + 4 x score
        assert set(rec["costs"]) == {"small"}
        assert rec.get("label") is None and rec["messages"][-1]["role"] != "assistant"  # no pair, no label
    r = run_cli(*argv)
    assert r.exit_code == 0 and "24 already judged, 0 to judge" in r.output and _calls(upstream) == 24


def test_one_models_answers_refuse_a_pairwise_judge_naming_those_that_can(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    one = _one_model(answers, tmp_path)
    out = tmp_path / "judged"
    r = run_cli(
        "judge", "--answers", one, "--judge", "pairwise", "--judge-model", f"judge={upstream.base_url}#judge", "-o", out
    )
    line = one_error_line(r)
    assert "one model only (small)" in line and "'pairwise' compares two" in line, line
    assert "llm-judge, reference" in line, line
    assert _calls(upstream) == 0 and not out.exists()


def test_join_puts_the_new_models_outcomes_beside_the_models_judged_before(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    """The models judged before (here ``big``, graded against references) and a model added later
    (``small``, its answers alone): ``--join`` writes records with both models' outcomes and costs,
    and asks the judge model only about the new model's answers."""
    before = tmp_path / "judged-big"
    r = run_cli(
        "judge",
        "--answers",
        _one_model(answers, tmp_path / "big", "big"),
        "--judge",
        "reference",
        "--set",
        "judge.grader=number",
        "-o",
        before,
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "judged-small"
    argv = ["judge", "--answers", _one_model(answers, tmp_path), "--judge", "llm-judge"]
    argv += ["--judge-model", f"judge={upstream.base_url}#judge", "--join", before, "-o", out]
    r = run_cli(*argv)
    assert r.exit_code == 0, r.output
    assert _calls(upstream) == 24  # the new model's answers only
    records = _jsonl(out / "records.jsonl")
    assert len(records) == 24
    for i, rec in enumerate(records):
        assert rec["outcomes"] == {"big": 1.0, "small": 1.0 if i % 3 else 0.0}
        assert set(rec["costs"]) == {"big", "small"}
    # a records file of other prompts is refused before anything is asked, naming its line
    bad = tmp_path / "bad.jsonl"
    rows = _jsonl(before / "records.jsonl")
    bad.write_text(
        "".join(json.dumps({**r, "prompt": "Another question?"} if k == 1 else r) + "\n" for k, r in enumerate(rows)),
        encoding="utf-8",
    )
    argv[argv.index(before)] = bad
    argv[-1] = tmp_path / "out2"
    line = one_error_line(run_cli(*argv))
    assert f"{bad}:2: " in line and "not the answers' prompt" in line, line
    assert _calls(upstream) == 24 and not (tmp_path / "out2").exists()
