"""``POST /v1/chat/completions``: read, authorise, route, forward to an upstream (falling back to
the other model, or for N models to the next by predicted quality), answer, and record what
happened (metrics, decision log); a request that shadow mode samples is handed to it
(:mod:`.shadow`) once its answer is sent."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import UpstreamError
from tela_core.upstreams.usage import token_count

from .batcher import RoutingFailed
from .chat import RequestError, Target, parse_model, routing_text
from .feedback import sign_id
from .responses import EventStream, RawResponse, error_response, json_response, raw_headers, wait_disconnect
from .server import Server, check_auth
from .shadow import MAX_CAPTURE, ShadowJob

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import UpstreamReply
    from tela_core.routing.router import Decision

    from .served_routers import ServedRouter

__all__ = ["ChatHandler", "RETRY_STATUSES", "MAX_JSON_DEPTH"]

log = logging.getLogger("tela.serve")

#: Upstream statuses that count as the upstream failing (fallback), not as a bad request.
RETRY_STATUSES = frozenset({401, 403, 408, 409, 425, 429}) | frozenset(range(500, 600))

#: Deepest nesting of arrays and objects a request body may have (a chat request needs a handful;
#: the bound keeps every later step, forwarding and logging the body included, far from Python's
#: recursion limit).
MAX_JSON_DEPTH = 256


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON: refused (forwarded, they would reach the
    upstream and the shadow log as text no strict JSON reader takes)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one past a double's range (``1e400``) is refused: Python reads it
    as ``inf``, which no upstream takes (the request failed upstream, a 502 after a fallback)."""
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"the number {text[:40]} is out of range (no JSON reader holds it)")
    return x


def _too_deep(raw: bytes, body: Any) -> bool:
    """Whether ``body`` (parsed from ``raw``) nests arrays and objects more than
    :data:`MAX_JSON_DEPTH` deep. Bodies with fewer brackets than that (nearly all) are not walked."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class ChatHandler:
    def __init__(self, server: Server) -> None:
        self.s = server
        self.sticky = (server.config.sticky_header or "").lower() or None

    @property
    def cfg(self) -> Any:
        """The server's settings now (a reload replaces its routers and upstreams)."""
        return self.s.config

    async def _read_body(self, request: Any) -> dict[str, Any]:
        limit = self.cfg.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(
                413,
                f"request body of {declared} bytes is over this server's limit of {limit}",
                code="request_too_large",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413, f"request body is over this server's limit of {limit} bytes", code="request_too_large"
                )
            chunks.append(chunk)
        raw = b"".join(chunks)
        deep = False
        try:
            body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
        except RecursionError:  # deeper than Python's parser goes: the client's error, not ours
            body, deep = None, True
        if deep or _too_deep(raw, body):
            log.warning("refused a request body nested more than %d levels deep (400)", MAX_JSON_DEPTH)
            raise RequestError(
                400, f"the request body is nested more than {MAX_JSON_DEPTH} levels deep", code="invalid_json"
            )
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object", code="invalid_json")
        return body

    async def __call__(self, request: Any) -> Any:
        s = self.s
        denied = check_auth(s, request)
        if denied is not None:
            s.metrics.requests.labels("none", "none", "401").inc()
            return denied
        started = time.perf_counter()
        target: Target | None = None
        try:
            body = await self._read_body(request)
            # from here to the router's lookup in _routed nothing awaits: the routers and upstreams
            # this request uses are those of one moment, never half of a reload's swap
            ups = s.upstreams
            knobs = {n: str(r.router.knob) for n, r in s.routers.items() if getattr(r.router, "knob", None)}
            target = parse_model(body.get("model"), self.cfg.routers, ups, knobs)
            stream = bool(body.get("stream"))
            if target.router is not None:
                return await self._routed(request, body, target, stream, started, ups)
            return await self._forward(
                request, body, stream, upstream=target.upstream or "", fallbacks=[], info=_Info(started, ups)
            )
        except RequestError as e:
            s.metrics.requests.labels(target.router or "none" if target else "none", "none", str(e.status)).inc()
            return error_response(e)

    async def _routed(
        self,
        request: Any,
        body: dict[str, Any],
        target: Target,
        stream: bool,
        started: float,
        ups: dict[str, Any],
    ) -> Any:
        s = self.s
        name = target.router or ""
        served = s.routers.get(name)
        sticky = bool(self.sticky and request.headers.get(self.sticky))
        text = routing_text(body.get("messages"), self.cfg.routing, sticky=sticky)
        if served is None or not served.batcher.alive:
            raise RequestError(503, f"router {name!r} is not ready", type="server_error", code="not_ready")
        knob = getattr(served.router, "knob", None)
        if target.threshold is not None and knob:
            try:  # the policy's own check of its knob's value (a budget must be > 0, ...)
                policy: Any = served.router.policy  # an N-model policy (it has a knob)
                policy.at(float(target.threshold))
            except Exception as e:
                raise RequestError(
                    400,
                    f"router {name!r}: {knob} {target.threshold:g}: {' '.join(str(e).split())[:200]}",
                    param="model",
                    code="invalid_threshold",
                ) from None
        elif target.threshold is not None and len(served.router.models) != 2:
            raise RequestError(
                400,
                f"router {name!r} routes between {len(served.router.models)} models; a threshold needs two: use "
                f"router-{name}",
                param="model",
                code="invalid_threshold",
            )

        try:
            decision = await served.batcher.decide(text, target.threshold)
        except RoutingFailed as e:
            raise RequestError(
                500, f"router {name!r} failed to score the request: {e}", type="server_error", code="routing_failed"
            ) from None
        routed_at = time.perf_counter()
        routing_s = routed_at - started
        s.metrics.routing_seconds.labels(name).observe(routing_s)
        s.metrics.routed_to(name, decision.model, decision.model == served.strongest)
        upstream = served.upstream_of[decision.model]
        fallbacks: list[str] = []
        if self.cfg.fallback:
            for m in served.fallback_order(decision.model, decision.quality):
                u = served.upstream_of[m]
                if u != upstream and u not in fallbacks and len(fallbacks) < self.cfg.fallback_models:
                    fallbacks.append(u)
        info = _Info(
            started,
            ups,
            router=name,
            decision=decision,
            routing_ms=routing_s * 1000.0,
            sticky=sticky,
            text=text if s.decision_log is not None and s.decision_log.log_prompts else None,
        )
        if len(served.router.models) > 2:
            info.upstream_of = served.upstream_of
        if served.shadow > 0 and s.shadow is not None:
            p = s.shadow.sampler.sample(name, served.shadow, decision)
            s.metrics.shadow_sampled(name, s.shadow.sampler.mode, p is not None)
            if p is not None:
                info.shadow = _Shadowed(served, body, keep_stream=s.shadow.log_prompts, p=p)
        return await self._forward(request, body, stream, upstream=upstream, fallbacks=fallbacks, info=info)

    # -- forwarding ---------------------------------------------------------------------------

    async def _forward(
        self, request: Any, body: dict[str, Any], stream: bool, upstream: str, fallbacks: list[str], info: _Info
    ) -> Any:
        s = self.s
        tried = [upstream]
        candidates = [upstream] + [f for f in fallbacks if f != upstream]
        last_error = "no upstream"
        for i, name in enumerate(candidates):
            ucfg, client = info.ups[name]  # the upstreams when the request arrived
            out = dict(body)
            out["model"] = ucfg.model or name
            t0 = time.perf_counter()
            try:
                reply = await _until_disconnect(request, client.chat(out, stream))
            except _Disconnected:
                info.finish(s, name, status=499, upstream_s=time.perf_counter() - t0, outcome="disconnect")
                return RawResponse(499, b"", [])
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
                return EventStream(
                    _tail_usage(reply, info, functools.partial(self._stream_whole, info, name, t0)),
                    raw_headers(headers, "text/event-stream"),
                    self._stream_done(info, name, t0, reply),
                )
            upstream_s = time.perf_counter() - t0
            usage = reply.body.get("usage") if isinstance(reply.body, dict) else None
            info.usage(usage)
            info.finish(s, name, status=reply.status, upstream_s=upstream_s)
            after = None
            if info.shadow is not None and info.shadow_eligible(name, reply.status, None):
                info.shadow.reply_body = reply.body
                after = functools.partial(info.offer_shadow, s, upstream_s)  # once the answer is sent
            return json_response(reply.status, reply.body, headers, after)
        info.finish(s, candidates[-1], status=502, upstream_s=None, outcome="upstream_error")
        return error_response(
            RequestError(502, f"upstream failed: {last_error}", type="upstream_error", code="upstream_error"),
            info.headers(None),
        )

    def _note_fallback(self, info: _Info, failed: str, candidates: list[str], i: int) -> None:
        info.failed.append(failed)
        if i + 1 < len(candidates):
            self.s.metrics.fallbacks.labels(info.router or "none", failed, candidates[i + 1]).inc()
            if info.fallback_from is None:  # the chosen model's upstream (the header's x-tela-fallback)
                info.fallback_from = failed

    def _stream_done(
        self, info: _Info, name: str, t0: float, reply: UpstreamReply
    ) -> Callable[[str | None], Awaitable[None]]:
        """What the event stream calls once, at its end, with its outcome (:meth:`_stream_finished`)."""
        return functools.partial(self._stream_finished, info, name, t0, reply)

    def _stream_whole(self, info: _Info, name: str, t0: float) -> None:
        """The upstream's ``data: [DONE]`` came: the answer is whole. Recorded now, before the client
        reads that event: the official clients stop there and hang up (the sync one at once), so
        recording at the stream's end counted a whole answer as a 499 when the upstream's last bytes
        came later, and a client's next request (its feedback, /metrics) could come before them."""
        upstream_s = time.perf_counter() - t0
        info.finish(self.s, name, status=200, upstream_s=upstream_s)
        if info.shadow is not None and info.shadow_eligible(name, 200, None):
            info.offer_shadow(self.s, upstream_s)

    async def _stream_finished(
        self, info: _Info, name: str, t0: float, reply: UpstreamReply, outcome: str | None
    ) -> None:
        await reply.aclose()
        if outcome not in (None, "disconnect"):
            self.s.metrics.upstream_errors.labels(name, outcome).inc()
        if info.finished:  # whole at its [DONE] (:meth:`_stream_whole`): recorded then
            return
        status = 499 if outcome == "disconnect" else 200
        upstream_s = time.perf_counter() - t0
        info.finish(self.s, name, status=status, upstream_s=upstream_s, outcome=outcome)
        if info.shadow is not None and info.shadow_eligible(name, status, outcome):
            info.offer_shadow(self.s, upstream_s)  # the last byte is sent


class _Disconnected(Exception):
    pass


async def _until_disconnect(request: Any, call: Awaitable[Any]) -> Any:
    """Await ``call``; cancel it if the client disconnects first."""
    task = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(wait_disconnect(request.receive))
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


#: the ``data: [DONE]`` event after another event (a stream whose first event it is ends as before, at
#: its last byte); a newline inside an event's JSON is escaped, so none is taken for it
_DONE_EVENT = re.compile(rb"\ndata: ?\[DONE\]")


async def _tail_usage(
    reply: UpstreamReply, info: _Info, whole: Callable[[], None] | None = None
) -> AsyncIterator[bytes]:
    """Pass the stream through, keeping its tail to read the usage report (sent when the client
    asked for ``stream_options: {include_usage: true}``). ``whole`` is called once, before the chunk
    holding ``data: [DONE]`` is passed on: the answer is complete there."""
    tail = b""
    assert reply.chunks is not None
    keep = info.shadow.chunks if info.shadow is not None else None
    kept = 0
    async for chunk in reply.chunks:
        tail = (tail + chunk)[-16384:]
        if keep is not None:  # shadow mode's copy of the answer (log_prompts only), bounded
            kept += len(chunk)
            if kept <= MAX_CAPTURE:
                keep.append(chunk)
            elif info.shadow is not None:
                info.shadow.truncated = True
        if whole is not None and b"[DONE]" in tail[-len(chunk) - 8 :] and _DONE_EVENT.search(tail):
            _read_usage(tail, info)
            whole()
            whole = None
        yield chunk
    _read_usage(tail, info)


def _read_usage(tail: bytes, info: _Info) -> None:
    """The usage report in the last ``data:`` line that has one, into ``info``."""
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
    return sign_id(f"{_ID_PREFIX[0]}-{next(_IDS)}")  # with feedback on: issue time and signature appended


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class _Shadowed:
    """A request shadow mode sampled: what its job needs once the answer is complete."""

    __slots__ = ("served", "body", "chunks", "reply_body", "truncated", "time", "p")

    def __init__(self, served: ServedRouter, body: dict[str, Any], keep_stream: bool, p: float = 1.0) -> None:
        self.p = p  # the probability this request was sampled with
        self.served = served
        self.body = body
        self.chunks: list[bytes] | None = [] if keep_stream else None
        self.reply_body: Any = None
        self.truncated = False
        self.time = ""


class _Info:
    """What one request did: for its headers, its metrics and its decision-log line."""

    __slots__ = (
        "started",
        "router",
        "decision",
        "routing_ms",
        "sticky",
        "text",
        "model",
        "fallback_from",
        "prompt_tokens",
        "completion_tokens",
        "id",
        "shadow",
        "upstream_of",
        "failed",
        "ups",
        "_done",
    )

    def __init__(
        self,
        started: float,
        ups: Mapping[str, Any],
        router: str | None = None,
        decision: Decision | None = None,
        routing_ms: float | None = None,
        sticky: bool = False,
        text: str | None = None,
    ) -> None:
        self.started = started
        #: the server's upstreams when the request arrived (a reload may replace them meanwhile)
        self.ups = ups
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
        self.shadow: _Shadowed | None = None
        #: the router's model -> upstream map, for N-model routers only (x-tela-quality, the log's "failed")
        self.upstream_of: dict[str, str] | None = None
        self.failed: list[str] = []
        self._done = False

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` recorded this request already."""
        return self._done

    def shadow_eligible(self, upstream: str, status: int, outcome: str | None) -> bool:
        """Whether a sampled request has a complete answer from the model routing chose."""
        sh, d = self.shadow, self.decision
        return (
            sh is not None
            and d is not None
            and 200 <= status < 300
            and outcome is None
            and self.fallback_from is None
            and sh.served.upstream_of.get(d.model) == upstream
        )

    def offer_shadow(self, s: Server, upstream_s: float) -> None:
        """Hand the finished request to shadow mode (never raises: the user's answer is sent)."""
        sh, d = self.shadow, self.decision
        if sh is None or d is None or s.shadow is None or self.router is None:
            return
        try:
            pt, ct = self.prompt_tokens, self.completion_tokens
            usage = {k: v for k, v in (("prompt_tokens", pt), ("completion_tokens", ct)) if v is not None} or None
            s.shadow.offer(
                ShadowJob(
                    request_id=self.id,
                    time=sh.time or _now_iso(),
                    router=self.router,
                    w=float(d.w),
                    threshold=d.threshold,
                    chosen=d.model,
                    models=list(sh.served.router.models),
                    upstream_of=dict(sh.served.upstream_of),
                    body=sh.body,
                    latency_s=upstream_s,
                    usage=usage,
                    reply_body=sh.reply_body,
                    reply_chunks=sh.chunks if sh.reply_body is None else None,
                    truncated=sh.truncated,
                    quality=None if d.quality is None else dict(d.quality),
                    p=sh.p,
                    upstreams=self.ups,
                )
            )
        except Exception:  # pragma: no cover - shadow mode never fails a request
            log.exception("shadow mode: request %s not queued", self.id)

    def headers(self, model: str | None, fallback_from: str | None = None) -> dict[str, str]:
        h = {"x-request-id": self.id}
        if model is not None:
            h["x-tela-model"] = model
        if self.router is not None and self.decision is not None:
            h["x-tela-router"] = self.router
            h["x-tela-score"] = f"{self.decision.w:.6f}"
            if self.decision.threshold is not None:  # none for tiers and the N-model policies: no header
                h["x-tela-threshold"] = f"{self.decision.threshold:.6f}"
            h["x-tela-routing-ms"] = f"{self.routing_ms:.3f}"
            if self.decision.router_version is not None:
                h["x-tela-router-version"] = self.decision.router_version
            if self.decision.version_name is not None:  # served from a versions folder: v3
                h["x-tela-version"] = self.decision.version_name
            if self.decision.quality is not None and self.upstream_of is not None:
                h["x-tela-quality"] = quality_header(self.decision.quality, self.upstream_of)
        if fallback_from is not None:
            h["x-tela-fallback"] = fallback_from
        return h

    def usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            # a negative count made every answer a 500 (a Prometheus counter cannot go down)
            self.prompt_tokens = token_count(usage.get("prompt_tokens"))
            self.completion_tokens = token_count(usage.get("completion_tokens"))

    def finish(self, s: Server, model: str, status: int, upstream_s: float | None, outcome: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        m = s.metrics
        m.requests.labels(self.router or "none", model, str(status)).inc()
        if upstream_s is not None and status < 500:
            m.upstream_seconds.labels(model).observe(upstream_s)
        ucfg = self.ups[model][0] if model in self.ups else None
        cost = (
            m.usage(model, self.prompt_tokens, self.completion_tokens, ucfg.price_input, ucfg.price_output)
            if ucfg
            else None
        )
        if self.shadow is not None:
            self.shadow.time = _now_iso()
        if s.feedback is not None:  # the ids POST /v1/feedback takes
            s.feedback.issued(self.id, self.router, self.decision, model, status, outcome)
        if s.decision_log is None:
            return
        d = self.decision
        rec: dict[str, Any] = {
            "time": self.shadow.time if self.shadow is not None else _now_iso(),
            "id": self.id,
            "router": self.router,
            "router_version": None if d is None else d.router_version,
            "version": None if d is None else d.version_name,  # v3, from a versions folder (else None)
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
        if d is not None and d.quality is not None:
            rec["quality"] = {m: round(float(q), 6) for m, q in d.quality.items()}
        knob = getattr(d, "knob", None)  # an N-model policy's knob and the value applied ({"lam": 0.5})
        if knob:
            rec["knob"] = dict(knob)
        if self.upstream_of is not None:
            rec["failed"] = list(self.failed)
        if self.text is not None:
            rec["prompt"] = self.text
        if self.shadow is not None and self.shadow_eligible(model, status, outcome):
            rec["shadow"] = True
        try:
            s.decision_log.write(rec)
        except OSError as e:  # a full disk: counted, one line in the server log, the request unharmed
            m.log_lines_lost.labels("decision").inc()
            log.error("writing the decision log %s failed (%s): 1 line lost", s.decision_log.path, e)


def quality_header(quality: Mapping[str, float], upstream_of: Mapping[str, str]) -> str:
    """``x-tela-quality``: each model's predicted quality for the request, as compact JSON keyed by
    upstream name (the names ``x-tela-model`` uses), 4 decimals: ``{"small":0.4125,"big":0.8}``."""
    return json.dumps(
        {upstream_of[m]: round(float(q), 4) for m, q in quality.items() if m in upstream_of},
        separators=(",", ":"),
        ensure_ascii=True,
    )
