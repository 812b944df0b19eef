"""Shadow mode of `tela serve`: a sampled request, once answered, also goes to the model routing did
not choose, off the response path, and both answers go to the shadow log.

A real `tela serve` process on loopback, routing with a trained `length` router, driven by httpx
with 64 concurrent requests. The upstreams are STAND-INS for remote model APIs
(serve_support.EchoStandIn: OpenAI-compatible servers on loopback, in this process, that answer
"<model> answers <hash of the prompt>" with no timestamps or counters), so two runs of the same
requests get byte-identical answers and each logged answer says which prompt it was for.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_support import EchoStandIn, TelaServe, echo_pair, free_port, get, metric, train_length_router  # noqa: E402

THRESHOLD = 0.5


def _prompt(i: int) -> str:
    """Prompts from 20 to ~1,500 characters: the length router sends some to each model."""
    return f"Question {i}: " + "explain the reasons in detail " * (i % 50)


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tela_core import Router
    from tela_core.routing.artifact import write_policy

    d = train_length_router(tmp_path_factory.mktemp("shadow") / "len")
    write_policy(d, "threshold", {"threshold": THRESHOLD}, Router.load(d).models)
    return d


@pytest.fixture
def upstreams() -> Iterator[dict[str, EchoStandIn]]:
    with echo_pair() as ups:
        yield ups


def _serve(
    router_dir: Path, ups: dict[str, EchoStandIn], *args: str, config: str | None = None, tmp: Path | None = None
) -> TelaServe:
    extra: list[str] = []
    if config is not None:
        assert tmp is not None
        (tmp / "serve.yaml").write_text(config)
        extra = ["--config", str(tmp / "serve.yaml")]
    return TelaServe(
        [
            *extra,
            "--router",
            f"len={router_dir}",
            "--weak",
            f"{ups['small'].url}#small",
            "--strong",
            f"{ups['big'].url}#big",
            "--log-level",
            "warning",
            *args,
        ],
        free_port(),
    )


def _body(i: int, model: str = "router-len") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": _prompt(i)}],
    }
    if i % 3 == 1:
        body["stream"] = True
    if i % 6 == 1:
        body["stream_options"] = {"include_usage": True}
    return body


def _send_all(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, str], bytes, float]]:
    """Every body at once (one connection each); (status, headers, body bytes, seconds) in order."""

    async def run() -> list[tuple[int, dict[str, str], bytes, float]]:
        limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

            async def one(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes, float]:
                t0 = time.perf_counter()
                r = await client.post("/v1/chat/completions", json=body)
                return r.status_code, dict(r.headers), r.content, time.perf_counter() - t0

            return list(await asyncio.gather(*(one(b) for b in bodies)))

    return asyncio.run(run())


def _wait_for(url: str, done: Any, timeout: float = 40.0) -> str:
    """Poll /metrics until ``done(text)``; the last text."""
    deadline = time.monotonic() + timeout
    while True:
        _, text = get(url + "/metrics")
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def _records(path: Path) -> list[dict[str, Any]]:
    from tela_core.serve.shadow import read_shadow_log

    return [rec for _, rec in read_shadow_log(path)] if path.exists() else []


def _user_text(status_headers_body: tuple[int, dict[str, str], bytes, float]) -> str:
    """The answer text the user got, from a JSON answer or an event stream."""
    from tela_core.serve.shadow import answer_text, stream_text

    _, headers, content, _ = status_headers_body
    if headers["content-type"].startswith("text/event-stream"):
        return stream_text([content]) or ""
    return answer_text(json.loads(content)) or ""


def _shadowed_ids(decision_log: Path) -> set[str]:
    return {r["id"] for r in map(json.loads, decision_log.read_text().splitlines()) if r.get("shadow")}


def test_64_concurrent_every_sampled_request_gets_its_record_and_answers_are_unchanged(router_dir, upstreams, tmp_path):
    n = 64
    bodies = [_body(i) for i in range(n)]
    shadow_log, decisions = tmp_path / "shadow.jsonl", tmp_path / "decisions.jsonl"
    plain = _serve(router_dir, upstreams)
    try:
        without = _send_all(plain.url, bodies)
    finally:
        plain.stop()
    calls_without = upstreams["small"].calls + upstreams["big"].calls
    shadowed = _serve(
        router_dir,
        upstreams,
        "--shadow",
        "1",
        "--shadow-log",
        str(shadow_log),
        "--log-prompts",
        "--decision-log",
        str(decisions),
    )
    try:
        with_shadow = _send_all(shadowed.url, bodies)
        text = _wait_for(shadowed.url, lambda t: metric(t, "tela_shadow_requests_total") >= n)
    finally:
        out = shadowed.stop()
    assert "Traceback" not in out, out

    # the user's answers: byte-identical to the run without shadow mode, same routing headers
    assert [r[0] for r in with_shadow] == [200] * n
    for i, (a, b) in enumerate(zip(without, with_shadow)):
        assert a[2] == b[2], f"request {i}: the answer changed under shadow mode"
        for h in ("content-type", "x-tela-model", "x-tela-score", "x-tela-threshold", "x-tela-router"):
            assert a[1][h] == b[1][h], (i, h)
    assert {r[1]["x-tela-model"] for r in with_shadow} == {"small", "big"}  # both models chosen somewhere

    # every sampled request has its record, with both answers, the chosen one being the user's
    assert metric(text, "tela_shadow_requests_total") == n and metric(text, "tela_shadow_dropped_total") == 0
    assert metric(text, "tela_shadow_failed_total") == 0
    records = _records(shadow_log)
    assert len(records) == n
    by_id = {r["request_id"]: r for r in records}
    user_by_id = {r[1]["x-request-id"]: (i, r) for i, r in enumerate(with_shadow)}
    assert set(by_id) == set(user_by_id) == _shadowed_ids(decisions)
    for rid, rec in by_id.items():
        i, resp = user_by_id[rid]
        prompt = _prompt(i)
        assert rec["router"] == "len" and len(rec["models"]) == 2 and rec["chosen"] in rec["models"]
        assert rec["upstreams"][rec["chosen"]] == resp[1]["x-tela-model"]
        assert rec["w"] == pytest.approx(float(resp[1]["x-tela-score"]), abs=1e-6)
        assert rec["messages"] == bodies[i]["messages"]
        for model, answer in rec["answers"].items():
            upstream = rec["upstreams"][model]
            assert answer["error"] is None and answer["latency_s"] >= 0
            assert answer["text"] == EchoStandIn.answer_for(upstream, prompt)
            if model != rec["chosen"] or not bodies[i].get("stream") or bodies[i].get("stream_options"):
                assert answer["usage"]["prompt_tokens"] == len(prompt.split())
            else:
                assert answer["usage"] is None  # a stream the client did not ask usage for
        assert rec["answers"][rec["chosen"]]["text"] == _user_text(resp)
    # one shadow call per request, to the other model, besides the user's own calls
    assert upstreams["small"].calls + upstreams["big"].calls == calls_without + 2 * n


def test_a_full_queue_drops_and_counts_never_delaying_the_user(router_dir, upstreams, tmp_path):
    """Every request goes to small (threshold 1.0); the shadow calls go to a big that holds every
    answer back until all users have theirs (so a user who waited for a shadow call would never get
    one: no clock to race on a loaded machine). With 2 shadow workers and a queue of 4, the first
    requests get records, the rest are dropped and counted."""
    n, queue, workers = 64, 4, 2
    held = upstreams["big"].hold = threading.Event()
    shadow_log, decisions = tmp_path / "shadow.jsonl", tmp_path / "decisions.jsonl"
    server = _serve(
        router_dir,
        upstreams,
        "--shadow",
        "1",
        "--shadow-log",
        str(shadow_log),
        "--shadow-queue",
        str(queue),
        "--decision-log",
        str(decisions),
        config=f"shadow_workers: {workers}\n",
        tmp=tmp_path,
    )
    try:
        answers = _send_all(server.url, [_body(i % 5, model="router-len-1.0") for i in range(n)])
        deadline = time.monotonic() + 20  # the workers' first shadow calls are at big, held there
        while upstreams["big"].calls < workers and time.monotonic() < deadline:
            time.sleep(0.02)
        held_calls = upstreams["big"].calls
        held.set()
        text = _wait_for(
            server.url, lambda t: metric(t, "tela_shadow_requests_total") + metric(t, "tela_shadow_dropped_total") >= n
        )
    finally:
        held.set()
        out = server.stop()
    assert "Traceback" not in out, out
    assert [a[0] for a in answers] == [200] * n  # every user answered while big answered nothing
    assert {a[1]["x-tela-model"] for a in answers} == {"small"}
    assert held_calls == workers, "the shadow calls were not waiting at big while the users got answers"
    shadowed, dropped = (
        metric(text, "tela_shadow_requests_total"),
        metric(text, "tela_shadow_dropped_total", reason="queue_full"),
    )
    assert shadowed + dropped == n
    assert queue <= shadowed <= queue + workers  # up to the queue limit (plus the jobs in the workers' hands)
    records = _records(shadow_log)
    assert len(records) == shadowed
    assert {r["request_id"] for r in records} <= _shadowed_ids(decisions) and len(_shadowed_ids(decisions)) == n


def test_a_failing_shadow_upstream_never_fails_the_user_request(router_dir, upstreams, tmp_path):
    n = 32
    upstreams["big"].mode = "fail"
    shadow_log = tmp_path / "shadow.jsonl"
    server = _serve(router_dir, upstreams, "--shadow", "1", "--shadow-log", str(shadow_log), "--log-prompts")
    try:
        answers = _send_all(server.url, [_body(i, model="router-len-1.0") for i in range(n)])
        text = _wait_for(server.url, lambda t: metric(t, "tela_shadow_requests_total") >= n)
    finally:
        out = server.stop()
    assert "Traceback" not in out, out
    assert [a[0] for a in answers] == [200] * n
    for i, a in enumerate(answers):
        assert _user_text(a) == EchoStandIn.answer_for("small", _prompt(i))
    assert metric(text, "tela_shadow_failed_total", router="len") == n
    assert metric(text, "tela_fallbacks_total") == 0
    for rec in _records(shadow_log):
        strong = rec["models"][1]
        assert rec["chosen"] == rec["models"][0]
        assert "HTTP 500" in rec["answers"][strong]["error"] and "text" not in rec["answers"][strong]
        assert rec["answers"][rec["chosen"]]["error"] is None


def test_without_log_prompts_no_text_reaches_the_log_and_rate_samples(router_dir, upstreams, tmp_path):
    n = 64
    shadow_log, decisions = tmp_path / "shadow.jsonl", tmp_path / "decisions.jsonl"
    server = _serve(
        router_dir, upstreams, "--shadow", "0.5", "--shadow-log", str(shadow_log), "--decision-log", str(decisions)
    )
    try:
        answers = _send_all(server.url, [_body(i) for i in range(n)])
        sampled = _shadowed_ids(decisions)
        _wait_for(server.url, lambda t: metric(t, "tela_shadow_requests_total") >= len(sampled))
    finally:
        server.stop()
    assert [a[0] for a in answers] == [200] * n
    assert 10 <= len(sampled) <= 54  # about half of 64 (4 standard deviations either side)
    records = _records(shadow_log)
    assert {r["request_id"] for r in records} == sampled
    raw = shadow_log.read_text()
    for rec in records:
        assert "messages" not in rec
        assert all("text" not in a and a["error"] is None for a in rec["answers"].values())
    for i in range(n):  # neither a prompt nor an answer, in any form
        assert _prompt(i) not in raw and "Question" not in raw
        assert (
            EchoStandIn.answer_for("small", _prompt(i)) not in raw
            and EchoStandIn.answer_for("big", _prompt(i)) not in raw
        )


def test_shadow_settings_are_checked_before_serving(router_dir, tmp_path):
    from tela_core.testkit.helpers import one_error_line, run_cli

    base = [
        "serve",
        "--router",
        f"len={router_dir}",
        "--weak",
        "http://127.0.0.1:9/v1#small",
        "--strong",
        "http://127.0.0.1:9/v1#big",
        "--check",
    ]
    line = one_error_line(run_cli(*base, "--shadow", "0.2"))
    assert "shadow_log" in line and "--shadow-log" in line
    line = one_error_line(run_cli(*base, "--shadow", "1.5", "--shadow-log", tmp_path / "s.jsonl"))
    assert "--shadow" in line
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"routers:\n  len: {{path: {router_dir}, shadow: 2}}\n")
    line = one_error_line(
        run_cli(
            "serve", "--config", cfg, "--weak", "http://127.0.0.1:9/v1#small", "--strong", "http://127.0.0.1:9/v1#big"
        )
    )
    assert "routers.len.shadow" in line and str(cfg) in line
    cfg.write_text("admin_token_env: TELA_TEST_NO_SUCH_TOKEN\n")
    line = one_error_line(run_cli(*base, "--config", cfg))
    assert "TELA_TEST_NO_SUCH_TOKEN" in line


def test_read_shadow_log_skips_only_cut_off_lines(tmp_path):
    from tela_core.infra.errors import InputError
    from tela_core.serve.shadow import read_shadow_log

    good = json.dumps({"request_id": "a", "answers": {}})
    p = tmp_path / "s.jsonl"
    p.write_text(good + "\n" + good[:15])
    assert [n for n, _ in read_shadow_log(p)] == [1]
    # a line cut off before the next one (a full disk tore it; the writer then starts a new line) is
    # skipped wherever it is; other damage is named
    p.write_text(good[:15] + "\n" + good + "\n")
    assert [n for n, _ in read_shadow_log(p)] == [2]
    p.write_text('{"request_id": oops}\n' + good + "\n")
    with pytest.raises(InputError, match=r"s.jsonl:1:"):
        list(read_shadow_log(p))
