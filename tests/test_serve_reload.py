"""Hot reload of `tela serve` under load: a steady stream of concurrent requests while the router
folder is swapped and SIGHUP / `POST /admin/reload` fire. No request may fail, requests after a
reload use the new router (a recalibrated threshold), and a broken router folder keeps the old one.

A real `tela serve` process on loopback serving a trained `length` router through a symbolic link
(`current -> v1`), as a deployment would. The upstreams are STAND-INS for remote model APIs
(serve_support.EchoStandIn: OpenAI-compatible servers on loopback, in this process).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_support import (  # noqa: E402
    ClientLoad,
    EchoStandIn,
    TelaServe,
    echo_pair,
    free_port,
    get,
    metric,
    train_length_router,
    wait_until,
)

TOKEN = "admin-test-token"


def _point(link: Path, target: Path) -> None:
    """Swap the symbolic link ``link`` to ``target`` in one rename (never missing)."""
    tmp = link.with_name(link.name + ".new")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 (threshold 0.5), v2 (recalibrated: 0.9) and a damaged copy (its manifest cut off)."""
    from tela_core import Router
    from tela_core.routing.artifact import write_policy

    root = tmp_path_factory.mktemp("reload")
    v1 = train_length_router(root / "v1")
    models = Router.load(v1).models
    write_policy(v1, "threshold", {"threshold": 0.5}, models)
    v2 = Path(shutil.copytree(v1, root / "v2"))
    write_policy(v2, "threshold", {"threshold": 0.9}, models)
    broken = Path(shutil.copytree(v1, root / "broken"))
    manifest = broken / "tela.json"
    manifest.write_text(manifest.read_text()[:20])
    return {"v1": v1, "v2": v2, "broken": broken, "root": root}


class Load(ClientLoad):
    """Concurrent clients sending requests back to back on a thread of their own until stopped;
    every answer kept as (start, end, status, threshold header)."""

    def __init__(self, url: str, clients: int = 8, retry_closed_connections: bool = False) -> None:
        super().__init__(url, clients)
        self.results: list[tuple[float, float, int, str]] = []
        #: like the openai client (max_retries=2): a request on a keep-alive connection that the server
        #: closed as it was sent (ReadError/RemoteProtocolError, nothing read) is sent once more
        self.retry_closed_connections = retry_closed_connections
        self.retried: list[str] = []

    async def send(self, client: Any, c: int, i: int) -> None:
        body = {
            "model": "router-len",
            "messages": [{"role": "user", "content": f"client {c} asks {i}: " + "why " * (i % 40)}],
        }
        t0 = time.time()
        try:
            r = await client.post("/v1/chat/completions", json=body)
        except (httpx.ReadError, httpx.RemoteProtocolError) as e:
            if not self.retry_closed_connections:
                raise
            self.retried.append(f"{type(e).__name__}: {e}")
            r = await client.post("/v1/chat/completions", json=body)
        self.results.append((t0, time.time(), r.status_code, r.headers.get("x-tela-threshold", "")))

    def count(self) -> int:
        return len(self.results)


@pytest.fixture
def upstreams() -> Iterator[dict[str, EchoStandIn]]:
    with echo_pair() as ups:
        yield ups


def _threshold_now(url: str) -> str:
    """The threshold one request is routed with, on a new connection. While uvicorn swaps workers, a
    connection an exiting worker accepted can close unanswered: like the Load's clients (and the
    openai client, as docs/deployment.md says), the probe retries such a closed connection once."""
    body = {"model": "router-len", "messages": [{"role": "user", "content": "one more"}]}
    try:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    except (httpx.ReadError, httpx.RemoteProtocolError):  # closed unanswered, as the Load retries
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-tela-threshold"]


def _reloads(url: str, result: str) -> float:
    return metric(get(url + "/metrics")[1], "tela_router_reloads_total", router="len", result=result)


def test_reload_under_load_never_fails_a_request(versions, upstreams, tmp_path):
    link = tmp_path / "current"
    _point(link, versions["v1"])
    v2 = Path(shutil.copytree(versions["v2"], tmp_path / "v2"))  # recalibrated in place below
    cfg = tmp_path / "serve.yaml"
    # the batcher waits 50 ms for more prompts: at any moment some requests are in an old router's hands
    cfg.write_text("admin_token_env: TELA_TEST_ADMIN\nbatch_window_ms: 50\ninline_below_ms: 0\n")
    server = TelaServe(
        [
            "--config",
            str(cfg),
            "--router",
            f"len={link}",
            "--weak",
            f"{upstreams['small'].url}#small",
            "--strong",
            f"{upstreams['big'].url}#big",
            "--log-level",
            "warning",
        ],
        free_port(),
        extra_env={"TELA_TEST_ADMIN": TOKEN},
    )
    marks: dict[str, tuple[float, float]] = {}
    try:
        assert _threshold_now(server.url) == "0.500000"
        with Load(server.url) as load:
            wait_until(lambda: load.count() > 50)

            # 1. a recalibrated router swapped in (symbolic link), then SIGHUP
            _point(link, v2)
            t0 = time.time()
            server.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: _reloads(server.url, "ok") >= 1)
            marks["sighup"] = (t0, time.time())
            assert _threshold_now(server.url) == "0.900000"
            n = load.count()
            wait_until(lambda: load.count() > n + 50)

            # 2. recalibrated in place, then the admin endpoint: refused without the token
            from tela_core import Router
            from tela_core.routing.artifact import write_policy

            write_policy(v2, "threshold", {"threshold": 0.2}, Router.load(v2).models)
            r = httpx.post(server.url + "/admin/reload")
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"
            r = httpx.post(server.url + "/admin/reload", headers={"authorization": "Bearer sk-not-the-token"})
            assert r.status_code == 401
            assert _threshold_now(server.url) == "0.900000"
            t0 = time.time()
            r = httpx.post(server.url + "/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
            marks["admin"] = (t0, time.time())
            assert r.status_code == 200, r.text
            assert r.json()["routers"]["len"]["policy"] == {"name": "threshold", "options": {"threshold": 0.2}}
            swapped_at = r.json()["routers"]["len"]["swapped_at"]
            assert _threshold_now(server.url) == "0.200000"
            n = load.count()
            wait_until(lambda: load.count() > n + 50)

            # 3. a broken router: the endpoint says why, SIGHUP too (log, metric); the old one serves on
            _point(link, versions["broken"])
            r = httpx.post(server.url + "/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
            assert r.status_code == 500, r.text
            why = r.json()["routers"]["len"]
            assert why["ok"] is False and "tela.json" in why["error"]
            server.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: _reloads(server.url, "failed") >= 2)
            assert _threshold_now(server.url) == "0.200000"
            n = load.count()
            wait_until(lambda: load.count() > n + 50)
            r = httpx.post(server.url + "/admin/reload?router=nope", headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 400 and "len" in r.json()["error"]["message"]
    finally:
        out = server.stop()
    assert "Traceback" not in out, out
    assert "router len did not load" in out and "tela.json" in out  # the server log says why

    # zero failed requests, each answered with one of the thresholds, never an older one after a reload
    assert not load.errors, load.errors[:3]
    statuses = [s for _, _, s, _ in load.results]
    assert len(statuses) > 200 and set(statuses) == {200}
    seen = {t for *_, t in load.results}
    assert seen == {"0.500000", "0.900000", "0.200000"}, seen
    for start, _end, _s, t in load.results:
        if start > marks["sighup"][1]:
            assert t in ("0.900000", "0.200000")
        if start > marks["admin"][1]:
            assert t == "0.200000"
    # requests in the old router's hands when it was swapped finished on it (the clocks: this machine's)
    assert any(e > swapped_at and t == "0.900000" for _, e, _, t in load.results)


def test_admin_endpoint_is_off_without_a_token(versions, upstreams):
    server = TelaServe(
        [
            "--router",
            f"len={versions['v1']}",
            "--weak",
            f"{upstreams['small'].url}#small",
            "--strong",
            f"{upstreams['big'].url}#big",
        ],
        free_port(),
    )
    try:
        r = httpx.post(server.url + "/admin/reload", headers={"authorization": "Bearer anything"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"
        assert _reloads(server.url, "ok") == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_sighup_with_workers_replaces_them_without_failing_a_request(versions, upstreams, tmp_path):
    """--workers 2: SIGHUP to the main process swaps the workers one by one (uvicorn); each new
    worker loads the router as it is now. A broken router leaves the old workers serving. The
    admin endpoint checks the router in the worker that got the call, then asks for the swap."""
    from tela_core import Router
    from tela_core.routing.artifact import write_policy

    link = tmp_path / "current"
    _point(link, versions["v1"])
    v3 = Path(shutil.copytree(versions["v2"], tmp_path / "v3"))
    write_policy(v3, "threshold", {"threshold": 0.3}, Router.load(v3).models)
    server = TelaServe(
        [
            "--router",
            f"len={link}",
            "--weak",
            f"{upstreams['small'].url}#small",
            "--strong",
            f"{upstreams['big'].url}#big",
            "--workers",
            "2",
            "--log-level",
            "warning",
            "--admin-token-env",
            "TELA_TEST_ADMIN",
        ],
        free_port(),
        extra_env={"TELA_TEST_ADMIN": TOKEN},
    )
    try:
        # an exiting worker closes its idle keep-alive connections: the clients retry such a closed
        # connection once, as the openai client does (docs/deployment.md says so); nothing else may fail
        with Load(server.url, clients=4, retry_closed_connections=True) as load:
            wait_until(lambda: load.count() > 20)
            _point(link, versions["v2"])
            server.proc.send_signal(signal.SIGHUP)
            # every worker replaced: many requests in a row, each on a new connection, meet v2
            wait_until(lambda: all(_threshold_now(server.url) == "0.900000" for _ in range(30)), timeout=120)
            _point(link, versions["broken"])
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(5)
            n = load.count()
            wait_until(lambda: load.count() > n + 20)
            assert all(_threshold_now(server.url) == "0.900000" for _ in range(30))
            # the admin endpoint: a worker checks the routers load, then the main process replaces all
            auth = {"authorization": f"Bearer {TOKEN}"}
            r = httpx.post(server.url + "/admin/reload", headers=auth, timeout=60)
            assert r.status_code == 500 and "tela.json" in r.json()["routers"]["len"]["error"]
            _point(link, v3)
            r = httpx.post(server.url + "/admin/reload", headers=auth, timeout=60)
            assert r.status_code == 202 and r.json()["restarting_workers"] is True, r.text
            wait_until(lambda: all(_threshold_now(server.url) == "0.300000" for _ in range(30)), timeout=120)
    finally:
        out = server.stop()
    assert "aborting the restart" in out  # uvicorn kept the old workers
    assert not load.errors, load.errors[:3]
    assert len(load.retried) <= 4 * 4, load.retried[:3]  # at most a connection per client per restart
    assert {s for _, _, s, _ in load.results} == {200}
