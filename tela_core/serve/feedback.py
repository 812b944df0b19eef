"""``POST /v1/feedback``: users' own verdicts on the answers ``tela serve`` gave, into a feedback log.

A client rates an answer by the request id the server sent with it (the ``x-request-id`` header of
every chat response; the body's ``id`` is the upstream's and is not used)::

    POST /v1/feedback   {"id": "<x-request-id>", "score": 0.8}      # or "score": "up" / "down"

It authenticates like a chat request (the same client keys). The score is a number in [0, 1]
(``up`` is 1, ``down`` 0); an optional ``source`` says who judged (``user``, the default, or
``judge`` for labels a judge gave to shadowed requests). Each accepted verdict is one line of the
feedback log (``feedback_log``), written like the decision log's lines (one ``write`` per line,
strict JSON, the log followed through rotation and opened again on SIGHUP:
:class:`tela_core.infra.logfile.AppendLog`), and counted in ``/metrics``
(``tela_feedback_total{router,result}``, ``tela_feedback_score_total{router}``).

Which ids the server issued
    With feedback on, every request id is signed: ``PID-RANDOM-N-TIME-SIG``, where ``TIME`` is when it
    was issued (hex seconds) and ``SIG`` a MAC of the rest under the server's feedback key (keyed
    BLAKE2s, 64 bits). So any
    process holding the key can tell an id the server issued (and when) without shared state: the
    workers of one ``tela serve --workers N`` share a key the main process draws at start, and
    replicas behind a load balancer share one when they are given the same ``feedback_key_env``.
    Replicas without a shared key accept feedback only for the ids they issued themselves (another
    replica's id is unknown to them: 404). An id that does not verify is a 404
    (``unknown_request_id``), one issued more than ``feedback_ttl_s`` ago a 410
    (``expired_request_id``); neither is written.

    Each process also keeps the ids it issued in a bounded map (``feedback_ids`` entries, oldest
    dropped first, none older than ``feedback_ttl_s``) with the router, its version, the model
    routing chose and the upstream that answered, so the feedback line carries them and the guard
    (:mod:`.guard`) counts the score for that version. Feedback for an id another process issued
    (or one the map dropped) is still accepted and written, with ``"known": false`` and those fields
    null; ``tela feedback`` joins them from the decision log. A request that got no whole answer (an
    error status, or a stream that ended early) cannot be rated when this process knows it: 409
    (``no_answer``); ``tela feedback`` skips the verdicts other processes took on such requests.

The same id rated twice
    Last wins: every verdict is written, readers (``tela feedback``) keep the last line per id, and
    the guard replaces the earlier score of that id. The answer says ``"replaced": true`` when this
    process had a verdict for the id already. Each process stores at most ``feedback_per_id``
    verdicts per id (counted for the ids it issued and, in a bounded map, for the others'); more are
    a 429 (``too_many_verdicts``), counted and not written.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.io import json_line_bytes
from tela_core.infra.logfile import AppendLog

from .chat import RequestError
from .responses import error_response, json_response

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.routing.router import Decision

    from .config import ServeConfig

__all__ = ["KEY_ENV", "Feedback", "FeedbackLog", "Issued", "sign_id", "verify_id", "parse_score", "set_key"]

log = logging.getLogger("tela.serve")

#: Environment variable that hands the workers of one ``tela serve --workers N`` the feedback key
#: the main process drew (:func:`tela_core.serve.runner.serve`).
KEY_ENV = "TELA_SERVE_FEEDBACK_KEY"

#: Largest feedback request body (bytes).
MAX_BODY = 16 * 1024
SOURCES = ("user", "judge")

_KEY: list[bytes] = []  # this process's feedback key once feedback is on; ids are signed only then


def set_key(config: ServeConfig) -> None:
    """Take the feedback key: ``$feedback_key_env`` (shared by replicas), else the one ``tela serve``
    handed its workers, else one drawn for this process. From then on :func:`sign_id` signs."""
    raw = os.environ.get(config.feedback_key_env) if config.feedback_key_env else None
    if raw is None or not raw.strip():
        raw = os.environ.get(KEY_ENV)
    if raw is None or not raw.strip():
        raw = os.environ[KEY_ENV] = secrets.token_hex(16)  # the workers a later fork starts share it
    _KEY[:] = [hashlib.blake2s(raw.strip().encode()).digest()]  # any length in, the 32 bytes blake2s takes


def _sig(key: bytes, body: str) -> str:
    """A 64-bit MAC of ``body``: keyed BLAKE2s (a MAC by design; under half the time of HMAC-SHA256)."""
    return hashlib.blake2s(body.encode(), key=key, digest_size=8).hexdigest()


def sign_id(base: str, now: float | None = None) -> str:
    """``base`` (an id unique to this process) with the issue time and a signature appended; ``base``
    itself when feedback is off (no key)."""
    if not _KEY:
        return base
    body = f"{base}-{int(time.time() if now is None else now):x}"
    return f"{body}-{_sig(_KEY[0], body)}"


def verify_id(rid: str) -> float | None:
    """When the signed id ``rid`` was issued (epoch seconds), or None when this key did not sign it."""
    if not _KEY or len(rid) > 200 or not rid.isascii():  # ids are ASCII; a lone surrogate cannot even be encoded
        return None
    body, sep, sig = rid.rpartition("-")
    _base, sep2, t = body.rpartition("-")
    if not sep or not sep2 or len(sig) != 16:
        return None
    if not hmac.compare_digest(sig.encode(), _sig(_KEY[0], body).encode()):  # bytes: any text a client sends
        return None
    try:
        return float(int(t, 16))
    except ValueError:  # pragma: no cover - a signed id always has its time
        return None


def parse_score(value: Any) -> float:
    """A verdict as a number in [0, 1]: the number itself, ``up`` -> 1, ``down`` -> 0."""
    if isinstance(value, str) and value.strip().lower() in ("up", "down"):
        return 1.0 if value.strip().lower() == "up" else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # no float(): 10**400
        raise RequestError(
            400,
            f"score must be a number in [0, 1], 'up' or 'down'; got {json.dumps(value)[:60]}",
            param="score",
            code="invalid_score",
        )
    return float(value) + 0.0  # -0.0 is 0.0


@dataclass(slots=True)
class Issued:
    """What this process knows of a request id it issued."""

    time: float
    router: str | None
    version: str | None
    chosen: str | None
    upstream: str | None
    status: int
    score: float | None = None
    verdicts: int = 0  # verdicts this process stored on the id (at most feedback_per_id)
    outcome: str | None = None  # a stream that ended early: "timeout", "disconnect", ... (no whole answer)


class FeedbackLog:
    """The feedback log: one strict JSON line per verdict, appended (:class:`AppendLog`)."""

    def __init__(self, path: str | Path) -> None:
        self._file = AppendLog(path, "feedback log")
        self.path = self._file.path

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json_line_bytes(record, default=str))

    def reopen(self) -> None:
        self._file.reopen()

    def close(self) -> None:
        self._file.close()


class Feedback:
    """Feedback in one server process: the ids it issued (bounded, expiring), the log, the endpoint."""

    def __init__(self, config: ServeConfig, server: Any) -> None:
        """``server``: the process's :class:`tela_core.serve.server.Server` (not imported: it holds this)."""
        assert config.feedback_log is not None
        set_key(config)
        self.server = server
        self.ttl = float(config.feedback_ttl_s)
        self.capacity = int(config.feedback_ids)
        self.log = FeedbackLog(config.feedback_log)
        self.ids: collections.OrderedDict[str, Issued] = collections.OrderedDict()
        self.per_id = int(config.feedback_per_id)
        # verdicts stored on ids another process issued (or this one forgot): id -> [issued at, count],
        # bounded as ``ids`` is (feedback_ids entries, none issued longer than feedback_ttl_s ago)
        self.others: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self.guard: Any = None  # the guard (:mod:`.guard`) that hears each accepted score, if on

    # -- issuing ------------------------------------------------------------------------------

    def issued(
        self,
        rid: str,
        router: str | None,
        decision: Decision | None,
        upstream: str,
        status: int,
        outcome: str | None = None,
    ) -> None:
        """Remember a finished request (``_Info.finish`` calls it for every request)."""
        now = time.time()
        ids = self.ids
        version = None if decision is None else (decision.version_name or decision.router_version)
        chosen = None if decision is None else decision.model
        ids[rid] = Issued(now, router, version, chosen, upstream, status, outcome=outcome)
        if self.guard is not None and router is not None:
            self.guard.serving(router)
        cutoff = now - self.ttl
        while ids and (len(ids) > self.capacity or next(iter(ids.values())).time < cutoff):
            ids.popitem(last=False)

    # -- the endpoint -------------------------------------------------------------------------

    async def endpoint(self, request: Any) -> Any:
        """``POST /v1/feedback`` from a client the app authenticated (the chat endpoint's keys)."""
        try:
            return await self._accept(request)
        except RequestError as e:
            self.server.metrics.feedback.labels("none", e.code or "invalid").inc()
            return error_response(e)

    async def _accept(self, request: Any) -> Any:
        body = await _read_json(request)
        rid = body.get("id", body.get("request_id"))
        if not isinstance(rid, str) or not rid.strip():
            raise RequestError(
                400,
                "feedback needs 'id': the x-request-id header of the chat response being rated",
                param="id",
                code="missing_id",
            )
        score = parse_score(body.get("score"))
        source = body.get("source", "user")
        if source not in SOURCES:
            raise RequestError(
                400,
                f"source must be one of {', '.join(SOURCES)}; got {json.dumps(source)[:60]}",
                param="source",
                code="invalid_source",
            )
        issued_at = verify_id(rid)
        if issued_at is None:
            raise RequestError(
                404,
                f"no request with id {rid[:80]!r} was answered by this server: send the x-request-id header "
                "of a chat response from it",
                param="id",
                code="unknown_request_id",
            )
        now = time.time()
        if now - issued_at > self.ttl:
            raise RequestError(
                410,
                f"request {rid[:80]!r} was answered {int(now - issued_at)} s ago; this server takes feedback "
                f"for {int(self.ttl)} s (feedback_ttl_s)",
                param="id",
                code="expired_request_id",
            )
        known = self.ids.get(rid)
        if known is not None and (not 200 <= known.status < 300 or known.outcome is not None):
            why = f"status {known.status}" if known.outcome is None else f"its stream ended early: {known.outcome}"
            raise RequestError(  # a thumbs-down on an error rates the outage, not the model (nor the version)
                409,
                f"request {rid[:80]!r} got no whole answer ({why}): there is nothing to rate",
                param="id",
                code="no_answer",
            )
        other = self._other(rid, issued_at, now) if known is None else [issued_at, 0.0]
        stored = known.verdicts if known is not None else int(other[1])
        if stored >= self.per_id:
            raise RequestError(
                429,
                f"request {rid[:80]!r} was rated {stored} times already; this server stores at most "
                f"{self.per_id} verdicts per request (feedback_per_id), the last one stands",
                param="id",
                code="too_many_verdicts",
            )
        router = known.router if known else None
        rec = {
            "time": _iso(now),
            "id": rid,
            "score": score,
            "source": source,
            "router": router,
            "router_version": known.version if known else None,
            "chosen": known.chosen if known else None,
            "upstream": known.upstream if known else None,
            "answered": _iso(issued_at),
            "known": known is not None,
        }
        m = self.server.metrics
        try:
            self.log.write(rec)
        except OSError as e:  # a full disk: nothing stored, so the client is told to try again
            m.log_lines_lost.labels("feedback").inc()
            log.error("writing the feedback log %s failed (%s): 1 line lost", self.log.path, e)
            raise RequestError(
                503, "the feedback could not be stored; try again later", type="server_error", code="not_stored"
            ) from None
        if known is not None:
            known.verdicts += 1
        else:
            other[1] += 1
        replaced = known is not None and known.score is not None
        label = router or ("none" if known is not None else "unknown")  # none: passed through, as in requests
        m.feedback.labels(label, "accepted").inc()
        m.feedback_score.labels(label).inc(score)
        if known is not None:
            previous, known.score = known.score, score
            if self.guard is not None and known.router is not None and known.version is not None:
                self.guard.observe(known.router, known.version, rid, score, previous)
        return json_response(200, {"object": "feedback", "id": rid, "score": score, "replaced": replaced})

    def _other(self, rid: str, issued_at: float, now: float) -> list[float]:
        """The ``[issued at, verdicts stored]`` of an id this process does not know, kept bounded."""
        others = self.others
        entry = others.get(rid)
        if entry is None:
            entry = others[rid] = [issued_at, 0.0]
            cutoff = now - self.ttl
            while others and (len(others) > self.capacity or next(iter(others.values()))[0] < cutoff):
                others.popitem(last=False)
        return entry

    def close(self) -> None:
        self.log.close()


async def _read_json(request: Any) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestError(413, f"a feedback body is at most {MAX_BODY} bytes", code="request_too_large")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise RequestError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
