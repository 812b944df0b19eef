"""tela_core.judging without the command line: a script plans and runs a judge over collected answers
and gets what `tela judge` writes; and a run stopped on unreadable replies leaves what it paid for
where the rerun's budget counts it. The models and the judge model are a STAND-IN for remote APIs
(tela_core.testkit.replay_upstream); nothing reaches a network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from judge_support import synthetic_sums  # the `upstream` and `answers` fixtures: tests/conftest.py

from tela_core.infra.errors import TelaError, UnknownComponentError
from tela_core.judging import CallSettings, JudgeJob, judge_answers, plan_judging
from tela_core.testkit.helpers import run_cli
from tela_core.testkit.replay_upstream import ReplayUpstream


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_script_judges_answers_into_the_records_tela_judge_writes(tmp_path: Path, answers: Path) -> None:
    """judge_answers, in a fresh interpreter that never imports tela's CLI, writes the
    records, judgements and summary `tela judge` writes for the same answers."""
    script = (
        f"import json, sys\n"
        f"from tela_core.judging import judge_answers\n"
        f"s = judge_answers({str(answers)!r}, 'reference', {str(tmp_path / 'lib')!r}, options={{'grader': 'number'}})\n"
        f"assert not [m for m in sys.modules if m.startswith('tela_core.cli')], 'imported the CLI'\n"
        f"print(json.dumps(s))\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["records"] == 24 and summary["labels"] == {"[[1]]": 8, "[[5]]": 16} and summary["errors"] == 0
    assert summary["files"]["records"] == str(tmp_path / "lib" / "records.jsonl")
    r = run_cli(
        "judge", "--answers", answers, "--judge", "reference", "--set", "judge.grader=number", "-o", tmp_path / "cli"
    )
    assert r.exit_code == 0, r.output
    for name in ("records.jsonl", "judgements.jsonl"):
        lib, cli = _jsonl(tmp_path / "lib" / name), _jsonl(tmp_path / "cli" / name)
        for rows in (lib, cli):
            for row in rows:
                row.pop("seconds", None)
        assert lib == cli, name
    written = json.loads((tmp_path / "lib" / "summary.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in written.items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k not in ("seconds", "files")
    }


def test_a_plan_pairs_judges_with_models_samples_and_writes_nothing(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    plan = plan_judging(
        answers,
        "llm-judge",
        judge_model=f"judge={upstream.base_url}#judge",
        prices=["judge=5,15"],
        agreement="reference",
        agreement_options={"grader": "number"},
        sample=5,
        weak_model="small",
        strong_model="big",
    )
    assert (plan.weak, plan.strong) == ("small", "big")
    assert plan.endpoint_of == {"judge": "judge", "agreement": None}
    assert plan.shown == {"judge": "llm-judge (judge)", "agreement": "reference"}
    up, _where = plan.upstreams["judge"]
    assert (up.price_input, up.price_output) == (5.0, 15.0)
    ids = [t.row.id for t in plan.tasks["judge"]]
    assert len(ids) == 5 and ids == [t.row.id for t in plan.tasks["agreement"]]  # both judges on the same prompts
    assert all(t.endpoint == "judge" for t in plan.tasks["judge"]) and all(
        t.endpoint is None for t in plan.tasks["agreement"]
    )
    assert _judge_calls(upstream) == 0 and not (tmp_path / "out").exists()


def test_a_plan_refuses_bad_input_naming_it(answers: Path, upstream: ReplayUpstream) -> None:
    with pytest.raises(UnknownComponentError, match="reference"):  # the registered judges are listed
        plan_judging(answers, "no-such-judge")
    with pytest.raises(TelaError, match="calls a judge model: give --judge-model"):
        plan_judging(answers, "llm-judge")
    with pytest.raises(TelaError, match="calls no model"):
        plan_judging(answers, "reference", judge_model=f"judge={upstream.base_url}#judge")
    with pytest.raises(TelaError, match="--weak-model 'nobody': no such model"):
        plan_judging(answers, "reference", weak_model="nobody")


def _judge_calls(up: ReplayUpstream) -> int:
    return sum(up.requests_for("judge").values())


def test_a_job_resumes_and_keeps_within_its_budget(tmp_path: Path, answers: Path, upstream: ReplayUpstream) -> None:
    plan = plan_judging(answers, "llm-judge", judge_model=f"judge={upstream.base_url}#judge", prices=["judge=5,15"])
    out = tmp_path / "judged"
    with JudgeJob(plan, out, CallSettings(concurrency=2)) as job:
        assert len(job.todo) == 24 and not job.results and job.estimate > 0
        first = job.run()
    assert first["records"] == 24 and first["stopped"] == "done" and "unjudged_cost" not in first
    calls = _judge_calls(upstream)
    with JudgeJob(plan, out, CallSettings(max_cost=first["cost_total"])) as job:
        assert not job.todo and len(job.results) == 24
        assert job.engine.budget.spent == pytest.approx(
            first["cost_total"]
        )  # earlier spending counts against the budget
        again = job.run()
    assert _judge_calls(upstream) == calls and again["records"] == 24 and again["this_run"] is None


def test_a_run_stopped_on_unreadable_replies_leaves_its_spending_for_the_rerun_budget(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    """Before, a run stopped after 10 unreadable replies (exit 4) kept only its judgements' cost:
    the tries of prompts that got none and the calls in flight were paid, and a rerun's --max-cost
    started from less than was spent."""
    upstream.inject("nonsense", times=None, model="judge")
    out = tmp_path / "judged"
    first = judge_answers(
        answers,
        "llm-judge",
        out,
        judge_model=f"judge={upstream.base_url}#judge",
        prices=["judge=5,15"],
        options={"rate": "all"},
        settings=CallSettings(concurrency=2),
    )
    assert first["stopped"] == "unreadable"
    paid = first["this_run"]["cost"]
    assert paid > 0 and first["unjudged_cost"] > 0
    assert first["cost_total"] == pytest.approx(paid)
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert written["unjudged_cost"] == pytest.approx(first["unjudged_cost"])
    # the rerun's budget starts from all the first run paid, through the command too
    upstream.reset()
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--price",
        "judge=5,15",
        "--set",
        "judge.rate=all",
        "--max-cost",
        100,
        "--dry-run",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "dry run: the judge model answered the check" in r.output and "without --dry-run" in r.output
    m = re.search(r"\(--max-cost\): \$([0-9.,]+) spent on this output before", r.output)
    assert m is not None, r.output
    assert float(m.group(1)) == pytest.approx(paid, abs=1e-4)
    # a finished rerun keeps counting it, and what the judgements in error it asks again had cost
    second = judge_answers(
        answers,
        "llm-judge",
        out,
        judge_model=f"judge={upstream.base_url}#judge",
        prices=["judge=5,15"],
        options={"rate": "all"},
    )
    assert second["stopped"] == "done" and second["errors"] == 0 and second["unjudged_cost"] >= first["unjudged_cost"]
    assert second["cost_total"] == pytest.approx(paid + second["this_run"]["cost"])


def test_the_guides_python_example_judges_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/own-models.md's Python block, run as written in a folder laid out as the guide's (runs/answers,
    serve.yaml whose judge-mini is the stand-in)."""
    guide = (Path(__file__).resolve().parents[1] / "docs" / "own-models.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"^```python\n(.*?)^```", guide, flags=re.M | re.S) if "tela_core.judging" in b]
    with ReplayUpstream(synthetic_sums(), judges=["gpt-4o-mini"]) as up:
        (tmp_path / "prompts.jsonl").write_text(
            "".join(json.dumps({"prompt": q}) + "\n" for q in up.prompts("big")), encoding="utf-8"
        )
        r = run_cli(
            "collect",
            "--prompts",
            tmp_path / "prompts.jsonl",
            "--model",
            f"small={up.base_url}#small",
            "--model",
            f"big={up.base_url}#big",
            "-o",
            tmp_path / "runs" / "answers",
        )
        assert r.exit_code == 0, r.output
        (tmp_path / "serve.yaml").write_text(
            f"upstreams:\n  judge-mini: {{base_url: '{up.base_url}', model: gpt-4o-mini, price_input: 0.15, price_output: 0.6}}\n",  # noqa: E501
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        exec(compile(block, "docs/own-models.md", "exec"), {"print": lambda *a: None})
        assert sum(up.requests_for("gpt-4o-mini").values()) == 48  # rate=all: both answers of 24 prompts
    summary = json.loads((tmp_path / "runs" / "judged" / "summary.json").read_text(encoding="utf-8"))
    assert summary["records"] == 24 and summary["errors"] == 0 and summary["max_cost"] == 2
