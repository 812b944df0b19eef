"""Hostile-user probes of issue 24's fixes (paid calls and the server), each a bug found by attacking
them through the real CLI; each test fails on the code before its fix (docs/reliability.md lists them).

STAND-INS: the model APIs are tela_core.testkit.replay_upstream.ReplayUpstream (a loopback server
replaying fixed answers per model and prompt; its judge rates from a recorded score, it is not a
model) and tests/serve_support.EchoStandIn. `tela serve`, `tela collect` and `tela judge` are real.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tela_core.testkit.helpers import run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

sys.path.insert(0, str(Path(__file__).parent))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _questions() -> list[str]:
    return [f"What is {i} + {i + 1}?" for i in range(6)]


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    rec: dict[str, dict[str, Recorded]] = {"small-model-v1": {}, "big-model-v2": {}}
    for i, q in enumerate(_questions()):
        rec["big-model-v2"][q] = Recorded(f"{2 * i + 1}", 10 + i, 5, 1.0)
        rec["small-model-v1"][q] = Recorded(f"{2 * i + 2}", 10 + i, 4, 0.0)
    with ReplayUpstream(rec, judges=["judge"]) as up:
        yield up


def _config(path: Path, url: str, small_model: str = "small-model-v1") -> Path:
    path.write_text(
        "upstreams:\n"
        f"  small: {{base_url: '{url}', model: {small_model}, price_input: 1, price_output: 2}}\n"
        f"  big: {{base_url: '{url}', model: big-model-v2, price_input: 10, price_output: 30}}\n"
        f"  judge: {{base_url: '{url}', model: judge, price_input: 1, price_output: 1}}\n",
        encoding="utf-8",
    )
    return path


# -- an upstream whose model changed between serve and collect ----------------------------------------


def test_serve_shadow_log_records_the_model_id_each_answer_came_from(tmp_path: Path) -> None:
    """The shadow log names each answer's model by the router's name and the upstream; neither says
    which model the upstream sent then. Each answer now carries the model id sent (`model`)."""
    pytest.importorskip("uvicorn")
    import urllib.request

    from serve_support import EchoStandIn, TelaServe, free_port, train_length_router

    router = train_length_router(tmp_path / "len")
    small, big = EchoStandIn("small"), EchoStandIn("big")
    log = tmp_path / "shadow.jsonl"
    serve = TelaServe(
        [
            "--router",
            f"len={router}",
            "--weak",
            f"{small.url}#small",
            "--strong",
            f"{big.url}#big",
            "--shadow",
            "1",
            "--shadow-log",
            str(log),
            "--log-prompts",
            "--log-level",
            "warning",
        ],
        free_port(),
    )
    try:
        for i in range(2):
            body = {"model": "router-len", "messages": [{"role": "user", "content": f"question {i} " * (1 + 40 * i)}]}
            req = urllib.request.Request(
                serve.url + "/v1/chat/completions",
                data=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 200
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not log.exists() or len(_jsonl(log)) < 2):
            time.sleep(0.1)
    finally:
        serve.stop()
        small.close()
        big.close()
    records = _jsonl(log)
    assert len(records) == 2
    for rec in records:
        for name, answer in rec["answers"].items():
            assert answer["model"] == rec["upstreams"][name], rec  # --weak URL#small sends the model id "small"


def test_a_logged_answer_of_a_model_since_replaced_is_not_filed_under_the_new_one(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """serve.yaml's upstream `small` sent `small-model-v0` when the traffic was logged and sends
    `small-model-v1` now. Before, the old model's logged answers were filed under the new id (the
    upstream name matched) and never asked: records mixing two models under one name."""
    qs = _questions()[:4]
    lines = []
    for i, q in enumerate(qs):
        ans = {"error": None, "usage": {"prompt_tokens": 10, "completion_tokens": 4}, "latency_s": 0.1}
        lines.append(
            {
                "request_id": f"r{i}",
                "router": "mine",
                "chosen": "s",
                "models": ["s", "b"],
                "upstreams": {"s": "small", "b": "big"},
                "messages": [{"role": "user", "content": q}],
                "answers": {
                    "s": {"text": f"old small said {i}", "model": "small-model-v0", **ans},
                    "b": {"text": f"big said {i}", "model": "big-model-v2", **ans},
                },
            }
        )
    log = tmp_path / "shadow.jsonl"
    log.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    cfg = _config(tmp_path / "serve.yaml", upstream.base_url)
    r = run_cli(
        "collect", "--from-log", log, "--config", cfg, "--model", "small", "--model", "big", "-o", tmp_path / "out"
    )
    assert r.exit_code == 0, r.output
    assert sum(upstream.requests_for("small-model-v1").values()) == 4, r.output  # the new model's answers asked
    assert sum(upstream.requests_for("big-model-v2").values()) == 0, r.output  # the same model's answers kept
    assert "4 logged answers of models not asked left out (s)" in r.output
    rows = _jsonl(tmp_path / "out" / "answers.jsonl")
    assert all(not row["answers"]["small-model-v1"]["text"].startswith("old") for row in rows)
    assert all(row["answers"]["small-model-v1"]["model"] == "small-model-v1" for row in rows)


# -- a full disk tears a log line; the log stays readable ---------------------------------------------


def _shadow_record(i: int) -> dict[str, Any]:
    return {
        "time": "2026-01-01T00:00:00Z",
        "request_id": f"r{i}",
        "router": "mine",
        "chosen": "a",
        "models": ["a", "b"],
        "upstreams": {"a": "small", "b": "big"},
        "messages": [{"role": "user", "content": f"question {i} é"}],
        "answers": {
            "a": {"text": f"answer {i} " * 20, "error": None, "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
            "b": {"text": f"other {i}", "error": None, "usage": None},
        },
    }


def test_a_line_a_full_disk_tore_does_not_make_the_log_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk takes part of a line and refuses the rest (seen on a 64 KiB tmpfs: `write` wrote
    what fit, the next `write` raised ENOSPC). Before, the next line was appended to the torn part,
    and `tela collect --from-log` refused the whole log (`shadow.jsonl:4: not a JSON object`), every
    line of it, exit 2."""
    import errno

    from tela_core.infra.io import json_line_bytes
    from tela_core.serve import logfile
    from tela_core.serve.shadow import read_shadow_log

    path = tmp_path / "shadow.jsonl"
    log = logfile.AppendLog(path, "shadow log")
    log.write(json_line_bytes(_shadow_record(0)))
    real_write = logfile.os.write
    state = {"n": 0}

    def full_disk(fd: int, data: Any) -> int:
        state["n"] += 1
        if state["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # what fit
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logfile.os, "write", full_disk)
    with pytest.raises(OSError):
        log.write(json_line_bytes(_shadow_record(1)))
    monkeypatch.setattr(logfile.os, "write", real_write)
    log.write(json_line_bytes(_shadow_record(2)))  # space freed
    log.close()
    # a writer that crashed mid-line, then a restarted server appending to the same file
    with open(path, "ab") as fh:
        fh.write(json_line_bytes(_shadow_record(3))[:70])
    log = logfile.AppendLog(path, "shadow log")
    log.write(json_line_bytes(_shadow_record(4)))
    log.close()
    assert [rec["request_id"] for _, rec in read_shadow_log(path)] == ["r0", "r2", "r4"]
    # damage that is not a cut-off line is still named
    with open(path, "ab") as fh:
        fh.write(b'{"request_id": "r5", oops}\n' + json_line_bytes(_shadow_record(6)))
    from tela_core.infra.errors import InputError

    with pytest.raises(InputError, match=":6: not a JSON object"):
        list(read_shadow_log(path))


# -- a judge stopped on unreadable replies says what it spent --------------------------------------------


def _answers(tmp_path: Path, upstream: ReplayUpstream) -> tuple[Path, Path]:
    cfg = _config(tmp_path / "serve.yaml", upstream.base_url)
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": q}) + "\n" for q in _questions()), encoding="utf-8"
    )
    r = run_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.jsonl",
        "--config",
        cfg,
        "--model",
        "small",
        "--model",
        "big",
        "-o",
        tmp_path / "answers",
    )
    assert r.exit_code == 0, r.output
    return cfg, tmp_path / "answers"


def test_a_judge_stopped_on_unreadable_replies_reports_the_calls_it_paid_for(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """Before, a judge stopped after 10 unreadable replies (exit 4) printed "0 judge calls ... $0.0000":
    the calls made were only counted once a prompt got its judgement, and none did."""
    import re

    cfg, answers = _answers(tmp_path, upstream)
    upstream.inject("nonsense", times=None)
    r = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        cfg,
        "--set",
        "judge.rate=all",
        "-o",
        tmp_path / "judged",
    )
    assert r.exit_code == 4, r.output
    sent = sum(upstream.requests_for("judge").values())
    assert sent >= 10
    m = re.search(r"judged 0: 0 verdicts, 0 errors; (\d+) judge calls, .*?; \$([0-9.]+);", r.output)
    assert m is not None, r.output
    assert int(m.group(1)) == sent, r.output
    assert float(m.group(2)) > 0, r.output


# -- a number past a double's range in a request body ------------------------------------------------


def test_a_number_past_a_doubles_range_in_a_body_is_a_400_not_a_502(tmp_path: Path) -> None:
    """`"temperature": 1e400` parses as inf in Python: before, it was routed, refused by both
    upstreams' request writer and answered 502 "upstream failed" (after a fallback) for what is the
    client's error. And a body `null` was answered "nested more than 256 levels deep"."""
    pytest.importorskip("starlette")
    from serve_support import EchoStandIn, train_length_router
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app
    from tela_core.serve.config import build_config

    router = train_length_router(tmp_path / "len")
    small, big = EchoStandIn("small"), EchoStandIn("big")
    try:
        cfg = tmp_path / "serve.yaml"
        cfg.write_text(
            f"routers:\n  len: {{path: {router}, upstreams: [small, big]}}\n"
            f"upstreams:\n  small: {{base_url: '{small.url}', model: small}}\n"
            f"  big: {{base_url: '{big.url}', model: big}}\n",
            encoding="utf-8",
        )
        chat = json.dumps({"model": "router-len", "messages": [{"role": "user", "content": "What is 2 + 2?"}]})[:-1]
        with TestClient(create_app(build_config(cfg)), raise_server_exceptions=False) as client:
            for number in ("1e400", "-1e400", "[1, 2e999]"):
                r = client.post(
                    "/v1/chat/completions",
                    content=chat + f', "temperature": {number}}}',
                    headers={"content-type": "application/json"},
                )
                assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", (number, r.text)
                assert "out of range" in r.json()["error"]["message"]
            r = client.post(
                "/v1/chat/completions",
                content=chat + ', "temperature": 1e-400}',
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 200, r.text  # an underflow is 0.0, a number
            r = client.post("/v1/chat/completions", content="null", headers={"content-type": "application/json"})
            assert r.status_code == 400 and "must be a JSON object" in r.json()["error"]["message"], r.text
        assert small.calls + big.calls == 1
    finally:
        small.close()
        big.close()


def test_a_budget_stop_with_answers_in_error_exits_3(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """Both at once: the run stopped at --max-cost and some answers failed. The errors decide (exit 3,
    as --help and the docs say), so `collect && judge` stops. Holds the documented precedence."""
    cfg = _config(tmp_path / "serve.yaml", upstream.base_url)
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": q}) + "\n" for q in _questions()), encoding="utf-8"
    )
    upstream.inject("500", times=1)  # the first call (small's, row 1) fails; big's reservation is over the budget
    r = run_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.jsonl",
        "--config",
        cfg,
        "--model",
        "small",
        "--model",
        "big",
        "--retries",
        "0",
        "--max-tokens",
        "1000",
        "--max-cost",
        "0.01",
        "-o",
        tmp_path / "out",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stopped"] == "budget" and summary["errors"] >= 1, r.output
    assert r.exit_code == 3, r.output
    help_text = run_cli("collect", "--help").output
    assert "also when the run stopped at --max-cost too" in " ".join(help_text.split())


def test_a_logged_answer_over_the_answer_cap_is_not_stored(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """--max-answer-chars held for asked answers only: an answer read from the shadow log (serve
    keeps up to 8 MB of a streamed one, a JSON answer whole) went into answers.jsonl as it was."""
    cfg = _config(tmp_path / "serve.yaml", upstream.base_url)
    q = _questions()[0]
    line = {
        "request_id": "r0",
        "router": "mine",
        "chosen": "small-model-v1",
        "models": ["small-model-v1", "big-model-v2"],
        "upstreams": {"small-model-v1": "small", "big-model-v2": "big"},
        "messages": [{"role": "user", "content": q}],
        "answers": {
            "small-model-v1": {"text": "x" * 5000, "error": None},
            "big-model-v2": {"text": "3", "error": None},
        },
    }
    (tmp_path / "shadow.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    r = run_cli(
        "collect",
        "--from-log",
        tmp_path / "shadow.jsonl",
        "--config",
        cfg,
        "--model",
        "small",
        "--model",
        "big",
        "--max-answer-chars",
        "1000",
        "-o",
        tmp_path / "out",
    )
    assert r.exit_code == 0, r.output
    assert "(1 after an error)" in r.output
    row = _jsonl(tmp_path / "out" / "answers.jsonl")[0]
    assert row["answers"]["small-model-v1"]["text"] == "2"  # asked: the recorded answer, not the 5,000 x's
    assert row["answers"]["big-model-v2"]["text"] == "3" and row["answers"]["big-model-v2"]["from_log"]
    assert sum(upstream.requests_for("small-model-v1").values()) == 1


def test_judge_and_collect_never_share_an_output_folder(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """`tela judge --answers runs/a -o runs/a`: both commands keep `.journal.jsonl` and `summary.json`
    there. Before, judge took the folder, overwrote collect's summary and, when done, deleted the
    journal of a killed collect rerun: answers paid for and not yet in answers.jsonl, lost."""
    cfg, answers = _answers(tmp_path, upstream)
    journal = answers / ".journal.jsonl"
    journal.write_text(
        json.dumps({"id": "x", "sha": "0", "model": "small-model-v1", "answer": {"text": "paid"}}) + "\n",
        encoding="utf-8",
    )
    summary = (answers / "summary.json").read_text()
    r = run_cli(
        "judge", "--answers", answers, "--judge", "llm-judge", "--judge-model", "judge", "--config", cfg, "-o", answers
    )
    assert r.exit_code == 2, r.output
    assert "holds tela collect's answers.jsonl" in r.output
    assert journal.exists() and (answers / "summary.json").read_text() == summary
    assert not (answers / "judgements.jsonl").exists()
    # and the other way round
    ok = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        cfg,
        "-o",
        tmp_path / "judged",
    )
    assert ok.exit_code == 0, ok.output
    r = run_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.jsonl",
        "--config",
        cfg,
        "--model",
        "small",
        "--model",
        "big",
        "-o",
        tmp_path / "judged",
    )
    assert r.exit_code == 2 and "holds tela judge's judgements.jsonl" in r.output, r.output


# -- an upstream that reports token counts no model has -------------------------------------------------


class _LyingUsage:
    """A STAND-IN for a remote model API (or a proxy before it) whose answers report a made-up usage:
    ``count`` tokens of prompt and of answer (raw JSON text: a negative or 400-digit number)."""

    def __init__(self, count: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = (
            (
                '{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",'
                '"content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":COUNT,"completion_tokens":COUNT}}'
            )
            .replace("COUNT", count)
            .encode()
        )

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, raw: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._send(b'{"object":"list","data":[{"id":"m","object":"model"}]}')

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._send(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("count", ["-1000000000", "9" * 400])
def test_a_usage_report_no_model_has_neither_lifts_the_budget_nor_crashes(tmp_path: Path, count: str) -> None:
    """Before: a negative count made each answer cost -$2,000, so `--max-cost 0.001` had "$4,000.00
    left" on the rerun; a 400-digit count was an OverflowError traceback mid-run."""
    up = _LyingUsage(count)
    try:
        (tmp_path / "p.txt").write_text("".join(f"question {i}\n" for i in range(5)), encoding="utf-8")
        args = [
            "collect",
            "--prompts",
            tmp_path / "p.txt",
            "--model",
            f"m={up.url}#m",
            "--price",
            "m=1,1",
            "--max-cost",
            "0.01",
            "-o",
            tmp_path / "out",
        ]
        for _ in range(2):
            r = run_cli(*args)
            assert r.exit_code == 0, r.output
            assert "$-" not in r.output and "Traceback" not in r.output, r.output
        rows = _jsonl(tmp_path / "out" / "answers.jsonl")
        for row in rows:
            a = row["answers"]["m"]
            assert a["cost"] is not None and 0 < a["cost"] < 0.001, a  # priced from the estimate
    finally:
        up.close()


def test_serve_answers_when_the_upstream_reports_a_negative_usage(tmp_path: Path) -> None:
    """Before: every answer of such an upstream was a 500 after it was received (and paid for): the
    Prometheus token counter refused to go down, a traceback in the server log."""
    pytest.importorskip("starlette")
    from serve_support import train_length_router
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app
    from tela_core.serve.config import build_config

    router = train_length_router(tmp_path / "len")
    small, big = _LyingUsage("-5"), _LyingUsage("9" * 400)
    try:
        cfg = tmp_path / "serve.yaml"
        cfg.write_text(
            f"routers:\n  len: {{path: {router}, upstreams: [small, big], shadow: 1.0}}\n"
            f"upstreams:\n  small: {{base_url: '{small.url}', model: m, price_input: 1, price_output: 1}}\n"
            f"  big: {{base_url: '{big.url}', model: m, price_input: 1, price_output: 1}}\n"
            f"shadow_log: '{tmp_path / 'shadow.jsonl'}'\ndecision_log: '{tmp_path / 'decisions.jsonl'}'\n",
            encoding="utf-8",
        )
        with TestClient(create_app(build_config(cfg)), raise_server_exceptions=False) as client:
            for prompt in ("hi", "a long question " * 200):
                r = client.post(
                    "/v1/chat/completions",
                    json={"model": "router-len", "messages": [{"role": "user", "content": prompt}]},
                )
                assert r.status_code == 200, r.text
            metrics = client.get("/metrics").text
        assert "tela_tokens_total" in metrics
        for line in _jsonl(tmp_path / "decisions.jsonl"):
            assert line["prompt_tokens"] is None and (line["cost"] is None or line["cost"] >= 0), line
    finally:
        small.close()
        big.close()


def test_decision_log_then_shadow_log_keeps_the_conversation_the_answers_were_given_to(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """`--from-log decisions.jsonl --from-log shadow.jsonl` (the decision log holds every request's
    routed text, the shadow log the sampled ones in full): before, the first log's row won, so the
    logged answers to "system: Answer in French. / user: Q" were kept with the prompt "user: Q" only,
    and judged against a conversation that was never asked."""
    q = _questions()[0]
    convo = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": q}]
    (tmp_path / "decisions.jsonl").write_text(
        json.dumps(
            {
                "time": "2026-01-01T00:00:00Z",
                "id": "r0",
                "router": "mine",
                "chosen": "s",
                "upstream": "small",
                "prompt": q,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    ans = {"error": None, "usage": {"prompt_tokens": 10, "completion_tokens": 4}}
    (tmp_path / "shadow.jsonl").write_text(
        json.dumps(
            {
                "request_id": "r0",
                "router": "mine",
                "chosen": "s",
                "models": ["s", "b"],
                "upstreams": {"s": "small", "b": "big"},
                "messages": convo,
                "answers": {"s": {"text": "deux", **ans}, "b": {"text": "trois", **ans}},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    cfg = _config(tmp_path / "serve.yaml", upstream.base_url)
    r = run_cli(
        "collect",
        "--from-log",
        tmp_path / "decisions.jsonl",
        "--from-log",
        tmp_path / "shadow.jsonl",
        "--config",
        cfg,
        "--model",
        "small",
        "--model",
        "big",
        "-o",
        tmp_path / "out",
    )
    assert r.exit_code == 0, r.output
    [row] = _jsonl(tmp_path / "out" / "answers.jsonl")
    assert row["messages"] == convo
    assert row["answers"]["small-model-v1"]["text"] == "deux" and upstream.stats()["requests"] == 0
