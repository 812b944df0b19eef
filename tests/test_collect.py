"""`tela collect`: each model's answer to each prompt, resumable and budgeted, against a STAND-IN for
remote model APIs (tela_core.testkit.replay_upstream: a loopback OpenAI-compatible server that replays
real models' recorded answers, counts every request per prompt, and misbehaves on demand: 429 with
Retry-After, 401, hangs, 5xx, bodies that are not JSON). Nothing here reaches a network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tela_core.collect.limits import RateWindow
from tela_core.collect.retry import RetryPolicy, retry_after_seconds
from tela_core.testkit.helpers import needs_public_data, one_error_line, public_data, run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

ARENA = public_data("routerarena-sub10")
HAIKU, GEMINI = "claude-3-haiku-20240307", "gemini-2.0-flash-001"
TELA = str(Path(sys.executable).with_name("tela"))


def _synthetic(n: int = 24) -> dict[str, dict[str, Recorded]]:
    """Recorded answers of two models to n arithmetic questions (the small one wrong on every third)."""
    rec: dict[str, dict[str, Recorded]] = {"small": {}, "big": {}}
    for i in range(n):
        q = f"What is {i} + {i + 1}?"
        rec["big"][q] = Recorded(f"{2 * i + 1}", 10 + i, 5, 1.0)
        rec["small"][q] = Recorded(f"{2 * i + 1 + (i % 3 == 0)}", 10 + i, 4, float(i % 3 != 0))
    return rec


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream(_synthetic()) as up:
        yield up


def _prompts(tmp_path: Path, up: ReplayUpstream, n: int | None = None, model: str = "big") -> Path:
    p = tmp_path / "prompts.jsonl"
    qs = up.prompts(model)[:n]
    p.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in qs), encoding="utf-8")
    return p


def _models(up: ReplayUpstream) -> list[str]:
    return ["--model", f"small={up.base_url}#small", "--model", f"big={up.base_url}#big"]


PRICES = ["--price", "small=1,2", "--price", "big=10,30"]


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]


def test_collect_writes_each_models_answer_usage_and_cost(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream), tmp_path / "out"
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), *PRICES, "-o", out)
    assert r.exit_code == 0, r.output
    assert "estimated cost $" in r.output and "24 prompts x 2 models" in r.output
    rows = _rows(out)
    assert [row["messages"][-1]["content"] for row in rows] == upstream.prompts("big")  # input order
    for row in rows:
        q = row["messages"][-1]["content"]
        for model in ("small", "big"):
            a, rec = row["answers"][model], upstream.recorded[model][q]
            assert a["text"] == rec.text and a["error"] is None
            assert a["usage"] == {"prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens}
            price_in, price_out = (1, 2) if model == "small" else (10, 30)
            assert a["cost"] == pytest.approx((rec.prompt_tokens * price_in + rec.completion_tokens * price_out) / 1e6)
            assert a["latency_s"] >= 0 and a["model"] == model
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answers"] == 48 and summary["errors"] == 0
    assert summary["cost_total"] == pytest.approx(sum(a["cost"] for row in rows for a in row["answers"].values()))
    assert not (out / ".journal.jsonl").exists()
    # a rerun asks nothing
    before = upstream.stats()["requests"]
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), *PRICES, "-o", out)
    assert r.exit_code == 0 and "48 answers already here, 0 to ask" in r.output
    assert upstream.stats()["requests"] == before


@needs_public_data("routerarena-sub10")
def test_collect_from_a_data_source_replays_real_models_answers(tmp_path: Path) -> None:
    """Prompts read by a tela source (RouterArena's folder), answered with the two models' real answers."""
    assert ARENA is not None
    with ReplayUpstream.from_routerarena(ARENA) as up:
        out = tmp_path / "out"
        prices = json.loads((ARENA / "cost.json").read_text())
        price = {
            m: f"{prices[m]['input_token_price_per_million']},{prices[m]['output_token_price_per_million']}"
            for m in (HAIKU, GEMINI)
        }
        r = run_cli(
            "collect",
            "--data",
            ARENA,
            "--sample",
            12,
            "--model",
            f"haiku={up.base_url}#{HAIKU}",
            "--model",
            f"gemini={up.base_url}#{GEMINI}",
            "--price",
            f"haiku={price[HAIKU]}",
            "--price",
            f"gemini={price[GEMINI]}",
            "-o",
            out,
            "--json",
        )
        assert r.exit_code == 0, r.output
        rows = _rows(out)
        assert len(rows) == 12 and all(
            row["source"]["source"] == "routerarena" and row["source"].get("group") for row in rows
        )
        real_cost = {}
        for m in (HAIKU, GEMINI):
            for line in (ARENA / f"{m}.jsonl").read_text(encoding="utf-8").splitlines():
                obj = json.loads(line)
                real_cost[(m, obj["question"])] = obj["evaluation_result"]["inference_cost"]
        for row in rows:
            q = row["messages"][-1]["content"]
            # answers are kept by model id (the names are how they were reached: "upstream")
            assert (
                row["answers"][HAIKU]["text"] == up.recorded[HAIKU][q].text
                and row["answers"][HAIKU]["upstream"] == "haiku"
            )
            assert row["answers"][GEMINI]["text"] == up.recorded[GEMINI][q].text
            # usage x the price list is what RouterArena recorded as each call's real cost
            assert row["answers"][HAIKU]["cost"] == pytest.approx(real_cost[(HAIKU, q)])
            assert row["answers"][GEMINI]["cost"] == pytest.approx(real_cost[(GEMINI, q)])
        assert max(up.requests_for(HAIKU).values()) == 1


def test_from_log_keeps_the_logged_answers_and_asks_only_the_missing_ones(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    qs = upstream.prompts("big")[:5]
    log = tmp_path / "shadow.jsonl"
    rows = [
        {
            "time": "2025-01-01T00:00:00Z",
            "request_id": f"req-{i}",
            "router": "knn",
            "w": 0.3,
            "chosen": "small",
            "models": ["small", "big"],
            "messages": [{"role": "user", "content": q}],
            "answers": {
                "small": {
                    "text": f"logged {i}",
                    "error": None,
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                    "latency_s": 0.1,
                }
            },
        }
        for i, q in enumerate(qs)
    ]
    log.write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"time": "2025', encoding="utf-8"
    )  # a killed server's torn line
    out = tmp_path / "out"
    decisions = tmp_path / "decisions.jsonl"  # tela serve --decision-log --log-prompts: the routed text, no answers
    decisions.write_text(
        json.dumps({"id": "req-9", "router": "knn", "w": 0.7, "chosen": "big", "prompt": upstream.prompts("big")[9]})
        + "\n"
        + json.dumps({"id": "req-10", "router": "knn", "w": 0.1, "chosen": "small"})
        + "\n",
        encoding="utf-8",
    )
    r = run_cli("collect", "--from-log", log, "--from-log", decisions, *_models(upstream), "-o", out)
    assert r.exit_code == 0, r.output
    assert "1 logged requests without a prompt skipped" in r.output
    assert sum(upstream.requests_for("small").values()) == 1 and sum(upstream.requests_for("big").values()) == 6
    got = _rows(out)
    assert [g["id"] for g in got] == [f"req-{i}" for i in range(5)] + ["req-9"]
    assert (
        got[0]["answers"]["small"]["text"] == "logged 0"
        and got[0]["answers"]["big"]["text"] == upstream.recorded["big"][qs[0]].text
    )
    assert got[5]["source"]["chosen"] == "big"


def test_collect_from_a_data_source_keeps_groups(tmp_path: Path, upstream: ReplayUpstream) -> None:
    from tela_core.data.records import seed_record

    data = tmp_path / "seed.jsonl"
    data.write_text(
        "".join(
            json.dumps(seed_record(q, None, group=f"g{i % 2}").to_json()) + "\n"
            for i, q in enumerate(upstream.prompts("big")[:4])
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = run_cli("collect", "--data", data, *_models(upstream), "-o", out)
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert [row["source"] for row in rows] == [{"source": "jsonl", "group": f"g{i % 2}"} for i in range(4)]
    assert [row["messages"] for row in rows] == [[{"role": "user", "content": q}] for q in upstream.prompts("big")[:4]]


def test_429_with_retry_after_is_honoured(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream, n=3), tmp_path / "out"
    upstream.inject("429", times=1, retry_after="2", model="big")
    r = run_cli(
        "collect", "--prompts", prompts, "--model", f"big={upstream.base_url}#big", "--concurrency", 1, "-o", out
    )
    assert r.exit_code == 0, r.output
    events = [e for e in upstream.events if e["model"] == "big"]
    first = events[0]["prompt"]
    again = [e["t"] for e in events if e["prompt"] == first]
    assert len(again) == 2 and again[1] - again[0] >= 2.0  # waited what Retry-After said, not the 1 s backoff
    assert all(row["answers"]["big"]["error"] is None for row in _rows(out))
    assert all(
        row["answers"]["big"]["tries"] == (2 if row["messages"][-1]["content"] == first else 1) for row in _rows(out)
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0  # in the past: now
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(base_s=1.0, cap_s=8.0)
    waits = [policy.backoff(n) for n in range(1, 8)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and all(4.0 <= w <= 8.0 for w in waits[3:])
    assert policy.wait(3, retry_after=30.0) == 30.0 and RetryPolicy(max_retry_after_s=60).wait(1, 3600.0) is None


def test_requests_and_tokens_per_minute_windows() -> None:
    import asyncio

    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    spread = RateWindow(3, window=60.0, clock=clock)  # 3 a minute: one start every 20 s, not 3 at once
    asyncio.run(spread.acquire(1))
    now[0] = 10.0
    assert spread.delay(1) == pytest.approx(10.0)
    burst = RateWindow(3, window=60.0, clock=clock, burst_s=60.0)  # a minute's burst allowed: the window holds
    for _ in range(3):
        assert burst.delay(1) == 0.0
        asyncio.run(burst.acquire(1))
    assert burst.delay(1) == pytest.approx(60.0)  # the first start leaves the window at t=70
    tokens = RateWindow(100, clock=clock, burst_s=60.0)
    slot = asyncio.run(tokens.acquire(80))
    assert tokens.delay(50) > 0
    tokens.adjust(slot, 20)  # the answer was shorter than reserved
    assert tokens.delay(50) == 0.0
    assert RateWindow(10, clock=clock).delay(500) == 0.0  # larger than the limit: alone, not stuck


def test_401_mid_run_stops_at_once_and_keeps_what_finished(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream), tmp_path / "out"
    upstream.inject("401", times=None, after=6)
    r = run_cli(
        "collect", "--prompts", prompts, "--model", f"big={upstream.base_url}#big", "--concurrency", 2, "-o", out
    )
    line = one_error_line(r)
    assert "big" in line and "401" in line and "refused the key" in line
    asked = upstream.requests_for("big")
    assert sum(asked.values()) <= 6 + 2 and max(asked.values()) == 1  # never retried
    rows = _rows(out)
    assert len(rows) == 6 and all(row["answers"]["big"]["text"] for row in rows)


def test_wrong_key_or_unreachable_upstream_is_one_line_per_model_before_any_call(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("What is 1 + 2?\n", encoding="utf-8")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with ReplayUpstream(_synthetic(), api_key="right") as up:
        cfg = tmp_path / "serve.yaml"
        cfg.write_text(
            f"upstreams:\n  big: {{base_url: '{up.base_url}', model: big, api_key_env: BIG_KEY}}\n"
            f"  small: {{base_url: 'http://127.0.0.1:{dead}/v1', model: small}}\n",
            encoding="utf-8",
        )
        out = tmp_path / "out"
        r = run_cli("collect", "--prompts", prompts, "--config", cfg, "-o", out, env={"BIG_KEY": "wrong"})
        line = one_error_line(r)
        assert "2 models failed the check before any call" in line
        text = r.output
        assert "  big: " in text and "HTTP 401" in text and "  small: " in text and "ClientConnectorError" in text
        assert up.stats()["requests"] == 0 and not out.exists()


def test_a_hanging_upstream_times_out_into_error_answers(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream, n=2), tmp_path / "out"
    upstream.inject("hang", times=None, model="big")
    t0 = time.monotonic()
    # 2 s: small's answers must come within it too, on a loaded machine (its stand-in shares this process)
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), "--timeout", 2, "--retries", 1, "-o", out)
    assert r.exit_code == 3, r.output  # answers ended in errors: exit 3, so `collect && judge` stops
    assert time.monotonic() - t0 < 30
    for row in _rows(out):
        assert (
            row["answers"]["big"]["text"] is None
            and "no answer within 2 s after 2 tries" in row["answers"]["big"]["error"]
        )
        assert row["answers"]["small"]["text"]
    assert "2 errors" in r.output
    # the errors are asked again on the next run (they were never answered), the answers are not
    upstream.reset()
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), "-o", out)
    assert r.exit_code == 0 and "2 answers already here, 2 to ask (2 after an error)" in r.output
    assert all(row["answers"]["big"]["text"] for row in _rows(out))
    assert max(upstream.requests_for("small").values()) == 1


def test_garbage_and_5xx_are_retried_then_recorded(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream, n=1), tmp_path / "out"
    upstream.inject("503", times=1, model="big")
    upstream.inject("garbage", times=1, model="big")
    r = run_cli("collect", "--prompts", prompts, "--model", f"big={upstream.base_url}#big", "-o", out)
    assert r.exit_code == 0, r.output
    (row,) = _rows(out)
    assert row["answers"]["big"]["text"] and row["answers"]["big"]["tries"] == 3
    upstream.inject("garbage", times=None, model="big")
    r = run_cli(
        "collect", "--prompts", prompts, "--model", f"big={upstream.base_url}#big", "--retries", 1, "-o", out, "--force"
    )
    (row,) = _rows(out)
    assert row["answers"]["big"]["text"] is None and "unusable answer" in row["answers"]["big"]["error"]


def test_max_cost_stops_where_it_says(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream), tmp_path / "out"
    # a call reserves its prompt estimate at $10/M and all 64 --max-tokens at $30/M (>= $0.00192) while in
    # flight, and really costs ~$0.0004 (10..33 prompt + 5 answer tokens): a $0.005 budget stops mid-file
    args = [
        "collect",
        "--prompts",
        prompts,
        "--model",
        f"big={upstream.base_url}#big",
        "--price",
        "big=10,30",
        "--max-tokens",
        64,
        "--concurrency",
        1,
        "-o",
        out,
    ]
    r = run_cli(*args, "--max-cost", 0.005, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert s["stopped"] == "budget" and 0 < s["answers"] < 24
    assert (
        s["cost_total"] <= 0.005 < s["cost_total"] + 0.0021
    )  # within budget, and stopped only when the next call could pass it
    assert "the estimate is over it" in r.output
    asked = sum(upstream.requests_for("big").values())
    assert asked == s["answers"]
    # the same budget again: nothing more fits, nothing is asked
    r = run_cli(*args, "--max-cost", 0.005)
    assert r.exit_code == 0 and sum(upstream.requests_for("big").values()) == asked
    assert "stopped at the budget" in r.output
    # a larger one finishes, asking only what is missing
    r = run_cli(*args, "--max-cost", 1)
    assert r.exit_code == 0, r.output
    assert len(_rows(out)) == 24 and max(upstream.requests_for("big").values()) == 1


def test_dry_run_prints_the_estimate_and_asks_nothing(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts, out = _prompts(tmp_path, upstream), tmp_path / "out"
    r = run_cli("collect", "--prompts", prompts, *_models(upstream), *PRICES, "--dry-run", "-o", out)
    assert r.exit_code == 0 and "estimated cost $" in r.output and "48 to ask" in r.output
    assert "nothing was asked or written: run it again without --dry-run" in r.output  # and what to do next
    assert upstream.stats()["requests"] == 0 and not out.exists()


def test_models_prices_and_limits_from_tela_serves_config(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """The config file tela serve reads names the models, their prices and their limits."""
    prompts, out = _prompts(tmp_path, upstream, n=6), tmp_path / "out"
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"upstreams:\n  small: {{base_url: '{upstream.base_url}', model: small, price_input: 1, price_output: 2}}\n"
        f"  big: {{base_url: '{upstream.base_url}', model: big, price_input: 10, price_output: 30,\n"
        f"         max_concurrency: 1, requests_per_minute: 120, tokens_per_minute: 100000}}\n",
        encoding="utf-8",
    )
    r = run_cli("collect", "--prompts", prompts, "--config", cfg, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{") :])
    assert s["models"]["big"] == {"model": "big", "price_input": 10.0, "price_output": 30.0} and s["answers"] == 12
    big = [e["t"] for e in upstream.events if e["model"] == "big"]
    assert big[-1] - big[0] >= 4 * 0.5 * 0.9  # 120 a minute: a burst of 2 (1 s worth), then one start every 0.5 s


@pytest.mark.parametrize(
    "case",
    [
        "empty prompt file",
        "no prompts given",
        "unknown upstream",
        "max-cost without prices",
        "bad model flag",
        "source without data",
        "bad limit in config",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, upstream: ReplayUpstream, case: str) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    prompts = _prompts(tmp_path, upstream, n=2)
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"upstreams:\n  big: {{base_url: '{upstream.base_url}', model: big}}\n", encoding="utf-8")
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text(
        f"upstreams:\n  big: {{base_url: '{upstream.base_url}', model: big, max_concurrency: 0}}\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    argv, expect = {
        "empty prompt file": (["--prompts", empty, *_models(upstream)], f"{empty}: no prompts"),
        "no prompts given": ([*_models(upstream)], "give the prompts with one of --data"),
        "unknown upstream": (["--prompts", prompts, "--config", cfg, "--model", "huge"], "no upstream named 'huge'"),
        "max-cost without prices": (
            ["--prompts", prompts, *_models(upstream), "--max-cost", 1],
            "--max-cost needs each model's price",
        ),
        "bad model flag": (["--prompts", prompts, "--model", "big=127.0.0.1:8000#x"], "must start with http"),
        "source without data": (
            ["--prompts", prompts, *_models(upstream), "--source", "jsonl"],
            "does not take --source",
        ),
        "bad limit in config": (
            ["--prompts", prompts, "--config", bad_cfg],
            f"{bad_cfg}: upstreams.big.max_concurrency: Input should be",
        ),
    }[case]
    line = one_error_line(run_cli("collect", *argv, "-o", out))
    assert expect in line, line
    assert upstream.stats()["requests"] == 0 and not out.exists()


def test_kill_mid_collect_then_rerun_asks_only_what_is_missing(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """A real SIGKILL while answers come in: every answer recorded before the kill is asked exactly
    once overall; only the calls in flight at the kill (never answered) are asked again."""
    prompts, out = _prompts(tmp_path, upstream), tmp_path / "out"
    upstream.inject("hang", times=None, after=15)  # 15 answers, then the next calls hang: the kill lands mid-run
    cmd = [TELA, "collect", "--prompts", str(prompts), *_models(upstream), "--concurrency", 2, "-o", str(out)]
    cmd = [str(c) for c in cmd]
    env = {**os.environ}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    journal = out / ".journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text(encoding="utf-8").splitlines()) >= 15:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # the hung calls are in flight
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    recorded = {
        (e["model"], e["answer"]["text"]) for e in map(json.loads, journal.read_text(encoding="utf-8").splitlines())
    }
    n = len(recorded)
    assert 15 <= n < 48 and not (out / "answers.jsonl").exists()
    upstream.reset()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{n} answers already here, {48 - n} to ask" in r.stderr
    rows = _rows(out)
    assert len(rows) == 24 and all(a["text"] for row in rows for a in row["answers"].values())
    for model in ("small", "big"):
        counts = upstream.requests_for(model)
        for q, n in counts.items():
            answered_before = (model, upstream.recorded[model][q].text) in recorded
            assert n == 1 if answered_before else n <= 2, (model, q, n)
    twice = sum(1 for m in ("small", "big") for n in upstream.requests_for(m).values() if n == 2)
    assert twice <= 4  # at most the calls in flight at the kill (2 per model)
    assert not journal.exists()


def test_from_log_answers_get_their_cost_from_logged_usage_and_the_price(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """Records judged from live traffic carry costs like collected ones: a logged answer's cost is its
    logged usage times the model's price; it was paid by serving, so it does not count against --max-cost."""
    q = upstream.prompts("big")[0]
    log = tmp_path / "shadow.jsonl"
    log.write_text(
        json.dumps(
            {
                "time": "2025-01-01T00:00:00Z",
                "request_id": "req-0",
                "router": "knn",
                "w": 0.3,
                "chosen": "small",
                "models": ["small", "big"],
                "messages": [{"role": "user", "content": q}],
                "answers": {
                    "small": {
                        "text": "logged",
                        "error": None,
                        "latency_s": 0.1,
                        "usage": {"prompt_tokens": 1000, "completion_tokens": 500},
                    }
                },
            }
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = run_cli("collect", "--from-log", log, *_models(upstream), *PRICES, "--max-cost", "1", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    small = _rows(out)[0]["answers"]["small"]
    assert small["text"] == "logged" and small["cost"] == pytest.approx((1000 * 1 + 500 * 2) / 1e6)
    assert sum(upstream.requests_for("small").values()) == 0


def test_a_script_collects_through_the_library_as_tela_collect_does(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """``tela collect`` parses, calls ``tela_core.collect.job`` and prints: the same run from a script
    writes the same answers, and a second run into the folder asks nothing (issue 27)."""
    from tela_core.collect.endpoints import CallSettings, resolve_models
    from tela_core.collect.job import CollectJob, prompt_rows

    rows, _ = prompt_rows(prompts_file=_prompts(tmp_path, upstream, n=6))
    models = resolve_models([f"small={upstream.base_url}#small", f"big={upstream.base_url}#big"], None, [])
    with CollectJob(rows + rows[:2], models, tmp_path / "lib", CallSettings(), sample=5) as job:
        assert job.repeats == 2 and len(job.plan.jobs) == 10  # the same prompt twice is asked once
        summary = job.run()
    assert summary["answers"] == 10 and summary["this_run"]["asked"] == 10 and summary["errors"] == 0
    r = run_cli(
        "collect", "--prompts", tmp_path / "prompts.jsonl", *_models(upstream), "--sample", "5", "-o", tmp_path / "cli"
    )
    assert r.exit_code == 0, r.output
    assert _rows(tmp_path / "lib") == [
        {
            **row,
            "answers": {m: {**a, "latency_s": row_lib["answers"][m]["latency_s"]} for m, a in row["answers"].items()},
        }
        for row, row_lib in zip(_rows(tmp_path / "cli"), _rows(tmp_path / "lib"))
    ]
    with CollectJob(rows, models, tmp_path / "lib", CallSettings(), sample=5) as again:
        assert again.plan.jobs == [] and again.plan.reused == 10
