"""The endpoints of ``tela serve`` called one at a time through :class:`ServeApp`, with a Starlette
``Request`` built in this process: no uvicorn, no test client, no port.

The upstreams are never called (their URLs point at a closed port): these handlers answer from the
server's own state.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")

from serve_support import metric, train_length_router  # noqa: E402

TOKEN = "handler-test-token"


def _config(tmp: Path, router_dir: Path | None = None, text: str = "") -> Any:
    """Router ``len`` (an empty folder unless ``router_dir``: never loaded then) between upstreams
    small < big, plus ``text``."""
    from tela_core.serve.config import build_config

    path = router_dir if router_dir is not None else tmp / "not-loaded"
    path.mkdir(exist_ok=True)
    cfg = tmp / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {path}, upstreams: [small, big]}}\n"
        "upstreams:\n  small: {base_url: 'http://127.0.0.1:9/v1', model: small-1}\n"
        "  big: {base_url: 'http://127.0.0.1:9/v1', model: big-1}\n" + text
    )
    return build_config(cfg)


def _request(method: str, path: str, query: str = "", token: str | None = None) -> Any:
    from starlette.requests import Request

    headers = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return Request(scope, receive)


def _call(handler: Any, request: Any) -> tuple[int, Any, dict[str, str]]:
    """Run one handler; its status, body (parsed when JSON) and headers."""
    resp = asyncio.run(handler(request))
    headers = {k.decode(): v.decode() for k, v in resp.headers}
    body = json.loads(resp.body) if headers["content-type"] == "application/json" else resp.body.decode()
    return resp.status, body, headers


def test_ready_is_503_naming_the_router_until_its_routers_are_loaded(tmp_path: Path) -> None:
    from tela_core.serve.app import ServeApp

    app = ServeApp(_config(tmp_path))  # routers load in the lifespan, which has not run
    status, body, _ = _call(app.ready, _request("GET", "/ready"))
    assert status == 503
    assert body == {"ready": False, "routers": {"len": False}}
    assert _call(app.health, _request("GET", "/health"))[:2] == (200, {"status": "ok"})


def test_ready_is_200_once_routers_are_given_and_reload_swaps_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tela_core.serve.app import ServeApp
    from tela_core.serve.served_routers import load_routers

    monkeypatch.setenv("TELA_TEST_HANDLER_ADMIN", TOKEN)
    cfg = _config(tmp_path, train_length_router(tmp_path / "len"), "admin_token_env: TELA_TEST_HANDLER_ADMIN\n")
    app = ServeApp(cfg, load_routers(cfg))
    before = app.server.routers["len"]
    try:
        status, body, _ = _call(app.ready, _request("GET", "/ready"))
        assert (status, body) == (200, {"ready": True, "routers": {"len": True}})
        status, body, _ = _call(app.admin_reload, _request("POST", "/admin/reload", "router=len", token=TOKEN))
        assert status == 200 and body["ok"] is True and body["routers"]["len"]["ok"] is True
        assert app.server.routers["len"] is not before  # the freshly loaded router now serves
        _, text, _ = _call(app.prometheus, _request("GET", "/metrics"))
        assert metric(text, "tela_router_reloads_total", router="len", result="ok") == 1
    finally:
        for r in (before, *app.server.routers.values()):
            r.batcher.close(timeout=5.0)


def test_models_lists_routed_names_then_upstreams_and_needs_a_client_key(tmp_path: Path) -> None:
    from tela_core.serve.app import ServeApp

    app = ServeApp(_config(tmp_path, text="keys: [client-key]\n"))
    status, body, _ = _call(app.models, _request("GET", "/v1/models"))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body, _ = _call(app.models, _request("GET", "/v1/models", token="client-key"))
    assert status == 200 and body["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in body["data"]] == [
        ("router-len", "tela"),
        ("small", "upstream:small-1"),
        ("big", "upstream:big-1"),
    ]


def test_admin_reload_refuses_without_the_admin_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tela_core.serve.app import ServeApp

    off = ServeApp(_config(tmp_path))
    status, body, _ = _call(off.admin_reload, _request("POST", "/admin/reload", token=TOKEN))
    assert status == 403 and body["error"]["code"] == "admin_disabled"

    monkeypatch.setenv("TELA_TEST_HANDLER_ADMIN", TOKEN)
    on = ServeApp(_config(tmp_path, text="keys: [client-key]\nadmin_token_env: TELA_TEST_HANDLER_ADMIN\n"))
    for token in (None, "wrong", "client-key"):  # a client key never opens the admin endpoints
        status, body, _ = _call(on.admin_reload, _request("POST", "/admin/reload", token=token))
        assert status == 401 and body["error"]["code"] == "invalid_admin_token", token
    status, body, _ = _call(on.admin_reload, _request("POST", "/admin/reload", "router=nope", token=TOKEN))
    assert status == 400 and body["error"]["code"] == "unknown_router" and body["error"]["param"] == "router"
    assert "'nope'" in body["error"]["message"] and "routers: len" in body["error"]["message"]
    assert on.server.routers == {}  # nothing was loaded for a refused reload


def test_metrics_is_prometheus_text_of_this_apps_counters(tmp_path: Path) -> None:
    from tela_core.serve.app import ServeApp

    app = ServeApp(_config(tmp_path))
    app.metrics.requests.labels("len", "small", "200").inc(3)
    status, text, headers = _call(app.prometheus, _request("GET", "/metrics"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert metric(text, "tela_requests_total", router="len", status="200") == 3
    other = ServeApp(_config(tmp_path))  # each app has its own registry
    assert metric(_call(other.prometheus, _request("GET", "/metrics"))[1], "tela_requests_total") == 0


def test_unknown_path_and_unexpected_error_answer_in_openais_envelope(tmp_path: Path) -> None:
    from starlette.exceptions import HTTPException

    from tela_core.serve.app import ServeApp

    app = ServeApp(_config(tmp_path))
    status, body, _ = _call(lambda r: app.not_found(r, HTTPException(404)), _request("GET", "/nope"))
    assert (status, body["error"]["message"], body["error"]["code"]) == (404, "GET /nope: not found", "not_found")
    status, body, _ = _call(lambda r: app.not_found(r, HTTPException(405)), _request("DELETE", "/ready"))
    assert (status, body["error"]["message"]) == (405, "DELETE /ready: method not allowed")
    status, body, _ = _call(lambda r: app.internal(r, KeyError("x")), _request("GET", "/v1/models"))
    assert status == 500 and body["error"]["code"] == "internal_error" and "KeyError" in body["error"]["message"]
