"""`tela serve` against what production throws at it (issue 24, items 9-11): a hostile request body,
a router served against upstreams it was not trained on, a full disk under its logs, logs rotated
away under it, a router folder whose files disagree, and readiness with several workers.

The upstreams are STAND-INS for remote model APIs (serve_support.EchoStandIn: OpenAI-compatible
servers on loopback, in this process, that answer "<model> answers <hash of the prompt>").
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_support import EchoStandIn, TelaServe, echo_pair, free_port, kept_log, metric, train_length_router  # noqa: E402

TOKEN = "admin-test-token"


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_length_router(tmp_path_factory.mktemp("hardening") / "len")


@pytest.fixture
def upstreams() -> Iterator[dict[str, EchoStandIn]]:
    with echo_pair() as ups:
        yield ups


@pytest.fixture
def serve_log() -> Iterator[list[logging.LogRecord]]:
    """What the server log ("tela.serve") gets while the test runs."""
    with kept_log() as records:
        yield records


def _config(
    router_dir: Path, ups: dict[str, EchoStandIn], tmp: Path, text: str = "", models: tuple[str, str] | None = None
) -> Any:
    """A serve config file: router ``len`` -> upstreams small < big (model ids ``models``), plus ``text``."""
    from tela_core.serve.config import build_config

    small_id, big_id = models or ("small", "big")
    cfg = tmp / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {router_dir}, upstreams: [small, big]}}\n"
        f"upstreams:\n  small: {{base_url: '{ups['small'].url}', model: '{small_id}'}}\n"
        f"  big: {{base_url: '{ups['big'].url}', model: '{big_id}'}}\n" + text
    )
    return build_config(cfg)


def _chat(prompt: str = "What is 2 + 2?") -> dict[str, Any]:
    return {"model": "router-len", "messages": [{"role": "user", "content": prompt}]}


# ------------------------------------------------------------------------------------------------
# 9. a hostile body, a pair that is not the upstreams, lines lost on a full disk
# ------------------------------------------------------------------------------------------------


def test_deeply_nested_body_is_a_400_with_one_log_line(router_dir, upstreams, tmp_path, serve_log):
    """100,000 nested arrays were a 500 with a RecursionError traceback in the server log."""
    from starlette.testclient import TestClient

    from tela_core.serve import proxy
    from tela_core.serve.app import create_app

    limit = getattr(proxy, "MAX_JSON_DEPTH", 256)
    cfg = _config(router_dir, upstreams, tmp_path)
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        for depth in (100_000, limit + 1):
            serve_log.clear()
            body = json.dumps(_chat())[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
            r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (depth, r.text)
            err = r.json()["error"]
            assert err["code"] == "invalid_json" and err["type"] == "invalid_request_error"
            assert f"more than {limit} levels" in err["message"]
            assert len(serve_log) == 1 and serve_log[0].exc_info is None, [x.getMessage() for x in serve_log]
            assert "RecursionError" not in serve_log[0].getMessage()
        # a body nested as deep as tools' JSON schemas go is served
        deep_ok = _chat()
        deep_ok["tools"] = [
            {"type": "function", "function": {"name": "f", "parameters": json.loads("[" * 50 + "]" * 50)}}
        ]
        assert client.post("/v1/chat/completions", json=deep_ok).status_code == 200
        metrics = client.get("/metrics").text
    assert metric(metrics, "tela_requests_total", status="400") == 2


def test_a_router_served_against_other_models_warns_at_start_and_reload(
    router_dir, upstreams, tmp_path, serve_log, monkeypatch
):
    from starlette.testclient import TestClient

    from tela_core import Router
    from tela_core.serve.app import create_app

    weak, strong = Router.load(router_dir).models
    monkeypatch.setenv("TELA_TEST_ADMIN", TOKEN)

    def warnings() -> list[str]:
        return [x.getMessage() for x in serve_log if x.levelno == logging.WARNING]

    # the upstreams are the models the router was trained on (by model id): nothing to say
    cfg = _config(router_dir, upstreams, tmp_path, models=(weak, strong))
    with TestClient(create_app(cfg)):
        pass
    assert warnings() == []

    # other models: one line at start naming both pairs, and again at each reload
    cfg = _config(
        router_dir, upstreams, tmp_path, "admin_token_env: TELA_TEST_ADMIN\n", models=("llama-3-8b", "gpt-4o")
    )
    with TestClient(create_app(cfg)) as client:
        assert len(warnings()) == 1
        said = warnings()[0]
        assert "routers.len.upstreams" in said and "serve.yaml" in said
        assert f"{weak} < {strong}" in said and "small (model llama-3-8b) < big (model gpt-4o)" in said
        r = client.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        assert len(warnings()) == 2 and warnings()[1] == said

    # the right models, swapped: said so
    serve_log.clear()
    cfg = _config(router_dir, upstreams, tmp_path, models=(strong, weak))
    with TestClient(create_app(cfg)):
        pass
    assert len(warnings()) == 1 and "swapped" in warnings()[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a file whose writes fail: disk full)")
def test_lines_lost_to_a_full_disk_are_counted_in_metrics(router_dir, upstreams, tmp_path, serve_log):
    """Both logs on a 'disk' where every write fails (ENOSPC): the requests are answered, and
    /metrics counts the lines lost, per log (they were only in the server log)."""
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app

    cfg = _config(router_dir, upstreams, tmp_path, "decision_log: /dev/full\nshadow_log: /dev/full\nshadow: 1.0\n")
    with TestClient(create_app(cfg)) as client:
        for i in range(5):
            assert client.post("/v1/chat/completions", json=_chat(f"question {i}")).status_code == 200
        deadline = time.monotonic() + 20
        while metric(client.get("/metrics").text, "tela_log_lines_lost_total", log="shadow") < 5:
            assert time.monotonic() < deadline, client.get("/metrics").text
            time.sleep(0.05)
        text = client.get("/metrics").text
    assert metric(text, "tela_log_lines_lost_total", log="decision") == 5
    assert metric(text, "tela_log_lines_lost_total", log="shadow") == 5
    lost = [x for x in serve_log if "lost" in x.getMessage()]
    assert lost and all(x.exc_info is None for x in lost)  # one line each, no traceback


# ------------------------------------------------------------------------------------------------
# 10. logs rotated (moved, deleted) under a running server; a router folder whose files disagree
# ------------------------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_logs_moved_or_deleted_are_opened_again_at_their_path(router_dir, upstreams, tmp_path):
    """logrotate's default (move away, no signal) and a plain `rm`: every later line lands in a new
    file at the configured path (they were all lost until a restart)."""
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app

    decisions, shadow = tmp_path / "logs" / "decisions.jsonl", tmp_path / "logs" / "shadow.jsonl"
    cfg = _config(router_dir, upstreams, tmp_path, f"decision_log: {decisions}\nshadow_log: {shadow}\nshadow: 1.0\n")

    def send(client: Any, prompt: str) -> None:
        r = client.post("/v1/chat/completions", json=_chat(prompt))
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        deadline = time.monotonic() + 20  # the shadow line is written after the answer
        while not any(x["request_id"] == rid for x in _lines(shadow)):
            assert time.monotonic() < deadline, "shadow line never written"
            time.sleep(0.02)

    with TestClient(create_app(cfg)) as client:
        send(client, "one")
        os.replace(decisions, decisions.with_suffix(".jsonl.1"))  # logrotate: move away, no signal
        os.replace(shadow, shadow.with_suffix(".jsonl.1"))
        send(client, "two")
        send(client, "three")
        decisions.unlink()  # rm
        shadow.unlink()
        send(client, "four")
    assert [len(_lines(p.with_suffix(".jsonl.1"))) for p in (decisions, shadow)] == [1, 1]
    assert [len(_lines(p)) for p in (decisions, shadow)] == [1, 1]
    assert _lines(decisions)[0]["id"] == _lines(shadow)[0]["request_id"]


def test_sighup_opens_the_logs_again(router_dir, upstreams, tmp_path):
    """A real server: the logs moved away, then SIGHUP (logrotate's postrotate): new files appear at
    the paths at once, and the requests after it are written there."""
    decisions, shadow = tmp_path / "decisions.jsonl", tmp_path / "shadow.jsonl"
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {router_dir}, upstreams: [small, big]}}\n"
        f"upstreams:\n  small: {{base_url: '{upstreams['small'].url}'}}\n  big: {{base_url: '{upstreams['big'].url}'}}\n"  # noqa: E501
        f"decision_log: {decisions}\nshadow_log: {shadow}\nshadow: 1.0\n"
    )
    server = TelaServe(["--config", str(cfg)], free_port())
    try:
        assert httpx.post(server.url + "/v1/chat/completions", json=_chat("before"), timeout=30).status_code == 200
        deadline = time.monotonic() + 20
        while not _lines(shadow):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        decisions.rename(tmp_path / "decisions.old")
        shadow.rename(tmp_path / "shadow.old")
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while not (decisions.exists() and shadow.exists()):
            assert time.monotonic() < deadline, "SIGHUP did not open the logs again"
            time.sleep(0.05)
        assert httpx.post(server.url + "/v1/chat/completions", json=_chat("after"), timeout=30).status_code == 200
        deadline = time.monotonic() + 20
        while not _lines(shadow):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        out = server.stop()
    assert "Traceback" not in out, out
    assert len(_lines(tmp_path / "decisions.old")) == len(_lines(tmp_path / "shadow.old")) == 1
    assert len(_lines(decisions)) == len(_lines(shadow)) == 1


def test_embedder_json_that_disagrees_with_tela_json_is_refused(register_plugin, tmp_path, tela_cli):
    """A router folder holding files of two trainings: `embedder.json` names one embedder and
    `tela.json` another. Refused in one line naming both files (it loaded silently)."""
    from test_embedders import HashedWordsPlugin, _fit

    from tela_core import Router
    from tela_core.infra.errors import TelaError

    register_plugin(HashedWordsPlugin(), "hashed-words-hardening")
    out = _fit(tmp_path, embedder="hashed-words")
    Router.load(out)  # sound
    record = json.loads((out / "embedder.json").read_text())
    (out / "embedder.json").write_text(json.dumps({**record, "name": "model2vec"}))
    with pytest.raises(TelaError) as e:
        Router.load(out)
    msg = str(e.value)
    assert "\n" not in msg and str(out / "embedder.json") in msg and str(out / "tela.json") in msg
    assert "'model2vec'" in msg and "'hashed-words'" in msg
    r = tela_cli("route", "--router", str(out), "What is 2 + 2?")
    assert r.exit_code == 2 and "embedder.json" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------------------------
# 11. --workers N: /ready means all N are up
# ------------------------------------------------------------------------------------------------


def test_ready_with_workers_waits_for_all_of_them(router_dir, upstreams, tmp_path, monkeypatch):
    """A worker whose own routers are loaded answered /ready 200 while the others were still
    loading, so an orchestrator (and the workers test) sent traffic to a half-started server."""
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app

    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    monkeypatch.setenv("TELA_SERVE_READY_DIR", str(ready_dir))  # as `tela serve --workers N` sets it
    cfg = _config(router_dir, upstreams, tmp_path, "workers: 2\n")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def workers_up() -> list[str]:  # the workers' files (the folder also keeps the settings in use)
        return sorted(n for n in os.listdir(ready_dir) if n.isdigit())

    try:
        with TestClient(create_app(cfg)) as client:  # this process is one worker, up
            assert workers_up() == [str(os.getpid())]
            r = client.get("/ready")
            assert r.status_code == 503, r.text
            assert r.json()["workers"] == {"expected": 2, "ready": 1, "pids": [os.getpid()]}
            (ready_dir / str(other.pid)).write_text(str(other.pid))  # the second worker is up
            r = client.get("/ready")
            assert r.status_code == 200 and r.json()["workers"]["ready"] == 2, r.text
            other.kill()  # a worker killed (SIGKILL) leaves its file, not its process
            other.wait()
            r = client.get("/ready")
            assert r.status_code == 503 and r.json()["workers"]["ready"] == 1, r.text
        assert workers_up() == [str(other.pid)]  # this worker said it stopped
    finally:
        other.kill()
        other.wait()


def test_nan_and_infinity_in_a_body_are_a_400(router_dir, upstreams, tmp_path):
    """Python's parser takes ``NaN``/``Infinity``, which are not JSON: forwarded, they went upstream
    (and into the shadow log) as text no strict JSON reader takes."""
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app

    cfg = _config(router_dir, upstreams, tmp_path)
    with TestClient(create_app(cfg)) as client:
        for constant in ("NaN", "Infinity", "-Infinity"):
            body = json.dumps(_chat())[:-1] + f', "temperature": {constant}}}'
            r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
            assert constant in r.json()["error"]["message"]
    assert upstreams["small"].calls == upstreams["big"].calls == 0
