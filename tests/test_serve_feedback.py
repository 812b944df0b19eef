"""`POST /v1/feedback` and the guard (issue 29, items 1 and 4): verdicts on answers by request id,
written to the feedback log and counted in /metrics; unknown, expired or unauthorised ones refused
with nothing written; live quality per router version, and the guard firing (and rolling back) when
a new version does worse.

The server is real (uvicorn on loopback, in a thread of this process), called with the official
`openai` client and httpx. Its upstreams are STAND-INS for remote model APIs
(serve_support.EchoStandIn: OpenAI-compatible servers on loopback that answer "<model> answers
<hash of the prompt>").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from serve_support import EchoStandIn, echo_pair, free_port, kept_log, metric, train_length_router  # noqa: E402

KEY = "client-key-1"
ADMIN = "admin-token-1"


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trainings of the same length router: two versions (their tela.json differ)."""
    base = tmp_path_factory.mktemp("feedback")
    return train_length_router(base / "a"), train_length_router(base / "b")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoStandIn]]:
    with echo_pair() as ups:
        yield ups


@pytest.fixture
def serve_log() -> Iterator[list[logging.LogRecord]]:
    with kept_log() as records:
        yield records


def _config(router: Path, ups: dict[str, EchoStandIn], tmp: Path, extra: str = "") -> Any:
    from tela_core.serve.config import build_config

    cfg = tmp / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {router}, upstreams: [small, big]}}\n"
        f"upstreams:\n  small: {{base_url: '{ups['small'].url}', model: small}}\n"
        f"  big: {{base_url: '{ups['big'].url}', model: big}}\n"
        f"keys: [{KEY}]\nadmin_token_env: W6_ADMIN\n"
        f"decision_log: {tmp / 'decisions.jsonl'}\nfeedback_log: {tmp / 'feedback.jsonl'}\n" + extra
    )
    return build_config(cfg)


@contextlib.contextmanager
def _serve(config: Any) -> Iterator[str]:
    """A real server (uvicorn, loopback) in a thread of this process; yields its base URL."""
    from tela_core.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _client(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def _ask(client: Any, prompt: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="router-len", messages=[{"role": "user", "content": prompt}]
    )
    assert raw.http_response.status_code == 200
    return raw.headers["x-request-id"]


def _rate(url: str, rid: str, score: Any, key: str | None = KEY, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + "/v1/feedback", json={"id": rid, "score": score, **extra}, headers=headers, timeout=20)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(autouse=True)
def _admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W6_ADMIN", ADMIN)


def test_feedback_is_taken_logged_and_counted_and_refused_with_nothing_written(routers, upstreams, tmp_path):
    from tela_core.serve.feedback import sign_id

    cfg = _config(routers[0], upstreams, tmp_path)
    log = tmp_path / "feedback.jsonl"
    with _serve(cfg) as url:
        client = _client(url)
        ids = [_ask(client, p) for p in ("What is 2 + 2?", "Prove Fermat's last theorem in full detail, please.")]
        # accepted: a number, "up", "down"; the same id again: last wins (written again, said so)
        answers = [_rate(url, ids[0], 0.75), _rate(url, ids[1], "down"), _rate(url, ids[1], "up")]
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        assert [r.json()["replaced"] for r in answers] == [False, False, True]
        rows = _rows(log)
        assert [(r["id"], r["score"]) for r in rows] == [(ids[0], 0.75), (ids[1], 0.0), (ids[1], 1.0)]
        decisions = {d["id"]: d for d in _rows(tmp_path / "decisions.jsonl")}
        for r in rows:  # each row says which router version and model answered: the decision log's
            d = decisions[r["id"]]
            assert r["known"] and r["router"] == "len" and r["source"] == "user"
            assert (r["router_version"], r["chosen"], r["upstream"]) == (
                d["router_version"],
                d["chosen"],
                d["upstream"],
            )

        # refused, nothing written: no key, a wrong key, a made-up id, a tampered one, an expired one,
        # a score outside [0, 1]
        tampered = ids[0][:-1] + ("0" if ids[0][-1] != "0" else "1")
        expired = sign_id("1-abc-7", now=time.time() - 2 * 86400)
        refused = {
            "no key": (_rate(url, ids[0], 1, key=None), 401, "invalid_api_key"),
            "wrong key": (_rate(url, ids[0], 1, key="nope"), 401, "invalid_api_key"),
            "made up": (_rate(url, "chatcmpl-123", 1), 404, "unknown_request_id"),
            "not ascii": (_rate(url, "1-2-3-" + "é" * 16, 1), 404, "unknown_request_id"),
            "tampered": (_rate(url, tampered, 1), 404, "unknown_request_id"),
            "expired": (_rate(url, expired, 1), 410, "expired_request_id"),
            "bad score": (_rate(url, ids[0], 1.5), 400, "invalid_score"),
            "bool score": (_rate(url, ids[0], True), 400, "invalid_score"),
        }
        for what, (r, status, code) in refused.items():
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (what, r.text)
        assert "x-request-id" in refused["made up"][0].json()["error"]["message"]
        # a request that got no answer (both stand-ins told to fail: 502) has nothing to rate
        for up in upstreams.values():
            up.mode = "fail"
        try:
            failed = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "router-len", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {KEY}"},
                timeout=20,
            )
        finally:
            for up in upstreams.values():
                up.mode = "ok"
        assert failed.status_code == 502
        r = _rate(url, failed.headers["x-request-id"], 1)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "no_answer"), r.text
        assert len(_rows(log)) == 3

        # an id another process of this server issued (same key: --workers N): taken, without its details
        other = sign_id("ffff-0123456789ab-1")
        r = _rate(url, other, 0.5)
        assert r.status_code == 200, r.text
        assert _rows(log)[-1] | {"time": None, "answered": None} == {
            "time": None,
            "id": other,
            "score": 0.5,
            "source": "user",
            "router": None,
            "router_version": None,
            "chosen": None,
            "upstream": None,
            "answered": None,
            "known": False,
        }
        metrics = httpx.get(url + "/metrics").text
    assert metric(metrics, "tela_feedback_total", router="len", result="accepted") == 3
    assert metric(metrics, "tela_feedback_total", router="unknown", result="accepted") == 1
    assert metric(metrics, "tela_feedback_score_total", router="len") == 1.75
    assert metric(metrics, "tela_feedback_total", result="unauthorized") == 2
    assert metric(metrics, "tela_feedback_total", result="unknown_request_id") == 3
    assert metric(metrics, "tela_feedback_total", result="expired_request_id") == 1


def test_feedback_off_is_a_403_and_ids_stay_unsigned(routers, upstreams, tmp_path):
    from starlette.testclient import TestClient

    from tela_core.serve import feedback
    from tela_core.serve.app import create_app

    plain = _config(routers[0], upstreams, tmp_path).model_copy(update={"feedback_log": None})
    feedback._KEY.clear()  # as in a process that never served feedback
    with TestClient(create_app(plain)) as client:
        headers = {"authorization": f"Bearer {KEY}"}
        r = client.post(
            "/v1/chat/completions",
            json={"model": "router-len", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
        assert r.status_code == 200 and r.headers["x-request-id"].count("-") == 2  # PID-RANDOM-N, as before
        r = client.post("/v1/feedback", json={"id": r.headers["x-request-id"], "score": 1}, headers=headers)
    assert r.status_code == 403 and "feedback_log" in r.json()["error"]["message"]
    assert not (tmp_path / "feedback.jsonl").exists()


def test_guard_without_feedback_log_is_a_config_error(routers, upstreams, tmp_path):
    from tela_core.serve.config import ConfigError, check_config

    cfg = _config(routers[0], upstreams, tmp_path).model_copy(update={"feedback_log": None, "guard": True})
    with pytest.raises(ConfigError, match="guard: the guard watches feedback; set feedback_log"):
        check_config(cfg)


def test_the_guard_fires_when_the_new_version_does_worse(routers, upstreams, tmp_path, serve_log):
    """v1 (router a) gets good verdicts, v2 (router b, after a reload) bad ones: the guard says so in
    /metrics and the log; a version as good as the last does not fire it."""
    live = tmp_path / "live"
    live.symlink_to(routers[0])
    cfg = _config(live, upstreams, tmp_path, "guard: true\nguard_min: 20\nguard_window: 50\n")
    with _serve(cfg) as url:
        client = _client(url)
        admin = {"authorization": f"Bearer {ADMIN}"}

        def round_of(n: int, score: float, tag: str) -> None:
            for i in range(n):
                assert _rate(url, _ask(client, f"{tag} question {i}"), score).status_code == 200

        round_of(20, 1.0, "v1")
        live.unlink()
        live.symlink_to(routers[1])
        assert httpx.post(url + "/admin/reload", headers=admin).status_code == 200
        round_of(19, 0.0, "v2")
        metrics = httpx.get(url + "/metrics").text
        assert metric(metrics, "tela_guard_regressed", router="len") == 0  # 19 < guard_min: not yet
        round_of(1, 0.0, "v2 last")
        metrics = httpx.get(url + "/metrics").text
    assert metric(metrics, "tela_guard_regressed", router="len") == 1
    versions = {
        line.split('version="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("tela_guard_quality{")
    }
    assert sorted(versions.values()) == [0.0, 1.0], versions
    warnings = [
        r.getMessage() for r in serve_log if r.levelno == logging.WARNING and r.getMessage().startswith("guard:")
    ]
    assert len(warnings) == 1 and "scores 0.000 on its last 20 verdicts, below version" in warnings[0], warnings


def test_guard_compare_needs_a_drop_beyond_margin_and_noise():
    from tela_core.serve.guard import compare_windows

    good, same = [1.0, 0.0] * 50, [0.0, 1.0] * 50
    assert compare_windows("v2", same, "v1", good, margin=0.05, minimum=50).fired is False
    assert compare_windows("v2", [0.4] * 60, "v1", [0.5] * 60, margin=0.05, minimum=50).fired is True
    assert compare_windows("v2", [0.47] * 60, "v1", [0.5] * 60, margin=0.05, minimum=50).fired is False
    noisy = compare_windows("v2", [0.0, 1.0, 1.0] * 20, "v1", [1.0, 0.0, 1.0, 1.0] * 15, margin=0.05, minimum=50)
    assert noisy is not None and noisy.drop > 0.05 and not noisy.fired  # 0.08 lower, within two standard errors
    assert compare_windows("v2", [0.0] * 10, "v1", [1.0] * 60, margin=0.05, minimum=50) is None


def test_guard_rolls_a_versions_folder_back_when_asked(routers, upstreams, tmp_path, serve_log):
    versions = pytest.importorskip("tela_core.routing.versions")
    folder = tmp_path / "versions"
    versions.init(folder)
    for r in routers:
        name = versions.add_version(folder, r)
        versions.set_current(folder, name, "promote")
    cfg = _config(folder, upstreams, tmp_path, "guard: true\nguard_min: 10\nguard_window: 20\nguard_rollback: true\n")
    # start on v1, then promote v2 (the server follows the folder, or is reloaded)
    versions.set_current(folder, "v1", "rollback")
    with _serve(cfg) as url:
        client = _client(url)
        admin = {"authorization": f"Bearer {ADMIN}"}
        for i in range(10):
            assert _rate(url, _ask(client, f"old {i}"), 1.0).status_code == 200
        versions.set_current(folder, "v2", "promote")
        assert httpx.post(url + "/admin/reload", headers=admin).status_code == 200
        for i in range(10):
            assert _rate(url, _ask(client, f"new {i}"), 0.0).status_code == 200
        deadline = time.monotonic() + 20
        while versions.read_state(folder).current != "v1" and time.monotonic() < deadline:
            time.sleep(0.05)
        while time.monotonic() < deadline:
            metrics = httpx.get(url + "/metrics").text
            if metric(metrics, "tela_guard_rollback_total", router="len", result="ok") == 1:
                break
            time.sleep(0.05)
        rid = _ask(client, "after the rollback")
        row = _rate(url, rid, 1.0)
    state = versions.read_state(folder)
    assert state.current == "v1" and state.history[-1]["action"] == "rollback" and state.history[-1]["by"] == "guard"
    record = json.loads((folder / state.history[-1]["record"]).read_text())
    assert record["from"] == "v2" and record["to"] == "v1" and record["numbers"]["drop"] == 1.0
    assert metric(metrics, "tela_guard_rollback_total", router="len", result="ok") == 1
    assert row.status_code == 200 and _rows(tmp_path / "feedback.jsonl")[-1]["router_version"] == "v1"


def test_feedback_becomes_outcome_records_alone_and_beside_a_judges(routers, upstreams, tmp_path):
    """`tela feedback`: each rated request's prompt from the decision log (log_prompts), its score
    to the model that answered, the last verdict winning; a judge's records kept beside."""
    from tela_core.testkit.helpers import run_cli

    cfg = _config(routers[0], upstreams, tmp_path, "log_prompts: true\n")
    prompts = ["What is 2 + 2?", "Explain, step by step and in depth, how a transformer attends.", "Name a colour."]
    with _serve(cfg) as url:
        client = _client(url)
        ids = [_ask(client, p) for p in prompts]
        passed = client.chat.completions.with_raw_response.create(  # an upstream named: not routed
            model="small", messages=[{"role": "user", "content": "hello"}]
        )
        for rid, score in ((ids[0], "down"), (ids[0], "up"), (ids[1], 0.25), (ids[2], 0.5)):
            assert _rate(url, rid, score).status_code == 200
        assert _rate(url, passed.headers["x-request-id"], 1).status_code == 200
        metrics = httpx.get(url + "/metrics").text
    assert metric(metrics, "tela_feedback_total", router="none", result="accepted") == 1
    decisions = {d["id"]: d for d in _rows(tmp_path / "decisions.jsonl")}
    out = tmp_path / "labels"
    res = run_cli("feedback", tmp_path / "feedback.jsonl", "--from-log", tmp_path / "decisions.jsonl", "-o", out)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["feedback"] == 3
    assert "3 records" in res.output and "3 from feedback, 0 from the judge" in res.output
    assert "4 rated requests in 5 feedback lines; skipped: 1 not_routed" in res.output
    records = {r["id"]: r for r in _rows(out / "records.jsonl")}
    assert [records[i]["prompt"] for i in ids] == prompts
    for rid, score in zip(ids, (1.0, 0.25, 0.5)):  # the last verdict on ids[0] ("up") wins
        assert records[rid]["outcomes"] == {decisions[rid]["chosen"]: score}
        assert "label" not in records[rid] or records[rid]["label"] is None

    # beside a judge's records: the judged-and-rated request keeps the judge's record
    judged = tmp_path / "judged.jsonl"
    judge_rec = dict(records[ids[1]], outcomes={"small": 0.0, "big": 1.0}, id=ids[1])
    other = dict(records[ids[2]], id="judged-only", outcomes={"small": 1.0, "big": 1.0})
    judged.write_text(json.dumps(judge_rec) + "\n" + json.dumps(other) + "\n")
    res = run_cli(
        "feedback",
        tmp_path / "feedback.jsonl",
        "--from-log",
        tmp_path / "decisions.jsonl",
        "--with",
        judged,
        "-o",
        out,
        "--force",
        "--json",
    )
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output)
    assert (counts["records"], counts["feedback"], counts["judged"], counts["both"]) == (4, 2, 2, 1)
    assert counts["skipped_not_routed"] == 1
    merged = {r["id"]: r for r in _rows(out / "records.jsonl")}
    assert merged[ids[1]]["outcomes"] == {"small": 0.0, "big": 1.0} and merged[ids[0]]["outcomes"] != {}

    # a feedback line that is no verdict: one line naming the file and line, exit 2, nothing written
    bad = tmp_path / "bad-feedback.jsonl"
    bad.write_text((tmp_path / "feedback.jsonl").read_text() + '{"id": "x", "score": 7}\n{"id": "y", "score": 1}\n')
    res = run_cli("feedback", bad, "--from-log", tmp_path / "decisions.jsonl", "-o", tmp_path / "new")
    assert res.exit_code == 2 and f"{bad}:6" in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "new").exists()


def test_with_two_workers_each_takes_the_others_ids(routers, upstreams, tmp_path):
    """`tela serve --workers 2`: a verdict reaching the worker that did not answer is taken (the
    workers sign ids with one key), written with "known": false; the answering worker's has details."""
    from serve_support import TelaServe

    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {routers[0]}, upstreams: [small, big]}}\n"
        f"upstreams:\n  small: {{base_url: '{upstreams['small'].url}', model: small}}\n"
        f"  big: {{base_url: '{upstreams['big'].url}', model: big}}\n"
        f"feedback_log: {tmp_path / 'feedback.jsonl'}\n"
    )
    env = {"TELA_SERVE_FEEDBACK_KEY": ""}  # not this test process's key: the server draws its own
    server = TelaServe(["--config", str(cfg), "--workers", "2"], free_port(), extra_env=env)

    def both_ways(rows: list[dict[str, Any]]) -> bool:  # both workers answered; verdicts reached each kind
        return len({r["id"].split("-")[0] for r in rows}) == 2 and 0 < sum(r["known"] for r in rows) < len(rows)

    try:
        statuses = []
        # a new connection per request: either worker may take it (the kernel's choice; on a loaded
        # machine one may take many in a row), so asked until both have been seen both ways
        for i in range(64):
            with httpx.Client(timeout=20) as c:
                rid = c.post(
                    server.url + "/v1/chat/completions",
                    json={"model": "router-len", "messages": [{"role": "user", "content": f"question {i}"}]},
                ).headers["x-request-id"]
            with httpx.Client(timeout=20) as c:
                statuses.append(c.post(server.url + "/v1/feedback", json={"id": rid, "score": 1}).status_code)
            if both_ways(_rows(tmp_path / "feedback.jsonl")):
                break
    finally:
        server.stop()
    rows = _rows(tmp_path / "feedback.jsonl")
    assert statuses == [200] * len(statuses) and len(rows) == len(statuses)
    assert both_ways(rows), f"in {len(rows)} tries a verdict did not reach each worker both ways"


def test_a_second_rollback_of_the_same_regression_changes_nothing(routers, tmp_path):
    """Two workers (or replicas) whose guards fire on the same regression: one rollback, one record."""
    from tela_core.routing import versions
    from tela_core.serve.guard import compare_windows, rollback_versions

    folder = tmp_path / "versions"
    versions.init(folder)
    for r in routers:
        versions.set_current(folder, versions.add_version(folder, r), "promote")
    c = compare_windows("v2", [0.0] * 10, "v1", [1.0] * 10, margin=0.05, minimum=10)
    assert c is not None and c.fired
    assert rollback_versions(folder, c) is True
    assert rollback_versions(folder, c) is False
    state = versions.read_state(folder)
    assert state.current == "v1" and [h["action"] for h in state.history] == ["promote", "promote", "rollback"]
    assert len(list((folder / "records").glob("*-rollback-*.json"))) == 1


def test_a_streamed_answer_is_recorded_once_its_client_has_it(routers, upstreams, tmp_path):
    """The official clients stop reading a stream at ``data: [DONE]`` and hang up (the async one
    after draining it 0.1 s). The answer is whole then: its decision-log line, its count in /metrics
    and the id feedback takes are there at once, not once the upstream's last bytes come (CI read a
    count one short), and a client gone after [DONE] is no 499 whose answer cannot be rated."""
    cfg = _config(routers[0], upstreams, tmp_path)
    for up in upstreams.values():
        up.done_lag_s = 1.0  # the upstream's stream ends 1 s after its [DONE]
    try:
        with _serve(cfg) as url:
            rids = []
            client = _client(url)
            raw = client.chat.completions.with_raw_response.create(
                model="router-len", messages=[{"role": "user", "content": "sync q"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            rids.append((raw.headers["x-request-id"], raw.headers["x-tela-model"], "sync q", text))

            async def ask_async() -> tuple[str, str, str, str]:
                c = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=20)
                try:
                    raw = await c.chat.completions.with_raw_response.create(
                        model="router-len", messages=[{"role": "user", "content": "async q"}], stream=True
                    )
                    stream = raw.parse()
                    parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
                    return raw.headers["x-request-id"], raw.headers["x-tela-model"], "async q", "".join(parts)
                finally:
                    await c.close()

            rids.append(asyncio.run(ask_async()))
            rated = [_rate(url, rid, 1.0) for rid, *_ in rids]  # right away, as a client's thumbs-up
            metrics = httpx.get(url + "/metrics").text
            decisions = {d["id"]: d for d in _rows(tmp_path / "decisions.jsonl")}
    finally:
        for up in upstreams.values():
            up.done_lag_s = 0.0
    for rid, model, prompt, text in rids:
        assert text == EchoStandIn.answer_for(model, prompt)
        assert rid in decisions, "no decision-log line yet"
        assert (decisions[rid]["status"], decisions[rid]["outcome"]) == (200, None)
    assert [(r.status_code, r.json().get("error")) for r in rated] == [(200, None)] * 2
    assert [r["known"] for r in _rows(tmp_path / "feedback.jsonl")] == [True, True]
    assert metric(metrics, "tela_requests_total", router="len", status="200") == 2
    assert metric(metrics, "tela_requests_total", status="499") == 0
