"""Shadow mode: learn from live traffic what the models routing did not choose would have answered.

For a sampled share of a router's requests (``shadow: RATE``, ``--shadow RATE``), once the user's
answer is complete (the last byte of a stream sent, or the JSON answer sent), the same request goes
to the router's other model (two models), or to ``shadow_models`` of the models routing did not
choose (N models), and one line with every answer goes to the shadow log. ``tela collect
--from-log`` and ``tela judge`` turn that log into training records for the next router; a record
with some models' outcomes missing is valid training data.

Which requests and which models (:class:`ShadowSampler`, ``shadow_sampling``): ``uniform`` (the
default) samples each routed request with probability ``shadow`` and the models not chosen
uniformly, an unbiased sample of the traffic (what evaluating a router on its labels needs);
``uncertainty`` gives the same share on average to the requests whose decision was closest
(``w`` near the threshold; for N models another model's predicted quality near the chosen
one's) or, for families that say how well their training data covers a prompt
(``Scores.coverage``: ``embedding-knn``), whose neighbourhood is sparsest, and asks the models
predicted closest to the chosen one: the labels most likely to change a decision. Every line
records the probability its request was sampled with (``p``), so that an evaluation can weight the
labels back to the traffic.

Nothing of it is on the response path: a finished request only offers a job to a bounded queue
(``shadow_queue``; a full queue drops the job and counts it in ``tela_shadow_dropped_total``), a
small pool of worker tasks (``shadow_workers``) makes the shadow calls, and one writer task
appends the lines. A shadow call that fails is recorded with its error and counted in
``tela_shadow_failed_total``; the user's request never waits for, or fails because of, shadow mode.
Requests that failed, fell back to the other model, or whose client left before the end are not
shadowed (there is no complete answer to compare).

The shadow log (JSONL, one object per shadowed request)::

    {"time": "2026-11-30T04:29:34.505Z", "request_id": "51a8-2deec9752cff-17", "router": "knn",
     "w": 0.21, "threshold": 0.5, "chosen": "mixtral-8x7b", "models": ["mixtral-8x7b", "gpt-4o"],
     "upstreams": {"mixtral-8x7b": "small", "gpt-4o": "big"},
     "sampling": {"mode": "uniform", "p": 0.1},
     "quality": {"mixtral-8x7b": 0.61, "gpt-4o": 0.83},    # N-model routers only
     "messages": [...],                                   # only with log_prompts
     "answers": {"mixtral-8x7b": {"text": "...",          # text only with log_prompts
                                  "error": null, "usage": {"prompt_tokens": 31, "completion_tokens": 212},
                                  "latency_s": 0.31, "model": "mixtral-8x7b"},   # the model id sent
                 "gpt-4o": {...}}}

Model names are the router's (as in the decision log's ``chosen``); ``upstreams`` says which
upstream answered for each; ``answers`` holds the chosen model and the models asked (all of the
router's models for two; ``shadow_models`` of the others for N). The chosen model's answer is the
one the user got; the others are the shadow calls, sent without streaming (``stream`` false,
``stream_options`` removed) and otherwise exactly as the client sent the request. ``usage`` is null
when the upstream reported none (a stream whose client did not ask for ``include_usage``). Lines are
appended by one writer task per process, each batch in one ``write`` to a file opened for appending,
so lines never interleave, also between the processes of ``--workers N``; only a killed server can
leave a half-written last line, which :func:`read_shadow_log` skips.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import InputError, UpstreamError
from tela_core.infra.io import json_line_bytes
from tela_core.infra.logfile import AppendLog, read_log
from tela_core.upstreams.usage import token_count

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Upstream

    from .config import UpstreamConfig
    from .metrics import ServeMetrics

__all__ = ["ShadowJob", "Shadow", "ShadowSampler", "ShadowLog", "read_shadow_log", "answer_text", "stream_text"]

log = logging.getLogger("tela.serve")

#: Most bytes of a streamed answer kept for the shadow log's text (a longer one is logged without text).
MAX_CAPTURE = 8 * 1024 * 1024


@dataclass
class ShadowJob:
    """A finished request to shadow: what was asked, what routing chose, and the answer the user got."""

    request_id: str
    time: str
    router: str
    w: float
    threshold: float | None
    chosen: str  # the router's model name
    models: list[str]  # the router's models, cheap -> strong
    upstream_of: dict[str, str]  # model -> upstream name
    body: dict[str, Any]  # the request as the client sent it
    latency_s: float
    usage: dict[str, int] | None = None
    reply_body: Any = None  # a JSON answer
    reply_chunks: list[bytes] | None = None  # a streamed answer's bytes (kept only with log_prompts)
    truncated: bool = False  # the streamed answer was over MAX_CAPTURE
    quality: dict[str, float] | None = None  # each model's predicted quality (N-model routers)
    p: float | None = None  # the probability the request was sampled with
    upstreams: Mapping[str, Any] | None = None  # the server's upstreams when the request came (a reload may swap them)


#: How close (in ``w``, or in predicted quality) counts as "close" for uncertainty sampling: the
#: weight of a request or model falls by e for each 0.1 between it and the decision.
_CLOSE = 0.1
#: How little coverage counts as "sparse": a request's sparseness falls by e for each 0.1 of
#: coverage (the share of training prompts whose neighbourhood is no closer than its own).
_SPARSE = 0.1
#: Uncertainty sampling's floor: every request keeps at least this share of the uniform
#: probability, so no region of the traffic goes unlabelled for good.
_FLOOR = 0.2
#: Requests over which the running mean of the uncertainty is kept (exponential, per router).
_MEAN_OVER = 200


class ShadowSampler:
    """Which routed requests shadow mode samples (:meth:`sample`) and which of the models routing
    did not choose each asks (:meth:`pick`): ``uniform`` or ``uncertainty`` (the module doc).

    Uncertainty of a decision, in (0, 1]: ``exp(-gap / 0.1)`` where ``gap`` is ``|w - threshold|``
    (two models, or no predicted quality; threshold 0.5 for policies without one), or, for N
    models, the smallest gap between the chosen model's predicted quality and another's.
    Sparseness, for decisions that carry a coverage ``c`` in [0, 1] (``Decision.coverage``):
    ``exp(-c / 0.1)`` (1: less covered than every training prompt sampled). A request's priority
    ``v`` is the larger of the two (the uncertainty alone without a coverage), and it is sampled
    with probability ``rate x (0.2 + 0.8 x v / mean v)`` (at most 1), the mean taken over the
    router's recent requests, so the share stays ``rate`` on average."""

    def __init__(self, mode: str = "uniform", k: int = 1, rng: random.Random | None = None) -> None:
        self.mode = mode
        self.k = max(1, int(k))
        self._rng = rng or random.Random()
        self._mean: dict[str, float] = {}

    @staticmethod
    def uncertainty(decision: Any) -> float:
        """How close ``decision`` was, in (0, 1] (1: a tie)."""
        quality = getattr(decision, "quality", None)
        chosen = getattr(decision, "model", None)
        if quality and chosen in quality and len(quality) > 1:
            qc = float(quality[chosen])
            gap = min(abs(float(q) - qc) for m, q in quality.items() if m != chosen)
        else:
            t = decision.threshold if decision.threshold is not None else 0.5
            gap = abs(float(decision.w) - float(t))
        return math.exp(-gap / _CLOSE)

    @staticmethod
    def sparseness(decision: Any) -> float | None:
        """How sparse the training data is around ``decision``'s prompt, in (0, 1] (1: less
        covered than any training prompt), or None when its family gives no coverage."""
        c = getattr(decision, "coverage", None)
        if c is None or not math.isfinite(float(c)):
            return None
        return math.exp(-min(max(float(c), 0.0), 1.0) / _SPARSE)

    @classmethod
    def priority(cls, decision: Any) -> float:
        """What ``uncertainty`` sampling weighs a request by: the larger of its uncertainty and its
        sparseness (the uncertainty alone where the family gives no coverage)."""
        u = cls.uncertainty(decision)
        s = cls.sparseness(decision)
        return u if s is None else max(u, s)

    def probability(self, router: str, rate: float, decision: Any) -> float:
        """The probability this routed request is sampled with (and the running mean updated)."""
        if rate <= 0.0:
            return 0.0
        if rate >= 1.0:
            return 1.0
        if self.mode != "uncertainty":
            return rate
        u = self.priority(decision)
        mean = self._mean.get(router, u)
        self._mean[router] = mean + (u - mean) / _MEAN_OVER
        return min(1.0, rate * (_FLOOR + (1.0 - _FLOOR) * u / max(mean, 1e-6)))

    def sample(self, router: str, rate: float, decision: Any) -> float | None:
        """The probability the request was sampled with, or None when it is not sampled."""
        p = self.probability(router, rate, decision)
        return p if p > 0.0 and (p >= 1.0 or self._rng.random() < p) else None

    def pick(self, models: list[str], chosen: str, quality: dict[str, float] | None) -> list[str]:
        """The models (not ``chosen``) a sampled request asks, in the router's order: all of them
        when there are at most ``k``; else ``k`` drawn uniformly, or (``uncertainty``, with
        predictions) drawn with weight ``exp(-|q - q_chosen| / 0.1)``, the closest most often."""
        others = [m for m in models if m != chosen]
        if len(others) <= self.k:
            return others
        if self.mode == "uncertainty" and quality and chosen in quality and all(m in quality for m in others):
            qc = float(quality[chosen])
            # weighted draw without replacement (Efraimidis-Spirakis: the k largest u^(1/weight))
            keys = {
                m: math.log(max(self._rng.random(), 1e-300)) / math.exp(-abs(float(quality[m]) - qc) / _CLOSE)
                for m in others
            }
            picked = set(sorted(others, key=lambda m: keys[m], reverse=True)[: self.k])
        else:
            picked = set(self._rng.sample(others, self.k))
        return [m for m in others if m in picked]


def answer_text(body: Any) -> str | None:
    """The assistant text of a chat-completions JSON answer (its first choice), or None."""
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def stream_text(chunks: list[bytes]) -> str | None:
    """The assistant text of a chat-completions event stream: its first choice's ``delta.content``
    pieces, joined; None when no event carries text."""
    parts: list[str] = []
    seen = False
    for line in b"".join(chunks).split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            event = json.loads(data)
            choice = event["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        piece = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
        if isinstance(piece, str):
            parts.append(piece)
            seen = True
    return "".join(parts) if seen else None


def _usage(obj: Any) -> dict[str, int] | None:
    if not isinstance(obj, dict):
        return None

    out = {k: n for k in ("prompt_tokens", "completion_tokens") if (n := token_count(obj.get(k))) is not None}
    return out or None


def _error_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return " ".join(str(body["error"].get("message", "")).split())[:300]
    return " ".join(str(body).split())[:300]


class ShadowLog:
    """Append-only JSONL file: each batch of lines in one ``os.write`` to a file opened with
    ``O_APPEND`` (whole lines only, never interleaved with another writer's). A log moved away or
    deleted is opened again at its path before the next batch (:class:`tela_core.infra.logfile.AppendLog`);
    :meth:`reopen` (SIGHUP) opens it again on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = AppendLog(self.path, "shadow log")

    def write_lines(self, records: list[dict[str, Any]]) -> None:
        data = b"".join(
            json_line_bytes(r, default=str)
            for r in records  # strict JSON, one line for every reader (infra.io)
        )
        self._file.write(data)

    def reopen(self) -> None:
        self._file.reopen()

    def close(self) -> None:
        self._file.close()


class Shadow:
    """The queue, the worker tasks and the writer task of shadow mode in one server process.

    :meth:`offer` is all a request does (from the event loop, after its answer is sent); it never
    blocks and never raises. :meth:`start` runs on the server's event loop at start-up,
    :meth:`close` at shutdown (it waits a little for queued jobs, then counts the rest as dropped).
    """

    def __init__(
        self,
        path: str | Path,
        upstreams: dict[str, tuple[UpstreamConfig, Upstream]],
        metrics: ServeMetrics,
        *,
        queue_size: int = 1000,
        workers: int = 4,
        log_prompts: bool = False,
        sampling: str = "uniform",
        models_per_request: int = 1,
    ) -> None:
        self.log = ShadowLog(path)
        self.sampler = ShadowSampler(sampling, models_per_request)
        self.upstreams = upstreams
        self.metrics = metrics
        self.queue_size = int(queue_size)
        self.n_workers = max(1, int(workers))
        self.log_prompts = bool(log_prompts)
        self._jobs: asyncio.Queue[ShadowJob] | None = None
        self._records: asyncio.Queue[dict[str, Any]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the queues and tasks on the running event loop."""
        self._jobs = asyncio.Queue(maxsize=self.queue_size)
        self._records = asyncio.Queue()
        self._tasks = [asyncio.ensure_future(self._work()) for _ in range(self.n_workers)]
        self._tasks.append(asyncio.ensure_future(self._write()))

    async def close(self, timeout: float = 5.0) -> None:
        """Let queued jobs finish for up to ``timeout`` seconds, write what is done, count the rest
        as dropped (``shutdown``), and close the log."""
        if self._jobs is not None and self._records is not None:
            try:
                await asyncio.wait_for(self._jobs.join(), timeout)
            except asyncio.TimeoutError:
                pass
            for t in self._tasks[:-1]:
                t.cancel()
            await asyncio.gather(*self._tasks[:-1], return_exceptions=True)
            while not self._jobs.empty():
                job = self._jobs.get_nowait()
                self.metrics.shadow_dropped.labels(job.router, "shutdown").inc()
            try:
                await asyncio.wait_for(self._records.join(), 5.0)
            except asyncio.TimeoutError:  # pragma: no cover - a stuck disk
                log.error("shadow log: %d lines not written at shutdown", self._records.qsize())
            self._tasks[-1].cancel()
            await asyncio.gather(self._tasks[-1], return_exceptions=True)
        self.log.close()

    # -- the request side -----------------------------------------------------------------------

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job`` for its shadow calls; False (counted as dropped) when the queue is full."""
        q = self._jobs
        if q is None:
            self.metrics.shadow_dropped.labels(job.router, "shutdown").inc()
            return False
        try:
            q.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.shadow_dropped.labels(job.router, "queue_full").inc()
            return False
        return True

    # -- workers ----------------------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._jobs is not None and self._records is not None
        while True:
            job = await self._jobs.get()
            try:
                record = await self._shadow(job)
                self._records.put_nowait(record)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the worker
                log.exception("shadow mode: request %s could not be shadowed", job.request_id)
            finally:
                self._jobs.task_done()

    async def _shadow(self, job: ShadowJob) -> dict[str, Any]:
        others = self.sampler.pick(job.models, job.chosen, job.quality)
        results = await asyncio.gather(*(self._call(job, m) for m in others))
        answers: dict[str, dict[str, Any]] = {}
        for m in job.models:
            if m == job.chosen:
                answers[m] = self._chosen_answer(job)
            elif m in others:
                answers[m] = results[others.index(m)]
            else:
                continue
            # the model id sent: collect --from-log files the answer under it, so an upstream whose
            # model changed since (or a router naming its models anything) never mixes two models
            ucfg = (job.upstreams or self.upstreams).get(job.upstream_of[m], (None, None))[0]
            answers[m]["model"] = getattr(ucfg, "model", None) or job.upstream_of[m]
        record: dict[str, Any] = {
            "time": job.time,
            "request_id": job.request_id,
            "router": job.router,
            "w": round(job.w, 6),
            "threshold": job.threshold,
            "chosen": job.chosen,
            "models": list(job.models),
            "upstreams": {m: job.upstream_of[m] for m in job.models},
            "sampling": {"mode": self.sampler.mode, "p": None if job.p is None else round(job.p, 6)},
        }
        if job.quality is not None:
            record["quality"] = {m: round(float(q), 6) for m, q in job.quality.items()}
        if self.log_prompts:
            record["messages"] = job.body.get("messages")
        record["answers"] = answers
        return record

    def _chosen_answer(self, job: ShadowJob) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.log_prompts and not job.truncated:
            text = answer_text(job.reply_body) if job.reply_body is not None else stream_text(job.reply_chunks or [])
            if text is not None:
                out["text"] = text
        out.update({"error": None, "usage": job.usage, "latency_s": round(job.latency_s, 6)})
        return out

    async def _call(self, job: ShadowJob, model: str) -> dict[str, Any]:
        """One shadow call: the user's request, unstreamed, to ``model``'s upstream."""
        name = job.upstream_of[model]
        ucfg, client = (job.upstreams or self.upstreams)[name]
        body = dict(job.body)
        body["model"] = ucfg.model or name
        body["stream"] = False
        body.pop("stream_options", None)
        t0 = time.perf_counter()
        error: str | None = None
        reply_body: Any = None
        try:
            reply = await client.chat(body, False)
            try:
                reply_body = reply.body
                if not 200 <= reply.status < 300:
                    error = f"HTTP {reply.status}: {_error_message(reply.body)}"
            finally:
                await reply.aclose()
        except UpstreamError as e:
            error = " ".join(str(e).split())[:300] or e.reason
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an upstream plugin's bug: recorded, never raised to anyone
            error = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        latency = time.perf_counter() - t0
        self.metrics.shadow_calls.labels(job.router, model).inc()
        out: dict[str, Any] = {}
        usage = None
        if error is None:
            usage = _usage(reply_body.get("usage") if isinstance(reply_body, dict) else None)
            text = answer_text(reply_body)
            if self.log_prompts and text is not None:
                out["text"] = text
            if usage:
                cost = (
                    usage.get("prompt_tokens", 0) * ucfg.price_input
                    + usage.get("completion_tokens", 0) * ucfg.price_output
                ) / 1e6
                if cost:
                    self.metrics.shadow_cost.labels(name).inc(cost)
        else:
            self.metrics.shadow_failed.labels(job.router, model).inc()
        out.update({"error": error, "usage": usage, "latency_s": round(latency, 6)})
        return out

    # -- the writer -------------------------------------------------------------------------------

    async def _write(self) -> None:
        """The one task that writes the shadow log: what is waiting, in one write, on a thread."""
        assert self._records is not None
        while True:
            batch = [await self._records.get()]
            while not self._records.empty():
                batch.append(self._records.get_nowait())
            try:
                await asyncio.to_thread(self.log.write_lines, batch)
                for r in batch:
                    self.metrics.shadowed.labels(r["router"]).inc()
            except OSError as e:  # a full disk: counted, one line in the server log
                self.metrics.log_lines_lost.labels("shadow").inc(len(batch))
                log.error(
                    "writing the shadow log %s failed (%s): %d line%s lost",
                    self.log.path,
                    e,
                    len(batch),
                    "" if len(batch) == 1 else "s",
                )
            finally:
                for _ in batch:
                    self._records.task_done()


def read_shadow_log(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line of a shadow log. A bad line raises :class:`InputError`
    naming the line, except a half-written last line (a killed server's), which is skipped."""
    for lineno, rec in read_log(path, "shadow log"):
        if not isinstance(rec.get("answers"), dict):
            raise InputError(Path(path), lineno, "not a shadow-log record (an object with 'answers')")
        yield lineno, rec
