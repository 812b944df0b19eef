"""`tela judge`: a registered judge over `tela collect`'s answers, into records `tela run`, `eval` and
`zoo` read as they are; resumable, budgeted, never a guessed label. The models and the judge model
are a STAND-IN for remote APIs (tela_core.testkit.replay_upstream: replays recorded answers; its
judge reads the MT-Bench answer markers and rates from the recorded score). Nothing reaches a network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tela_core import Judge, JudgeItem, JudgeOutputError, JudgeRequest, Verdict, hookimpl
from tela_core.testkit.helpers import needs_public_data, one_error_line, public_data, run_cli
from tela_core.testkit.replay_upstream import ReplayUpstream

ARENA = public_data("routerarena-sub10")
HAIKU, GEMINI = "claude-3-haiku-20240307", "gemini-2.0-flash-001"
TELA = str(Path(sys.executable).with_name("tela"))


# the `upstream` and `answers` fixtures: tests/judge_support.py, through tests/conftest.py


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _judge_calls(up: ReplayUpstream) -> int:
    return sum(up.requests_for("judge").values())


def test_reference_judge_records_are_read_by_data_check_run_eval_and_zoo(tmp_path: Path, answers: Path) -> None:
    out = tmp_path / "judged"
    r = run_cli("judge", "--answers", answers, "--judge", "reference", "--set", "judge.grader=number", "-o", out)
    assert r.exit_code == 0, r.output
    records = _jsonl(out / "records.jsonl")
    assert len(records) == 24
    for i, rec in enumerate(records):
        small_right = i % 3 != 0
        assert rec["outcomes"] == {"small": float(small_right), "big": 1.0}
        assert rec["messages"][-1]["content"] == ("[[5]]" if small_right else "[[1]]")
        assert rec["prompt"] == f"What is {i} + {i + 1}?" and set(rec["costs"]) == {"small", "big"}
    assert all(j["error"] is None for j in _jsonl(out / "judgements.jsonl"))
    data = out / "records.jsonl"
    check = run_cli("data", "check", data)
    assert check.exit_code == 0 and "24 records" in check.output
    assert run_cli("run", "--data", data, "--family", "length", "-o", tmp_path / "router").exit_code == 0
    ev = run_cli("eval", "--router", tmp_path / "router", "--data", data, "-o", tmp_path / "eval")
    assert ev.exit_code == 0, ev.output
    zoo = run_cli("zoo", "--data", data, "--families", "length", "-o", tmp_path / "zoo")
    assert zoo.exit_code == 0, zoo.output


def test_default_llm_judge_records_are_read_by_run_eval_and_zoo(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    """llm-judge with no options rates every answer: run's cheap families, eval and zoo read its records as they are."""
    out = tmp_path / "judged"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    assert all(set(rec["outcomes"]) == {"small", "big"} for rec in _jsonl(out / "records.jsonl"))
    data = out / "records.jsonl"
    assert run_cli("run", "--data", data, "--family", "length", "-o", tmp_path / "router").exit_code == 0
    ev = run_cli("eval", "--router", tmp_path / "router", "--data", data, "-o", tmp_path / "eval")
    assert ev.exit_code == 0, ev.output
    zoo = run_cli("zoo", "--data", data, "--families", "length", "-o", tmp_path / "zoo")
    assert zoo.exit_code == 0, zoo.output


def test_llm_judge_rates_the_weak_answer_through_the_judge_model(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    out = tmp_path / "judged"
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
        "-o",
        out,
        "--json",
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert s["judged"] == 24 and s["errors"] == 0 and s["this_run"]["calls"] == 48 and s["cost_total"] > 0
    for i, rec in enumerate(_jsonl(out / "records.jsonl")):
        assert rec["messages"][-1]["content"] == (
            "[[5]]" if i % 3 else "[[1]]"
        )  # the stand-in judge rates 1 + 4 x score
        assert rec["outcomes"] == {"small": 1.0 if i % 3 else 0.0, "big": 1.0}
    assert _judge_calls(upstream) == 48
    # a rerun judges nothing again
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
        "-o",
        out,
    )
    assert r.exit_code == 0 and "24 already judged, 0 to judge" in r.output and _judge_calls(upstream) == 48


def test_unreadable_judge_output_is_retried_then_an_error_record_never_a_label(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    out = tmp_path / "judged"
    upstream.inject("nonsense", times=1, model="judge")  # the first reply has no [[k]]: asked again, then fine
    upstream.inject("nonsense", times=None, model="judge", after=10**9)  # (queued behind, never reached)
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--concurrency",
        1,
        "--sample",
        3,
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    js = _jsonl(out / "judgements.jsonl")
    assert [j["tries"] for j in js] == [2, 1, 1] and all(j["error"] is None for j in js)
    upstream.reset()
    upstream.inject("nonsense", times=None, model="judge")
    out2 = tmp_path / "judged2"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--sample",
        3,
        "--judge-retries",
        2,
        "-o",
        out2,
    )  # 9 unreadable replies: under the 10 that stop a run
    assert r.exit_code == 3, r.output  # verdicts missing: exit 3
    js = _jsonl(out2 / "judgements.jsonl")
    assert len(js) == 3 and all(j["label"] is None and j["outcomes"] is None for j in js)
    assert all(
        j["error"].startswith("unreadable judge reply after 3 tries")
        and "no verdict from me" in j["detail"]["replies"][0]
        for j in js
    )
    assert _jsonl(out2 / "records.jsonl") == []
    assert "3 errors" in r.output


class _EchoJudge(Judge):
    """A judge registered in-process: asks the judge model twice per prompt (weak, then strong) and
    reads "[[k]]"; raises JudgeOutputError naming the call it could not read."""

    name = "test-echo"
    needs_upstream = True

    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        return [
            JudgeRequest(
                messages=[
                    {
                        "role": "user",
                        "content": f"[The Start of Assistant's Answer]\n{item.answers[m]}\n"
                        "[The End of Assistant's Answer]",
                    }
                ],
                max_tokens=8,
            )
            for m in (item.weak, item.strong)
        ]

    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        import re

        ks = []
        for i, reply in enumerate(replies):
            m = re.search(r"\[\[(\d)\]\]", reply)
            if m is None:
                raise JudgeOutputError(f"no rating in {reply!r}", reply, index=i)
            ks.append(int(m.group(1)))
        return Verdict(label=ks[0], outcomes={str(item.weak): (ks[0] - 1) / 4, str(item.strong): (ks[1] - 1) / 4})


class _EchoPlugin:
    @hookimpl
    def tela_register_judges(self, register: Any) -> None:
        register(_EchoJudge)


def test_a_registered_judge_only_its_unreadable_call_is_asked_again(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream, register_plugin: Any
) -> None:
    register_plugin(_EchoPlugin(), "test-echo-judge")
    upstream.inject(
        "nonsense", times=1, model="judge", after=1
    )  # the 2nd call (the strong answer's) is unreadable once
    out = tmp_path / "judged"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "test-echo",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--concurrency",
        1,
        "--sample",
        1,
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    (j,) = _jsonl(out / "judgements.jsonl")
    assert j["error"] is None and j["tries"] == 2 and j["calls"] == 3  # 2 calls, then only the failed one again
    assert _judge_calls(upstream) == 3


def test_agreement_of_two_judges_on_a_sample(tmp_path: Path, answers: Path, upstream: ReplayUpstream) -> None:
    out = tmp_path / "agree"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--agreement",
        "reference",
        "--set",
        "agreement.grader=number",
        "--sample",
        12,
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    agr = json.loads((out / "agreement.json").read_text())
    assert (
        agr["judges"] == ["llm-judge (judge)", "reference"] and agr["prompts"] == 12
    )  # a judge named with the model it calls
    # the stand-in judge rates from the very scores the reference grader recomputes: they agree fully
    assert agr["label"]["n"] == 12 and agr["label"]["raw"] == 1.0 and agr["label"]["kappa"] == pytest.approx(1.0)
    assert agr["outcomes"]["small"]["kappa"] == pytest.approx(1.0)
    assert "agreement of llm-judge (judge) and reference on 12 prompts" in r.output
    assert len(_jsonl(out / "judgements-agreement.jsonl")) == 12 and _judge_calls(upstream) == 24  # both answers rated


def test_judge_max_cost_stops_where_it_says(tmp_path: Path, answers: Path, upstream: ReplayUpstream) -> None:
    out = tmp_path / "judged"
    # each llm-judge call reserves its ~110 prompt tokens and 512 reply tokens at $10/$30 per M: ~$0.0165
    args = [
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--price",
        "judge=10,30",
        "--set",
        "judge.rate=weak",
        "--concurrency",
        1,
        "-o",
        out,
        "--json",
    ]
    r = run_cli(*args, "--max-cost", 0.03)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert s["stopped"] == "budget" and 0 < s["judged"] < 24 and s["cost_total"] <= 0.03
    assert _judge_calls(upstream) == s["judged"]
    r = run_cli(*args, "--max-cost", 10)
    assert r.exit_code == 0 and len(_jsonl(out / "records.jsonl")) == 24
    assert max(upstream.requests_for("judge").values()) == 1


@pytest.mark.parametrize(
    "case",
    [
        "unknown judge",
        "judge without upstream",
        "reference without references",
        "reference with a judge model",
        "unreachable judge model",
        "bad answers line",
        "unknown pair model",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, answers: Path, upstream: ReplayUpstream, case: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    no_refs = tmp_path / "noref.jsonl"
    no_refs.write_text(
        "".join(json.dumps({**row, "reference": None}) + "\n" for row in _jsonl(answers / "answers.jsonl")),
        encoding="utf-8",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        (answers / "answers.jsonl").read_text(encoding="utf-8").splitlines()[0] + '\n{"id": 3}\n', encoding="utf-8"
    )
    out = tmp_path / "out"
    argv, expect = {
        "unknown judge": (
            ["--answers", answers, "--judge", "oracle-of-delphi"],
            "registered judges: llm-judge, pairwise, reference",
        ),
        "judge without upstream": (
            ["--answers", answers, "--judge", "llm-judge"],
            "calls a judge model: give --judge-model",
        ),
        "reference without references": (
            ["--answers", no_refs, "--judge", "reference"],
            "grades against reference answers",
        ),
        "reference with a judge model": (
            ["--answers", answers, "--judge", "reference", "--judge-model", f"j={upstream.base_url}#judge"],
            "does not take --judge-model",
        ),
        "unreachable judge model": (
            ["--answers", answers, "--judge", "llm-judge", "--judge-model", f"judge=http://127.0.0.1:{dead}/v1#judge"],
            "judge: ",
        ),
        "bad answers line": (["--answers", bad, "--judge", "reference"], f"{bad}:2: "),
        "unknown pair model": (["--answers", answers, "--judge", "reference", "--weak-model", "tiny"], "no such model"),
    }[case]
    line = one_error_line(run_cli("judge", *argv, "-o", out))
    assert expect in line, line
    assert _judge_calls(upstream) == 0 and not out.exists()


def test_kill_mid_judge_then_rerun_judges_only_what_is_missing(
    tmp_path: Path, answers: Path, upstream: ReplayUpstream
) -> None:
    out = tmp_path / "judged"
    upstream.inject("hang", times=None, after=10, model="judge")
    cmd = [
        TELA,
        "judge",
        "--answers",
        str(answers),
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--set",
        "judge.rate=weak",
        "--concurrency",
        "2",
        "-o",
        str(out),
    ]  # one call per prompt
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True
    )
    journal = out / ".journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and len(journal.read_text().splitlines()) >= 10):
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    before = {j["id"] for j in _jsonl(journal)}
    assert len(before) >= 10 and not (out / "records.jsonl").exists()
    asked_before = dict(upstream.requests_for("judge"))
    upstream.reset()
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} already judged, {24 - len(before)} to judge" in r.stderr
    assert len(_jsonl(out / "records.jsonl")) == 24
    counts = upstream.requests_for("judge")
    answered_prompts = {row["id"]: row for row in _jsonl(answers / "answers.jsonl")}
    judged_before = {
        p for p, n in asked_before.items() if any(answered_prompts[i]["answers"]["small"]["text"] in p for i in before)
    }
    assert all(counts[p] == 1 for p in judged_before)  # nothing judged before the kill is asked again
    assert sum(1 for n in counts.values() if n == 2) <= 2  # only the 2 calls in flight at the kill
    assert not journal.exists()


@needs_public_data("routerarena-sub10")
def test_collect_then_judge_on_real_answers(tmp_path: Path) -> None:
    """RouterArena's two real models' answers, collected and judged pairwise (both orders): the pair's
    outcomes follow the recorded scores wherever one model was right and the other wrong."""
    assert ARENA is not None
    with ReplayUpstream.from_routerarena(ARENA, judges=["judge"]) as up:
        answers = tmp_path / "answers"
        r = run_cli(
            "collect",
            "--data",
            ARENA,
            "--sample",
            20,
            "--model",
            f"haiku={up.base_url}#{HAIKU}",
            "--model",
            f"gemini={up.base_url}#{GEMINI}",
            "-o",
            answers,
        )
        assert r.exit_code == 0, r.output
        out = tmp_path / "judged"
        r = run_cli(
            "judge",
            "--answers",
            answers,
            "--judge",
            "pairwise",
            "--judge-model",
            f"judge={up.base_url}#judge",
            "-o",
            out,
        )
        assert r.exit_code == 0, r.output
        rows = {row["id"]: row for row in _jsonl(answers / "answers.jsonl")}
        decided = 0
        for rec in _jsonl(out / "records.jsonl"):
            q = rows[rec["id"]]["messages"][-1]["content"]
            sh, sg = up.recorded[HAIKU][q].score, up.recorded[GEMINI][q].score
            if sh is not None and sg is not None and sh != sg:
                decided += 1
                assert rec["outcomes"][HAIKU] == (1.0 if sh > sg else 0.0)  # records name the model id
                assert rec["messages"][-1]["content"] == ("[[5]]" if sh > sg else "[[1]]")
        assert decided > 0
        assert run_cli("data", "check", out / "records.jsonl").exit_code == 0


def test_a_weak_model_that_scores_better_is_named_with_the_flags_that_keep_the_pair(
    tmp_path: Path, answers: Path
) -> None:
    """The user's cheap model may also be the better one; tela run's default rule (lower mean outcome
    is weak) would then flip the pair silently. tela judge says so and how to name the pair, and a run
    given those flags routes between the pair the user meant."""
    plain = run_cli(
        "judge", "--answers", answers, "--judge", "reference", "--set", "judge.grader=number", "-o", tmp_path / "a"
    )
    assert plain.exit_code == 0 and "note:" not in plain.output
    assert "pair_note" not in json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))

    out = tmp_path / "b"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "reference",
        "--set",
        "judge.grader=number",
        "--weak-model",
        "big",
        "--strong-model",
        "small",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    note = json.loads((out / "summary.json").read_text(encoding="utf-8"))["pair_note"]
    assert "--set source.models.weak=big --set source.models.strong=small" in note and "note: " in r.output
    run = run_cli(
        "run",
        "--data",
        out / "records.jsonl",
        "--family",
        "length",
        "--set",
        "source.models.weak=big",
        "--set",
        "source.models.strong=small",
        "-o",
        tmp_path / "router",
    )
    assert run.exit_code == 0, run.output
    from tela_core import Router

    assert Router.load(tmp_path / "router").models == ["big", "small"]


def test_agreement_on_a_model_right_every_time_is_read_as_right_wrong_not_as_labels(
    tmp_path: Path, answers: Path
) -> None:
    """`big` is right on every prompt: its right/wrong agreement is over the categories 0/1 with plain
    kappa, not mistaken for the 1..5 label scale with quadratic weights."""
    out = tmp_path / "agree"
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "reference",
        "--set",
        "judge.grader=number",
        "--agreement",
        "reference",
        "--set",
        "agreement.grader=number",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    big = json.loads((out / "agreement.json").read_text())["outcomes"]["big"]
    assert big["weights"] == "none" and big["categories"] == [0, 1] and big["raw"] == 1.0
