"""The ASGI app of ``tela serve``: an OpenAI-compatible proxy that routes each request.

Endpoints:

- ``POST /v1/chat/completions``: route (``router-NAME``, ``router-NAME-THRESHOLD``) or pass through
  (an upstream's name), forward to the chosen upstream, answer with its reply (JSON, or server-sent
  events ending ``data: [DONE]`` when ``stream`` is true) and headers saying what happened:
  ``x-tela-router``, ``x-tela-model``, ``x-tela-score``, ``x-tela-threshold``, ``x-tela-routing-ms``
  (and ``x-tela-fallback`` when the other model answered).
- ``GET /v1/models``: the routed names and the upstreams, in OpenAI's list shape.
- ``GET /health``: the process is alive. ``GET /ready``: every router is loaded and its scoring
  thread running (503 otherwise).
- ``GET /metrics``: Prometheus text (:mod:`tela_core.serve.metrics`).

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
import hmac
import json
import logging
import time
import itertools
import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Mapping

from .chat import RequestError, Target, parse_model, routing_text
from .config import ServeConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..components import Upstream, UpstreamReply
    from ..router import Decision, Router
    from .batcher import Batcher
    from .config import UpstreamConfig
    from .decisions import DecisionLog
    from .metrics import ServeMetrics

__all__ = ["Server", "create_app", "create_app_from_env", "load_routers"]

log = logging.getLogger("tela.serve")

#: Upstream statuses that count as the upstream failing (fallback), not as a bad request.
RETRY_STATUSES = frozenset({401, 403, 408, 409, 425, 429}) | frozenset(range(500, 600))

_JSON = "application/json"


# ------------------------------------------------------------------------------------------------
# What one server process holds
# ------------------------------------------------------------------------------------------------


@dataclass
class ServedRouter:
    """A loaded router, its batcher, and the upstream each of its models goes to."""

    name: str
    router: "Router"
    batcher: "Batcher"
    upstream_of: dict[str, str]  # router model name -> upstream name
    strongest: str

    def fallback_for(self, model: str) -> str | None:
        """The other model to try when ``model``'s upstream fails: the strongest, or, when the
        strongest failed, the one below it."""
        models = self.router.models
        other = models[-1] if model != models[-1] else models[-2]
        return other if other != model else None


@dataclass
class Server:
    """The routers, upstream clients, metrics and decision log of one server process."""

    config: ServeConfig
    upstreams: dict[str, tuple["UpstreamConfig", "Upstream"]]
    metrics: "ServeMetrics"
    decision_log: "DecisionLog | None"
    keys: list[bytes]
    routers: dict[str, ServedRouter] = field(default_factory=dict)
    ready: bool = False

    @property
    def router_names(self) -> list[str]:
        return list(self.config.routers)


def load_routers(config: ServeConfig, metrics: "ServeMetrics | None" = None) -> dict[str, ServedRouter]:
    """Load every configured router and start its batcher thread. Config errors (a router model
    with no upstream) name the key."""
    from ..router import Router
    from .batcher import Batcher
    from .config import ConfigError

    _serving_mode()
    out: dict[str, ServedRouter] = {}
    for name, rc in config.routers.items():
        sbs = rc.score_batch_size if rc.score_batch_size is not None else _cpu_batch_size(rc.path)
        router = Router.load(rc.path, trust_remote_code=config.trust_remote_code, score_batch_size=sbs)
        opts = router.scorer.options
        if sbs is not None and getattr(opts, "batch_size", sbs) != sbs:
            # Families that re-read their options from the manifest in load() (lm-probe) drop
            # Router.load's score_batch_size; set it on the loaded scorer.
            router.scorer.options = opts.model_copy(update={"batch_size": sbs})
        models = router.models
        if rc.upstreams is not None:
            if len(rc.upstreams) != len(models):
                raise ConfigError(
                    f"{config.source}: routers.{name}.upstreams: the router routes between {len(models)} models "
                    f"({', '.join(models)}); name {len(models)} upstreams, cheap -> strong"
                )
            upstream_of = dict(zip(models, rc.upstreams))
        else:
            missing = [m for m in models if m not in config.upstreams]
            if missing:
                raise ConfigError(
                    f"{config.source}: routers.{name}.upstreams: the router routes between {', '.join(models)}, and "
                    f"{', '.join(missing)} is not an upstream; list one upstream per model, cheap -> strong"
                )
            upstream_of = {m: m for m in models}

        def on_batch(n: int, seconds: float, name: str = name) -> None:
            if metrics is not None:
                metrics.batch_size.labels(name).observe(n)

        batcher = Batcher(
            router, window=config.batch_window_ms / 1000.0, max_batch=config.max_batch, on_batch=on_batch, name=name,
            inline_below_ms=config.inline_below_ms, length_ratio=config.length_ratio,
        )
        out[name] = ServedRouter(name, router, batcher, upstream_of, strongest=models[-1])
    _limit_torch_threads(config)
    return out


def _cpu_batch_size(path: str) -> int | None:
    """1 for a family that runs a model in batches (its options have ``batch_size``) when no GPU
    is visible, else None (the family's default). On a CPU a padded batch costs more per prompt
    than it saves: lm-probe served 32 clients at 4.1-5.2 req/s with batches of 8 against 4.9-5.7
    with batch 1 (bench/serve_overhead.py). The micro-batcher still hands every waiting prompt to
    one scorer call; the family then runs them one forward pass each."""
    from ..artifact import read_manifest
    from ..plugins import get_registry

    try:
        cls = get_registry().get("scorer", read_manifest(path)["scorer"])
    except Exception:  # Router.load reports it properly
        return None
    if "batch_size" not in getattr(cls.Options, "model_fields", {}):
        return None
    try:
        import torch
    except ImportError:
        return None
    return None if torch.cuda.is_available() else 1


def _limit_torch_threads(config: ServeConfig) -> None:
    """Leave a core to the event loop. torch's default (a thread per core) on a busy machine makes
    its threads wait for each other: an embedding scored 8x slower with 2 threads than with 1 on
    this project's 2-core machine under load. Only when a scorer already imported torch."""
    import sys

    if "torch" not in sys.modules:
        return
    n = config.torch_threads or max(1, (os.cpu_count() or 1) // max(1, config.workers) - 1)
    sys.modules["torch"].set_num_threads(n)


def _serving_mode() -> None:
    """Live prompts are scored once: embedding families must not read or grow their shard cache."""
    from .. import embeddings

    embeddings.use_shard_cache(False)


def _make_upstreams(config: ServeConfig) -> dict[str, tuple["UpstreamConfig", "Upstream"]]:
    from ..plugins import get_registry

    reg = get_registry()
    return {name: (uc, reg.create("upstream", uc.type, uc.client_options())) for name, uc in config.upstreams.items()}


# ------------------------------------------------------------------------------------------------
# Responses
# ------------------------------------------------------------------------------------------------


def _headers(extra: Mapping[str, str] | None = None, content_type: str = _JSON) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type.encode())]
    for k, v in (extra or {}).items():
        out.append((k.encode("latin-1"), str(v).encode("latin-1", "replace")))
    return out


class _Raw:
    """A complete response as one ASGI send (cheaper than Starlette's Response for the hot path)."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers + [(b"content-length", str(len(body)).encode())]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _json(status: int, obj: Any, extra: Mapping[str, str] | None = None) -> _Raw:
    return _Raw(status, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), _headers(extra))


def _error(err: RequestError, extra: Mapping[str, str] | None = None) -> _Raw:
    return _json(err.status, err.envelope(), extra)


class _EventStream:
    """Server-sent events from ``chunks``; stops (and so cancels the upstream) when the client
    disconnects, even while the upstream is silent."""

    def __init__(self, chunks: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]], done: Callable[[str | None], Awaitable[None]]) -> None:
        self.chunks = chunks
        self.headers = headers
        self.done = done  # called once at the end with None, or "disconnect" / an error reason

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        outcome: str | None = None
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            finished, _ = await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            if pump in finished:
                outcome = pump.result()
            else:
                outcome = "disconnect"
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        except BaseException:
            outcome = outcome or "disconnect"
            pump.cancel()
            raise
        finally:
            watch.cancel()
            await self.done(outcome)

    async def _pump(self, send: Any) -> str | None:
        from ..errors import UpstreamError

        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        outcome = None
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as e:  # mid-stream: too late to fall back; tell the client in-band
            outcome = e.reason
            err = RequestError(502, f"upstream failed mid-stream: {e}", code="upstream_error", type="upstream_error")
            await send({"type": "http.response.body", "body": b"data: " + json.dumps(err.envelope()).encode() + b"\n\n", "more_body": True})
        except OSError:  # the client went away
            return "disconnect"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return outcome


async def _wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# ------------------------------------------------------------------------------------------------
# The app
# ------------------------------------------------------------------------------------------------


def create_app(config: ServeConfig, routers: dict[str, ServedRouter] | None = None) -> Any:
    """The Starlette app for ``config``. Pass ``routers`` already loaded (:func:`load_routers`);
    otherwise they load (on a thread) during the app's start-up, before uvicorn accepts a
    connection, so no request ever meets a half-loaded server."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import Route

    from .decisions import DecisionLog
    from .metrics import ServeMetrics

    metrics = ServeMetrics()
    server = Server(
        config=config,
        upstreams=_make_upstreams(config),
        metrics=metrics,
        decision_log=DecisionLog(config.decision_log, config.log_prompts) if config.decision_log else None,
        keys=[k.encode() for k in config.client_keys()],
    )
    if routers is not None:
        server.routers = routers
        for r in routers.values():  # batch sizes land in this app's metrics
            r.batcher.on_batch = lambda n, s, name=r.name: metrics.batch_size.labels(name).observe(n)
        server.ready = True

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if not server.ready:  # before the port accepts a request (uvicorn binds after start-up)
            server.routers = await asyncio.to_thread(load_routers, server.config, server.metrics)
            server.ready = True
            log.info("routers loaded: %s", ", ".join(server.routers) or "(none)")
        try:
            yield
        finally:
            for _cfg, up in server.upstreams.values():
                try:
                    await up.aclose()
                except Exception:  # pragma: no cover - closing is best effort
                    log.exception("closing an upstream client failed")
            for r in server.routers.values():
                r.batcher.close(timeout=1.0)
            if server.decision_log is not None:
                server.decision_log.close()

    handler = _ChatHandler(server)

    async def chat(request: Any) -> Any:
        return await handler(request)

    async def models(request: Any) -> Any:
        denied = _auth(server, request)
        if denied is not None:
            return denied
        now = int(time.time())
        data = []
        for name, rc in config.routers.items():
            data.append({"id": f"router-{name}", "object": "model", "created": now, "owned_by": "tela"})
        for name, (uc, _up) in server.upstreams.items():
            data.append({"id": name, "object": "model", "created": now, "owned_by": f"upstream:{uc.model or name}"})
        return _json(200, {"object": "list", "data": data})

    async def health(request: Any) -> Any:
        return _json(200, {"status": "ok"})

    async def ready(request: Any) -> Any:
        loaded = {n: n in server.routers and server.routers[n].batcher.alive for n in config.routers}
        ok = server.ready and all(loaded.values())
        return _json(200 if ok else 503, {"ready": ok, "routers": loaded})

    async def metrics_endpoint(request: Any) -> Any:
        body, ctype = metrics.exposition()
        return _Raw(200, body, _headers(content_type=ctype))

    async def not_found(request: Any, exc: Any) -> Any:
        status = getattr(exc, "status_code", 404)
        msg = "not found" if status == 404 else "method not allowed" if status == 405 else str(getattr(exc, "detail", "error"))
        return _error(RequestError(status, f"{request.method} {request.url.path}: {msg}", code="not_found" if status == 404 else None))

    async def internal(request: Any, exc: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(RequestError(500, f"internal error ({type(exc).__name__}); see the server log", type="server_error", code="internal_error"))

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_found, Exception: internal},
        lifespan=lifespan,
    )
    app.state.tela = server
    return app


def create_app_from_env() -> Any:
    """App factory for ``--workers N`` (uvicorn ``factory=True``): settings from ``$TELA_SERVE_CONFIG``."""
    _configure_logging()
    return create_app(ServeConfig.from_env())


def _configure_logging() -> None:
    logging.getLogger("tela.serve").setLevel(logging.INFO)


def _auth(server: Server, request: Any) -> Any:
    if not server.keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        given = token.strip().encode()
        if any(hmac.compare_digest(given, k) for k in server.keys):
            return None
    return _error(
        RequestError(401, "missing or invalid API key: send 'Authorization: Bearer KEY'", type="invalid_request_error", code="invalid_api_key")
    )


# ------------------------------------------------------------------------------------------------
# POST /v1/chat/completions
# ------------------------------------------------------------------------------------------------


class _ChatHandler:
    def __init__(self, server: Server) -> None:
        self.s = server
        self.cfg = server.config
        self.sticky = (server.config.sticky_header or "").lower() or None

    async def _read_body(self, request: Any) -> dict[str, Any]:
        limit = self.cfg.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes is over this server's limit of {limit}", code="request_too_large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body is over this server's limit of {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object", code="invalid_json")
        return body

    async def __call__(self, request: Any) -> Any:
        s = self.s
        denied = _auth(s, request)
        if denied is not None:
            s.metrics.requests.labels("none", "none", "401").inc()
            return denied
        started = time.perf_counter()
        target: Target | None = None
        try:
            body = await self._read_body(request)
            target = parse_model(body.get("model"), self.cfg.routers, s.upstreams)
            stream = bool(body.get("stream"))
            if target.router is not None:
                return await self._routed(request, body, target, stream, started)
            return await self._forward(request, body, stream, upstream=target.upstream or "", fallback=None, info=_Info(started=started))
        except RequestError as e:
            s.metrics.requests.labels(target.router or "none" if target else "none", "none", str(e.status)).inc()
            return _error(e)

    async def _routed(self, request: Any, body: dict[str, Any], target: Target, stream: bool, started: float) -> Any:
        s = self.s
        name = target.router or ""
        served = s.routers.get(name)
        sticky = bool(self.sticky and request.headers.get(self.sticky))
        text = routing_text(body.get("messages"), self.cfg.routing, sticky=sticky)
        if served is None or not served.batcher.alive:
            raise RequestError(503, f"router {name!r} is not ready", type="server_error", code="not_ready")
        if target.threshold is not None and len(served.router.models) != 2:
            raise RequestError(
                400, f"router {name!r} routes between {len(served.router.models)} models; a threshold needs two: use router-{name}",
                param="model", code="invalid_threshold",
            )
        from .batcher import RoutingFailed

        try:
            decision = await served.batcher.decide(text, target.threshold)
        except RoutingFailed as e:
            raise RequestError(500, f"router {name!r} failed to score the request: {e}", type="server_error", code="routing_failed") from None
        routed_at = time.perf_counter()
        routing_s = routed_at - started
        s.metrics.routing_seconds.labels(name).observe(routing_s)
        s.metrics.routed_to(name, decision.model, decision.model == served.strongest)
        upstream = served.upstream_of[decision.model]
        other = served.fallback_for(decision.model) if self.cfg.fallback else None
        info = _Info(
            started=started, router=name, decision=decision, routing_ms=routing_s * 1000.0, sticky=sticky,
            text=text if s.decision_log is not None and s.decision_log.log_prompts else None,
        )
        fallback = served.upstream_of[other] if other is not None else None
        return await self._forward(request, body, stream, upstream=upstream, fallback=fallback, info=info)

    # -- forwarding ---------------------------------------------------------------------------

    async def _forward(self, request: Any, body: dict[str, Any], stream: bool, upstream: str, fallback: str | None, info: "_Info") -> Any:
        from ..errors import UpstreamError

        s = self.s
        tried = [upstream]
        candidates = [upstream] + ([fallback] if fallback and fallback != upstream else [])
        last_error = "no upstream"
        for i, name in enumerate(candidates):
            ucfg, client = s.upstreams[name]
            out = dict(body)
            out["model"] = ucfg.model or name
            t0 = time.perf_counter()
            try:
                reply = await _until_disconnect(request, client.chat(out, stream))
            except _Disconnected:
                info.finish(s, name, status=499, upstream_s=time.perf_counter() - t0, outcome="disconnect")
                return _Raw(499, b"", [])
            except UpstreamError as e:
                s.metrics.upstream_errors.labels(name, e.reason).inc()
                last_error = f"{name}: {e}"
                self._note_fallback(info, name, candidates, i)
                continue
            if reply.status in RETRY_STATUSES:
                s.metrics.upstream_errors.labels(name, "status").inc()
                last_error = f"{name}: HTTP {reply.status}: {_error_message(reply.body)}"
                await reply.aclose()
                self._note_fallback(info, name, candidates, i)
                continue
            info.model = name
            headers = info.headers(name, fallback_from=tried[0] if name != tried[0] else None)
            if stream and reply.chunks is not None:
                return _EventStream(_tail_usage(reply, info), _headers(headers, "text/event-stream"), self._stream_done(info, name, t0, reply))
            upstream_s = time.perf_counter() - t0
            usage = reply.body.get("usage") if isinstance(reply.body, dict) else None
            info.usage(usage)
            info.finish(s, name, status=reply.status, upstream_s=upstream_s)
            return _json(reply.status, reply.body, headers)
        info.finish(s, candidates[-1], status=502, upstream_s=None, outcome="upstream_error")
        return _error(
            RequestError(502, f"upstream failed: {last_error}", type="upstream_error", code="upstream_error"),
            info.headers(None),
        )

    def _note_fallback(self, info: "_Info", failed: str, candidates: list[str], i: int) -> None:
        if i + 1 < len(candidates):
            self.s.metrics.fallbacks.labels(info.router or "none", failed, candidates[i + 1]).inc()
            info.fallback_from = failed

    def _stream_done(self, info: "_Info", name: str, t0: float, reply: "UpstreamReply") -> Callable[[str | None], Awaitable[None]]:
        async def done(outcome: str | None) -> None:
            await reply.aclose()
            if outcome not in (None, "disconnect"):
                self.s.metrics.upstream_errors.labels(name, outcome).inc()
            status = 499 if outcome == "disconnect" else 200
            info.finish(self.s, name, status=status, upstream_s=time.perf_counter() - t0, outcome=outcome)

        return done


class _Disconnected(Exception):
    pass


async def _until_disconnect(request: Any, call: Awaitable[Any]) -> Any:
    """Await ``call``; cancel it if the client disconnects first."""
    task = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(_wait_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watch.cancel()
        raise
    if task in done:
        watch.cancel()
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise _Disconnected()


async def _tail_usage(reply: "UpstreamReply", info: "_Info") -> AsyncIterator[bytes]:
    """Pass the stream through, keeping its tail to read the usage report at the end (sent when
    the client asked for ``stream_options: {include_usage: true}``)."""
    tail = b""
    assert reply.chunks is not None
    async for chunk in reply.chunks:
        tail = (tail + chunk)[-16384:]
        yield chunk
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                obj = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
                info.usage(obj["usage"])
            break


def _error_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:300]
    return str(body)[:300]


_IDS = itertools.count(1)
_ID_PREFIX: list[str] = []


def _next_id() -> str:
    """A request id unique across processes and restarts: a random per-process prefix and a
    counter (os.urandom per request costs more than routing a prompt on some VMs)."""
    if not _ID_PREFIX or _ID_PREFIX[0].split("-")[0] != f"{os.getpid():x}":
        _ID_PREFIX[:] = [f"{os.getpid():x}-{random.getrandbits(48):012x}"]
    return f"{_ID_PREFIX[0]}-{next(_IDS)}"


class _Info:
    """What one request did: for its headers, its metrics and its decision-log line."""

    __slots__ = ("started", "router", "decision", "routing_ms", "sticky", "text", "model", "fallback_from", "prompt_tokens", "completion_tokens", "id", "_done")

    def __init__(
        self, started: float, router: str | None = None, decision: "Decision | None" = None, routing_ms: float | None = None,
        sticky: bool = False, text: str | None = None,
    ) -> None:
        self.started = started
        self.router = router
        self.decision = decision
        self.routing_ms = routing_ms
        self.sticky = sticky
        self.text = text
        self.model: str | None = None
        self.fallback_from: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.id = _next_id()
        self._done = False

    def headers(self, model: str | None, fallback_from: str | None = None) -> dict[str, str]:
        h = {"x-request-id": self.id}
        if model is not None:
            h["x-tela-model"] = model
        if self.router is not None and self.decision is not None:
            h["x-tela-router"] = self.router
            h["x-tela-score"] = f"{self.decision.w:.6f}"
            h["x-tela-threshold"] = "" if self.decision.threshold is None else f"{self.decision.threshold:.6f}"
            h["x-tela-routing-ms"] = f"{self.routing_ms:.3f}"
        if fallback_from is not None:
            h["x-tela-fallback"] = fallback_from
        return h

    def usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.prompt_tokens = pt if isinstance(pt, int) else None
            self.completion_tokens = ct if isinstance(ct, int) else None

    def finish(self, s: Server, model: str, status: int, upstream_s: float | None, outcome: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        m = s.metrics
        m.requests.labels(self.router or "none", model, str(status)).inc()
        if upstream_s is not None and status < 500:
            m.upstream_seconds.labels(model).observe(upstream_s)
        ucfg = s.upstreams[model][0] if model in s.upstreams else None
        cost = m.usage(model, self.prompt_tokens, self.completion_tokens, ucfg.price_input, ucfg.price_output) if ucfg else None
        if s.decision_log is None:
            return
        d = self.decision
        rec: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
            "id": self.id,
            "router": self.router,
            "w": None if d is None else round(d.w, 6),
            "threshold": None if d is None else d.threshold,
            "chosen": None if d is None else d.model,
            "upstream": model,
            "fallback_from": self.fallback_from,
            "sticky": self.sticky,
            "status": status,
            "outcome": outcome,
            "routing_ms": None if self.routing_ms is None else round(self.routing_ms, 3),
            "upstream_ms": None if upstream_s is None else round(upstream_s * 1000.0, 3),
            "total_ms": round((time.perf_counter() - self.started) * 1000.0, 3),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": cost,
        }
        if self.text is not None:
            rec["prompt"] = self.text
        try:
            s.decision_log.write(rec)
        except OSError:
            log.exception("writing the decision log failed")
