"""The ASGI app of ``tela serve``: an OpenAI-compatible proxy that routes each request.

Endpoints:

- ``POST /v1/chat/completions``: route (``router-NAME``, ``router-NAME-THRESHOLD``) or pass through
  (an upstream's name), forward to the chosen upstream, answer with its reply (JSON, or server-sent
  events ending ``data: [DONE]`` when ``stream`` is true) and headers saying what happened:
  ``x-tela-router``, ``x-tela-model``, ``x-tela-score``, ``x-tela-threshold`` (when the
  policy has one), ``x-tela-routing-ms`` (and ``x-tela-fallback`` when another model answered;
  ``x-tela-quality``, each model's predicted quality as compact JSON keyed by upstream name, from
  routers over more than two models that predict it).
- ``GET /v1/models``: the routed names and the upstreams, in OpenAI's list shape.
- ``GET /health``: the process is alive. ``GET /ready``: every router is loaded and its scoring
  thread running, and with ``--workers N`` all N workers are (503 otherwise; :mod:`.readiness`).
- ``GET /metrics``: Prometheus text (:mod:`tela_core.serve.metrics`).
- ``POST /v1/feedback``: a verdict (a score in [0, 1], ``up`` or ``down``) on an answer, by its
  ``x-request-id``, appended to the feedback log (:mod:`.feedback`); watched by the guard when it is
  on (:mod:`.guard`). 403 while ``feedback_log`` is unset.
- ``POST /admin/reload``: read the config file's routers and upstreams again and load the routers
  from their folders (:mod:`.reload`); needs the admin token (``admin_token_env``); ``?router=NAME`` reloads one.

Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``: 400 (bad JSON, no
user turn, unknown model, threshold outside [0, 1]), 401 (no valid key, when keys are set), 413
(body over the limit), 502 (the upstream failed, after one fallback), 503 (a router's scoring
thread stopped). An
unexpected failure is a 500 with the same envelope, never a traceback. A client that disconnects
cancels its upstream call.

The app keeps no state replicas must share: run as many as you like behind a load balancer.
Starlette is imported when the app is built, not with tela.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from . import readiness
from .chat import RequestError
from .config import ServeConfig
from .decisions import DecisionLog
from .feedback import Feedback
from .guard import Guard
from .metrics import ServeMetrics
from .proxy import ChatHandler
from .reload import Reloader, remember_config, worker_config
from .responses import RawResponse, error_response, json_response, raw_headers
from .served_routers import ServedRouter, load_routers
from .server import Server, check_admin, check_auth, make_upstreams
from .shadow import Shadow

__all__ = ["Server", "ServeApp", "create_app", "create_app_from_env", "load_routers"]

log = logging.getLogger("tela.serve")


def create_app(config: ServeConfig, routers: dict[str, ServedRouter] | None = None) -> Any:
    """The Starlette app for ``config``. Pass ``routers`` already loaded (:func:`load_routers`);
    otherwise they load (on a thread) during the app's start-up, before uvicorn accepts a
    connection, so no request ever meets a half-loaded server."""
    return ServeApp(config, routers).starlette()


class ServeApp:
    """The endpoints of one ``tela serve`` process, over its :class:`Server` (routers, upstream
    clients, metrics, logs, shadow queue).

    Each endpoint is a method taking a Starlette ``Request`` and returning an ASGI response, so a
    test can call one without uvicorn or a test client; :meth:`starlette` wires them into the app
    and :meth:`lifespan` loads the routers at start-up and closes everything at shutdown.
    """

    def __init__(self, config: ServeConfig, routers: dict[str, ServedRouter] | None = None) -> None:
        self.config = config
        self.metrics = ServeMetrics()
        admin_token = config.admin_token()
        self.server = Server(
            config=config,
            upstreams=make_upstreams(config),
            metrics=self.metrics,
            decision_log=DecisionLog(config.decision_log, config.log_prompts) if config.decision_log else None,
            keys=[k.encode() for k in config.client_keys()],
            admin_token=admin_token.encode() if admin_token else None,
        )
        if config.shadow_log and any(config.shadow_rate(n) > 0 for n in config.routers):
            self.server.shadow = Shadow(
                config.shadow_log,
                self.server.upstreams,
                self.metrics,
                queue_size=config.shadow_queue,
                workers=config.shadow_workers,
                log_prompts=config.log_prompts,
                sampling=config.shadow_sampling,
                models_per_request=config.shadow_models,
            )
        self.reloader = Reloader(self.server)
        if config.feedback_log:
            self.server.feedback = Feedback(config, self.server)
            if config.guard:
                self.server.guard = self.server.feedback.guard = Guard(config, self.server, self._guard_reload)
        self.chat_handler = ChatHandler(self.server)
        if routers is not None:
            self.server.routers = routers
            for r in routers.values():  # batch sizes land in this app's metrics
                r.batcher.on_batch = functools.partial(self.metrics.observe_batch, r.name)
            self.server.ready = True

    def starlette(self) -> Any:
        """The Starlette app serving these endpoints (``app.state.tela`` is the :class:`Server`)."""
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/ready", self.ready, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
                Route("/admin/reload", self.admin_reload, methods=["POST"]),
                Route("/v1/feedback", self.feedback, methods=["POST"]),
            ],
            exception_handlers={404: self.not_found, 405: self.not_found, Exception: self.internal},
            lifespan=self.lifespan,
        )
        app.state.tela = self.server
        return app

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Load the routers (unless given) before the port accepts a request (uvicorn binds after
        start-up), start shadow mode and SIGHUP reloads; at shutdown close it all."""
        server = self.server
        if not server.ready:
            server.routers = await asyncio.to_thread(load_routers, server.config, server.metrics)
            server.ready = True
            log.info("routers loaded: %s", ", ".join(server.routers) or "(none)")
        if server.shadow is not None:
            server.shadow.start()
        sighup = self.reloader.install_sighup()
        self.reloader.start_following()  # routers served from a versions folder follow its current version
        if readiness.ready_workers() is not None:  # --workers N: the settings workers serve with now
            await asyncio.to_thread(remember_config, server.config)
        readiness.register()  # --workers N: this worker is up (the served /ready counts them)
        try:
            yield
        finally:
            readiness.unregister()
            if sighup:
                self.reloader.remove_sighup()
            await self.reloader.aclose()
            await self._close()

    async def _close(self) -> None:
        server = self.server
        if server.shadow is not None:  # before the upstream clients close: queued shadow calls finish
            await server.shadow.close(timeout=5.0)
        for _cfg, up in server.upstreams.values():
            try:
                await up.aclose()
            except Exception:  # pragma: no cover - closing is best effort
                log.exception("closing an upstream client failed")
        await self.reloader.close_retired()  # the clients reloads replaced
        for r in server.routers.values():
            r.batcher.close(timeout=1.0)
        if server.decision_log is not None:
            server.decision_log.close()
        if server.guard is not None:
            await server.guard.aclose()
        if server.feedback is not None:
            server.feedback.close()

    # -- endpoints ------------------------------------------------------------------------------

    async def chat(self, request: Any) -> Any:
        """``POST /v1/chat/completions``: route, forward, answer (:mod:`.proxy`)."""
        return await self.chat_handler(request)

    async def models(self, request: Any) -> Any:
        """``GET /v1/models``: the routed names, then the upstreams, in OpenAI's list shape."""
        denied = check_auth(self.server, request)
        if denied is not None:
            return denied
        now = int(time.time())
        data = [  # the server's config: a reload may add or remove routers and upstreams
            {"id": f"router-{name}", "object": "model", "created": now, "owned_by": "tela"}
            for name in self.server.config.routers
        ]
        for name, (uc, _up) in self.server.upstreams.items():
            data.append({"id": name, "object": "model", "created": now, "owned_by": f"upstream:{uc.model or name}"})
        return json_response(200, {"object": "list", "data": data})

    async def health(self, request: Any) -> Any:
        """``GET /health``: the process is alive."""
        return json_response(200, {"status": "ok"})

    async def ready(self, request: Any) -> Any:
        """``GET /ready``: 200 once every router is loaded with its scoring thread alive (and, with
        ``--workers N``, all N workers are up: :mod:`.readiness`), else 503."""
        config, server = self.server.config, self.server
        loaded = {n: n in server.routers and server.routers[n].batcher.alive for n in config.routers}
        ok = server.ready and all(loaded.values())
        body: dict[str, Any] = {"ready": ok, "routers": loaded}
        pids = readiness.ready_workers() if config.workers > 1 else None
        if pids is not None:  # --workers N: ready once all N are
            ok = ok and len(pids) >= config.workers
            body = {
                "ready": ok,
                "routers": loaded,
                "workers": {"expected": config.workers, "ready": len(pids), "pids": pids},
            }
        return json_response(200 if ok else 503, body)

    async def feedback(self, request: Any) -> Any:
        """``POST /v1/feedback``: a verdict on an answer, by its request id (:mod:`.feedback`),
        from a client holding a chat key."""
        denied = check_auth(self.server, request)
        if denied is not None:
            self.metrics.feedback.labels("none", "unauthorized").inc()
            return denied
        if self.server.feedback is None:
            return error_response(
                RequestError(
                    403,
                    "feedback is off on this server: set feedback_log in the serve config",
                    type="invalid_request_error",
                    code="feedback_disabled",
                )
            )
        return await self.server.feedback.endpoint(request)

    async def _guard_reload(self, names: list[str]) -> Any:
        """The guard's reload after it rolled a router back (as ``POST /admin/reload?router=NAME``)."""
        return await self.reloader.reload(names, trigger="guard")

    async def admin_reload(self, request: Any) -> Any:
        """``POST /admin/reload[?router=NAME]``: reload routers from their folders (:mod:`.reload`)."""
        denied = check_admin(self.server, request)
        if denied is not None:
            return denied
        names = request.query_params.getlist("router") or None
        routers = self.server.config.routers
        unknown = [n for n in names or [] if n not in routers]
        if unknown:
            known = ", ".join(routers) or "(none)"
            return error_response(
                RequestError(
                    400,
                    f"no router named {', '.join(map(repr, unknown))}; routers: {known}",
                    param="router",
                    code="unknown_router",
                )
            )
        status, body = await self.reloader.admin(names)
        return json_response(status, body)

    async def prometheus(self, request: Any) -> Any:
        """``GET /metrics``: Prometheus text (:mod:`.metrics`)."""
        body, ctype = self.metrics.exposition()
        return RawResponse(200, body, raw_headers(content_type=ctype))

    async def not_found(self, request: Any, exc: Any) -> Any:
        """404 and 405 in OpenAI's error envelope."""
        status = getattr(exc, "status_code", 404)
        msg = (
            "not found"
            if status == 404
            else "method not allowed"
            if status == 405
            else str(getattr(exc, "detail", "error"))
        )
        return error_response(
            RequestError(
                status, f"{request.method} {request.url.path}: {msg}", code="not_found" if status == 404 else None
            )
        )

    async def internal(self, request: Any, exc: Exception) -> Any:
        """An unexpected failure: a 500 in OpenAI's error envelope, the traceback in the server log."""
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            RequestError(
                500,
                f"internal error ({type(exc).__name__}); see the server log",
                type="server_error",
                code="internal_error",
            )
        )


def create_app_from_env() -> Any:
    """App factory for ``--workers N`` (uvicorn ``factory=True``): settings from ``$TELA_SERVE_CONFIG``."""
    config = ServeConfig.from_env()
    configure_logging(config.log_level)
    # the config file's routers and upstreams as they are now (a worker a reload started: SIGHUP)
    return create_app(worker_config(config, len(readiness.ready_workers() or [])))


def configure_logging(level: str = "info") -> None:
    """tela's server log (reloads, shadow-log and upstream trouble) on stderr beside uvicorn's,
    at the server's ``log_level``."""
    lg = logging.getLogger("tela.serve")
    if not lg.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        lg.addHandler(handler)
        lg.propagate = False
    lg.setLevel(level.upper())
