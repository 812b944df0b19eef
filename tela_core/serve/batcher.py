"""Micro-batching: concurrent routing requests become one scorer call on a worker thread.

Each router gets one thread (a :class:`~tela_core.routing.router.Router` is not re-entrant). Requests queue
up; the thread takes the first, waits up to ``window`` seconds for more (0: takes only what is
already waiting), caps the batch at ``max_batch`` prompts and scores them in one call. While it
scores, the next requests queue, so under load batches form by themselves and an LM router runs
one forward pass for many requests; at low load a request is scored alone, at once. The event
loop never blocks: it awaits a future the thread completes.

A router whose scorer answers in microseconds (``length``; below ``inline_below_ms``, measured
when the router loads) is scored on the event loop itself: handing a prompt to a thread and back
costs two system calls and a GIL hand-off, more than scoring it.

Batching must not cost throughput: a padded batch of prompts of very different lengths wastes
most of its compute on padding (on this project's CPU, embedding 32 mixed MMLU prompts in one call
cost 2.4x the CPU of embedding them one by one). So the batcher splits what it takes into groups
of similar length (the longest at most ``length_ratio`` times the shortest, in characters) and
scores each group in its own call; ``max_batch`` caps the whole. LM families also sort a call's
prompts and run them ``score_batch_size`` at a time (``lm-probe``, ``score-token``).

Under load this holds by construction: at 32 concurrent requests the thread finds the others
queued behind the call in hand and takes them all, so an encoder (a transformer embedder, an LM
router) runs a few calls of many prompts, not 32 calls of one (``tela_batch_size`` shows the sizes;
``tests/test_serve_batcher.py`` counts an embedder's calls under 32 concurrent requests). What a
batch saves depends on the hardware: on a GPU a batch costs about what one prompt does; on a CPU a
transformer's cost grows with the tokens of the batch, padding included, so there the length
groups keep padding small and LM families run one forward pass per prompt by default (measured
faster there: ``tela_core.serve.served_routers._cpu_batch_size``). On a CPU the way to serve an embedding
router fast is a cheap embedder, not a bigger batch: the default ``model2vec`` embeds a prompt in
about a millisecond (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..components import Scores

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.routing.router import Decision, Router

__all__ = ["Batcher", "with_quality"]

log = logging.getLogger("tela.serve")


class _Item:
    __slots__ = ("text", "threshold", "future", "loop")

    def __init__(
        self, text: str, threshold: float | None, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.text = text
        self.threshold = threshold
        self.future = future
        self.loop = loop


_STOP = object()


class Batcher:
    """Score prompts for one router on its own thread, many requests per scorer call."""

    def __init__(
        self,
        router: Router,
        *,
        window: float = 0.0,
        max_batch: int = 32,
        on_batch: Callable[[int, float], None] | None = None,
        name: str | None = None,
        inline_below_ms: float = 0.0,
        length_ratio: float = 1.5,
    ) -> None:
        self.router = router
        self.window = max(0.0, float(window))
        self.max_batch = max(1, int(max_batch))
        self.length_ratio = float(length_ratio)
        self.on_batch = on_batch
        self.inline = inline_below_ms > 0 and _probe_ms(router) < inline_below_ms
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"tela-router-{name or router.name}", daemon=True)
        if not self.inline:
            self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether requests can be scored (inline, or the thread is running)."""
        return self.inline or self._thread.is_alive()

    async def decide(self, text: str, threshold: float | None = None) -> Decision:
        """Route one text (``threshold`` None: the router's saved policy)."""
        if self.inline:
            if self.on_batch is not None:
                self.on_batch(1, 0.0)
            try:
                scores = self.router.scores([text])
                return with_quality(self.router.decisions(scores, threshold), scores, self.router.models)[0]
            except Exception as e:
                log.exception("router %s failed to score a prompt", self.router.name)
                raise RoutingFailed(str(e) or type(e).__name__) from None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._q.put(_Item(text, threshold, fut, loop))
        return await fut

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after the batch in hand."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)

    # -- the worker thread --------------------------------------------------------------------

    def _take(self) -> tuple[list[_Item], bool]:
        first = self._q.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            try:
                left = deadline - time.monotonic()
                item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            if batch:
                self._score(batch)

    def _groups(self, batch: list[_Item]) -> list[list[int]]:
        """Indices of ``batch`` in groups of similar length (longest ≤ ``length_ratio`` × shortest,
        in characters), each scored in its own call, so that no group pads short prompts to a long one."""
        order = sorted(range(len(batch)), key=lambda i: len(batch[i].text))
        if self.length_ratio <= 0:
            return [order]
        groups: list[list[int]] = []
        for i in order:
            if groups and len(batch[i].text) <= self.length_ratio * max(1, len(batch[groups[-1][0]].text)):
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def _score(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        results: list[Any] = [None] * len(batch)
        errors: list[BaseException | None] = [None] * len(batch)
        calls = self._groups(batch)
        for idx in calls:
            try:
                for i, d in zip(idx, self._decide([batch[i] for i in idx])):
                    results[i] = d
            except BaseException as e:  # delivered to these requests; the thread lives on
                log.exception("router %s failed to score %d prompts", self.router.name, len(idx))
                for i in idx:
                    errors[i] = e
        if self.on_batch is not None:
            for idx in calls:
                self.on_batch(len(idx), time.perf_counter() - started)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for it, res, err in zip(batch, results, errors):
            by_loop.setdefault(it.loop, []).append((it.future, res, err))
        for loop, triples in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, triples)
            except RuntimeError:  # the loop closed (server stopping)
                pass

    def _decide(self, items: list[_Item]) -> list[Decision]:
        """One scorer call for ``items``; each gets the decision for its own threshold."""
        import numpy as np

        scores = self.router.scores([it.text for it in items])
        w = np.asarray(scores.w, dtype=float).reshape(-1)
        probs = None if scores.probs is None else np.asarray(scores.probs)
        quality = None if scores.quality is None else np.asarray(scores.quality, dtype=float)
        coverage = None if scores.coverage is None else np.asarray(scores.coverage, dtype=float).reshape(-1)
        out: list[Any] = [None] * len(items)
        by_threshold: dict[float | None, list[int]] = {}
        for i, it in enumerate(items):
            by_threshold.setdefault(it.threshold, []).append(i)
        for threshold, idx in by_threshold.items():
            sub = Scores(
                w=w[idx],
                probs=None if probs is None else probs[idx],
                quality=None if quality is None else quality[idx],
                models=scores.models,
                coverage=None if coverage is None else coverage[idx],
            )
            for i, d in zip(idx, with_quality(self.router.decisions(sub, threshold), sub, self.router.models)):
                out[i] = d
        return out


def with_quality(decisions: list[Decision], scores: Scores, models: list[str]) -> list[Decision]:
    """``decisions`` with each model's predicted quality (``Decision.quality``) taken from
    ``scores.quality`` where the router left it unset, and the prompt's coverage
    (``Decision.coverage``, which shadow sampling reads) from ``scores.coverage``; unchanged for
    families that predict neither."""
    import dataclasses

    import numpy as np

    coverage = getattr(scores, "coverage", None)
    if coverage is not None and len(np.asarray(coverage).reshape(-1)) == len(decisions):
        c = np.asarray(coverage, dtype=float).reshape(-1)
        decisions = [
            dataclasses.replace(d, coverage=float(c[i])) if getattr(d, "coverage", 0.0) is None else d
            for i, d in enumerate(decisions)
        ]
    if scores.quality is None or all(d.quality is not None for d in decisions):
        return decisions
    q = np.asarray(scores.quality, dtype=float).reshape(len(decisions), -1)
    cols = list(scores.models) if scores.models is not None else list(models)
    if len(cols) != q.shape[1]:
        return decisions  # columns without names: nothing to say which model each is
    return [
        d if d.quality is not None else dataclasses.replace(d, quality={m: float(q[i, j]) for j, m in enumerate(cols)})
        for i, d in enumerate(decisions)
    ]


def _probe_ms(router: Router, tries: int = 5) -> float:
    """Median milliseconds of one scorer call on a short prompt (after a warm-up call). A new
    prompt each time: a repeated one would measure the embedding families' LRU, not the scorer."""
    text = "How many prime numbers are there below one hundred? Explain briefly."
    router.scores([text])
    times = []
    for i in range(tries):
        t0 = time.perf_counter()
        router.scores([f"{text} ({i + 1})"])
        times.append((time.perf_counter() - t0) * 1000.0)
    return sorted(times)[len(times) // 2]


def _deliver(triples: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, res, failed in triples:
        if fut.done():  # the request was cancelled (client went away)
            continue
        if failed is not None:
            fut.set_exception(RoutingFailed(str(failed) or type(failed).__name__))
        else:
            fut.set_result(res)


class RoutingFailed(Exception):
    """The router's scorer raised; the request is answered with an error, the server lives on."""
