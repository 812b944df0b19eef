"""`tela collect` and `tela judge` at their limits (issue 24: items 2, 4, 5, 7, 10): a budget, a rate or a
temperature of nan or inf is refused before any call; two prompts that share an id and not their text
are refused with both lines; a run whose calls failed exits non-zero with a documented code, and a
judge whose replies never read stops early; an answer over the size cap is an error, not 50 MB on
disk. The models and the judge are a STAND-IN for remote APIs (tela_core.testkit.replay_upstream: a
loopback server replaying recorded answers, misbehaving on demand). Nothing reaches a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from judge_support import synthetic_sums  # the `upstream` fixture: tests/conftest.py

from tela_core.testkit.helpers import one_error_line, run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

TELA = str(Path(sys.executable).with_name("tela"))


def _prompts(tmp_path: Path, up: ReplayUpstream, n: int | None = None) -> Path:
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in up.prompts("big")[:n]), encoding="utf-8")
    return p


def _models(up: ReplayUpstream) -> list[str]:
    return ["--model", f"small={up.base_url}#small", "--model", f"big={up.base_url}#big"]


PRICES = ["--price", "small=1,2", "--price", "big=10,30"]


def _answers(tmp_path: Path, up: ReplayUpstream) -> Path:
    out = tmp_path / "answers"
    r = run_cli("collect", "--prompts", _prompts(tmp_path, up), *_models(up), *PRICES, "-o", out)
    assert r.exit_code == 0, r.output
    up.reset(counts=True)
    return out


def _judge(up: ReplayUpstream) -> list[str]:
    return ["--judge", "llm-judge", "--judge-model", f"judge={up.base_url}#judge", "--price", "judge=5,15"]


def _strict_json(path: Path) -> Any:
    """The file parsed as JSON proper: NaN and Infinity (Python's extension) are refused."""

    def refuse(token: str) -> Any:
        raise ValueError(f"{path}: {token} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _tela(*args: Any, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``tela ARGS`` in a process of its own, killed after ``timeout`` s: a probe that used to hang
    fails the test instead of hanging it."""
    try:
        return subprocess.run(
            [TELA, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"tela {' '.join(map(str, args))} still running after {timeout} s") from None


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# -- item 2 and 10: numbers that are no limit ------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--max-cost", "nan", "leave --max-cost out for no budget"),
        ("--max-cost", "inf", "leave --max-cost out for no budget"),
        ("--rpm", "nan", "leave --rpm out for no limit"),
        ("--tpm", "nan", "leave --tpm out for no limit"),
        ("--rpm", "inf", "leave --rpm out for no limit"),
        ("--timeout", "nan", "seconds"),
        ("--timeout", "inf", "seconds"),
        ("--temperature", "nan", "not a number"),
        ("--retries", "1000000", "not in the range"),
    ],
)
def test_collect_refuses_numbers_that_are_no_limit_before_any_call(
    tmp_path: Path, upstream: ReplayUpstream, option: str, value: str, says: str
) -> None:
    """`--max-cost nan` spent past "budget $nan", `--rpm/--tpm nan` hung after the estimate, `--temperature nan`
    went upstream as NaN (not JSON): each is one line naming the option, exit 2, nothing asked or written."""
    out = tmp_path / "out"
    r = _tela(
        "collect", "--prompts", _prompts(tmp_path, upstream, 4), *_models(upstream), *PRICES, option, value, "-o", out
    )
    line = _one_error_line(r)
    assert option in line and says in line, line
    assert upstream.stats()["requests"] == 0 and not out.exists()


@pytest.mark.parametrize(
    "option, value", [("--max-cost", "nan"), ("--max-cost", "inf"), ("--rpm", "nan"), ("--tpm", "nan")]
)
def test_judge_refuses_numbers_that_are_no_limit_before_any_call(
    tmp_path: Path, upstream: ReplayUpstream, option: str, value: str
) -> None:
    answers, out = _answers(tmp_path, upstream), tmp_path / "judged"
    r = _tela("judge", "--answers", answers, *_judge(upstream), option, value, "-o", out)
    line = _one_error_line(r)
    assert option in line and ("not a number" in line or "not a finite number" in line), line
    assert upstream.stats()["requests"] == 0 and not out.exists()


@pytest.mark.parametrize("key", ["price_input", "price_output", "requests_per_minute", "tokens_per_minute"])
def test_config_numbers_that_are_no_limit_are_refused_naming_file_and_key(
    tmp_path: Path, upstream: ReplayUpstream, key: str
) -> None:
    """YAML's .inf was taken (a price of inf dollars, a rate of inf a minute); .nan already was not."""
    settings = {"base_url": upstream.base_url, "model": "big", "price_input": 1, "price_output": 2, key: ".inf"}
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("upstreams:\n  big:\n" + "".join(f"    {k}: {v}\n" for k, v in settings.items()), encoding="utf-8")
    out = tmp_path / "out"
    r = _tela(
        "collect",
        "--prompts",
        _prompts(tmp_path, upstream, 2),
        "--config",
        cfg,
        "--model",
        "big",
        "--max-cost",
        1,
        "-o",
        out,
    )
    line = _one_error_line(r)
    assert "serve.yaml" in line and f"upstreams.big.{key}" in line and "finite" in line, line
    assert upstream.stats()["requests"] == 0 and not out.exists()


def test_a_budgeted_runs_summary_is_strict_json(tmp_path: Path, upstream: ReplayUpstream) -> None:
    out = tmp_path / "out"
    r = run_cli(
        "collect", "--prompts", _prompts(tmp_path, upstream, 4), *_models(upstream), *PRICES, "--max-cost", 1, "-o", out
    )
    assert r.exit_code == 0, r.output
    s = _strict_json(out / "summary.json")
    assert s["max_cost"] == 1 and 0 < s["cost_total"] <= 1


# -- item 4: one id, two prompts ---------------------------------------------------------------------


def test_two_prompts_with_one_id_are_refused_naming_both_lines(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """The second used to be dropped without a word ("1 repeated prompts asked once")."""
    q = upstream.prompts("big")
    p = tmp_path / "prompts.jsonl"
    p.write_text(
        json.dumps({"id": "q1", "prompt": q[0]})
        + "\n"
        + json.dumps({"id": "q2", "prompt": q[1]})
        + "\n\n"
        + json.dumps({"id": "q1", "prompt": q[2]})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    line = one_error_line(run_cli("collect", "--prompts", p, *_models(upstream), "-o", out))
    assert "prompts.jsonl:4:" in line and "'q1'" in line and "line 1" in line, line
    assert upstream.stats()["requests"] == 0 and not out.exists()


def test_the_same_prompt_twice_is_asked_once_and_called_repeated(tmp_path: Path, upstream: ReplayUpstream) -> None:
    q = upstream.prompts("big")
    p = tmp_path / "prompts.jsonl"
    p.write_text(
        "".join(
            json.dumps(o) + "\n"
            for o in (
                {"id": "q1", "prompt": q[0]},
                {"id": "q2", "prompt": q[1]},
                {"id": "q1", "prompt": q[0]},
                {"prompt": q[3]},
                {"prompt": q[3]},
            )
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = run_cli("collect", "--prompts", p, *_models(upstream), "-o", out)
    assert r.exit_code == 0, r.output
    assert "3 prompts x 2 models" in r.output and "2 repeated prompts asked once" in r.output
    assert max(upstream.requests_for("big").values()) == 1 and len(upstream.requests_for("big")) == 3


def test_records_of_a_data_source_with_one_id_and_two_prompts_are_refused(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    from tela_core.data.records import seed_record

    q = upstream.prompts("big")
    data = tmp_path / "seed.jsonl"
    data.write_text(
        "".join(json.dumps(seed_record(text, None, id="a").to_json()) + "\n" for text in q[:2]), encoding="utf-8"
    )
    out = tmp_path / "out"
    line = one_error_line(run_cli("collect", "--data", data, *_models(upstream), "-o", out))
    assert "seed.jsonl" in line and "records 1 and 2" in line and "'a'" in line, line
    assert upstream.stats()["requests"] == 0 and not out.exists()


# -- item 5: a run whose calls failed does not exit 0 -----------------------------------------------


def test_exit_codes_are_in_the_help_and_the_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "own-models.md").read_text(encoding="utf-8")
    for command in ("collect", "judge"):
        r = run_cli(command, "--help")
        text = " ".join(r.output.split())
        assert "Exit codes: 0 done" in text and "3 done, but some answers or verdicts ended in an error" in text, text
    guide = " ".join(guide.split())
    assert "exits with code 3" in guide and "exit code 4" in guide


def test_collect_where_every_call_fails_exits_3_and_collect_and_judge_stops(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """All 500s (and all 429s) used to exit 0, so `tela collect ... && tela judge ...` went on."""
    prompts, out = _prompts(tmp_path, upstream, 3), tmp_path / "out"
    upstream.inject("500", times=None)
    script = (
        f"{TELA} collect --prompts {prompts} --model small={upstream.base_url}#small --model big={upstream.base_url}#big "  # noqa: E501
        f"--retries 1 -o {out} && touch {tmp_path / 'judged'}"
    )
    r2 = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r2.returncode == 3, r2.stdout + r2.stderr
    assert not (tmp_path / "judged").exists()
    s = _strict_json(out / "summary.json")
    assert s["errors"] == 6 and s["answers"] == 0
    upstream.reset()
    upstream.inject("429", times=None, retry_after="0")
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), "--retries", 1, "-o", out)
    assert r.exit_code == 3, r.output
    # once the upstream answers, the rerun asks the failed ones again and exits 0
    upstream.reset()
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), "-o", out)
    assert r.exit_code == 0, r.output
    assert _strict_json(out / "summary.json")["answers"] == 6


def test_a_budget_stop_exits_0(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """A stop at --max-cost is the user's limit reached, not a failure (the guide starts with a small budget)."""
    out = tmp_path / "out"
    r = run_cli(
        "collect",
        "--prompts",
        _prompts(tmp_path, upstream),
        "--model",
        f"big={upstream.base_url}#big",
        "--price",
        "big=10,30",
        "--max-tokens",
        64,
        "--concurrency",
        1,
        "--max-cost",
        0.005,
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "stopped at the budget" in r.output and _strict_json(out / "summary.json")["stopped"] == "budget"


def test_a_judge_whose_replies_never_read_stops_early_naming_the_reply(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """24 prompts, 3 tries each, every reply without [[k]]: it used to make all 72 calls and exit 0."""
    answers, out = _answers(tmp_path, upstream), tmp_path / "judged"
    upstream.inject("nonsense", times=None, model="judge")
    r = run_cli("judge", "--answers", answers, *_judge(upstream), "--concurrency", 2, "-o", out)
    assert r.exit_code == 4, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    assert "10 replies of the judge model held no verdict" in errors[0] and "no verdict from me" in errors[0], errors[0]
    assert len(errors[0]) < 400
    calls = sum(upstream.requests_for("judge").values())
    # llm-judge asks 2 calls a prompt (rate=all): the tries that gave the 10 unread replies and those then in flight,
    # fewer than one try of every prompt (the old code made 24 x (2 + 1 + 1))
    assert 10 <= calls <= 24, calls
    s = _strict_json(out / "summary.json")
    assert s["stopped"] == "unreadable" and "no verdict from me" in s["stop_reason"] and s["records"] == 0
    # fixed judge model: the rerun judges everything and exits 0
    upstream.reset()
    r = run_cli("judge", "--answers", answers, *_judge(upstream), "-o", out)
    assert r.exit_code == 0, r.output
    assert _strict_json(out / "summary.json")["records"] == 24


def test_a_judge_that_reads_some_replies_goes_on_and_exits_3_for_the_errors(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    answers, out = _answers(tmp_path, upstream), tmp_path / "judged"
    upstream.inject("nonsense", times=3, model="judge", after=0)  # one prompt's 3 tries unread, from the start
    r = run_cli("judge", "--answers", answers, *_judge(upstream), "--concurrency", 1, "--judge-retries", 2, "-o", out)
    assert r.exit_code == 3, r.output
    s = _strict_json(out / "summary.json")
    assert s["errors"] == 1 and s["records"] == 23 and s["stopped"] == "done"


# -- item 7: answer size ---------------------------------------------------------------------------


def test_an_answer_over_the_size_cap_is_an_error_not_megabytes_on_disk(tmp_path: Path) -> None:
    rec = synthetic_sums(3)
    q = list(rec["big"])
    rec["big"][q[1]] = Recorded("lorem ipsum " * 200_000, 12, 600_000, 1.0)  # 2.4 MB of answer
    with ReplayUpstream(rec) as up:
        out = tmp_path / "out"
        r = run_cli("collect", "--prompts", _prompts(tmp_path, up), *_models(up), *PRICES, "-o", out)
        assert r.exit_code == 3, r.output
        assert (out / "answers.jsonl").stat().st_size < 100_000
        rows = {
            row["messages"][-1]["content"]: row
            for row in map(json.loads, (out / "answers.jsonl").read_text().splitlines())
        }
        big = rows[q[1]]["answers"]["big"]
        assert (
            big["text"] is None
            and "2,400,000 characters, over the cap of 1,000,000 (--max-answer-chars)" in big["error"]
        )
        assert big["cost"] == pytest.approx((12 * 10 + 600_000 * 30) / 1e6)  # paid for: it counts
        assert _strict_json(out / "summary.json")["cost_total"] >= big["cost"]
        assert max(up.requests_for("big").values()) == 1  # not retried in the run
        # the cap is the user's to raise
        r = run_cli(
            "collect",
            "--prompts",
            _prompts(tmp_path, up),
            *_models(up),
            *PRICES,
            "--max-answer-chars",
            3_000_000,
            "-o",
            out,
        )
        assert r.exit_code == 0, r.output
        rows = {
            row["messages"][-1]["content"]: row
            for row in map(json.loads, (out / "answers.jsonl").read_text().splitlines())
        }
        assert len(rows[q[1]]["answers"]["big"]["text"]) == 2_400_000


def test_a_reply_in_flight_at_the_stop_reports_the_same_stop_not_a_larger_count() -> None:
    """Two calls in flight at the 10th unread reply: the second reply to come back used to raise
    "11 replies ..." and, reported last, the user read a count that depended on timing."""
    from tela_core.infra.errors import JudgeOutputError
    from tela_core.judging.run import NothingReadable, ReplyWatch

    watch = ReplyWatch(3)
    for _ in range(2):
        watch.unread("llm-judge", JudgeOutputError("no [[k]]", reply="shrug"))
    messages = []
    for _ in range(2):
        with pytest.raises(NothingReadable) as e:
            watch.unread("llm-judge", JudgeOutputError("no [[k]]", reply="shrug"))
        messages.append(str(e.value))
    assert messages[0] == messages[1] and messages[0].startswith("3 replies of the judge model"), messages
