"""The micro-batcher: concurrent routing requests become one scorer call on the router's thread."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from tela_core.components import Scores
from tela_core.routing.router import Decision
from tela_core.serve.batcher import Batcher, RoutingFailed


class SlowRouter:
    """A stand-in Router: w = len(text) / 100, each scorer call takes ``delay`` seconds."""

    name = "slow"
    models = ["weak", "strong"]

    def __init__(self, delay: float = 0.05, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def scores(self, prompts):
        self.threads.add(threading.current_thread().name)
        self.calls.append(len(prompts))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("scorer exploded")
        return Scores(w=np.array([len(p) / 100 for p in prompts]))

    def decisions(self, scores, threshold=None):
        t = 0.5 if threshold is None else threshold
        return [Decision(self.models[-1] if w >= t else self.models[0], float(w), t) for w in scores.w]


def _run(batcher, items):
    async def main():
        return await asyncio.gather(*(batcher.decide(text, t) for text, t in items))

    try:
        return asyncio.run(main())
    finally:
        batcher.close()


def test_concurrent_requests_share_scorer_calls_and_get_their_own_decision():
    r = SlowRouter(delay=0.05)
    items = [("x" * (i * 5), None if i % 3 else 0.2) for i in range(40)]
    out = _run(Batcher(r, max_batch=16, length_ratio=0), items)
    assert sum(r.calls) == 40 and max(r.calls) <= 16 and len(r.calls) <= 5  # batched, capped
    for (text, t), d in zip(items, out):
        w = len(text) / 100
        assert d.w == pytest.approx(w) and d.threshold == (0.5 if t is None else t)
        assert d.model == ("strong" if w >= d.threshold else "weak")
    assert r.threads == {"tela-router-slow"}  # never on the event loop's thread


def test_window_gathers_requests_that_arrive_later():
    # a 5 s window the second request is well inside of on a loaded machine too (a 0.2 s one is
    # missed if this thread sleeps 0.15 s past its 0.05 s); max_batch=2 ends the wait once it comes
    r = SlowRouter(delay=0.0)
    b = Batcher(r, window=5.0, max_batch=2, length_ratio=0)

    async def main():
        first = asyncio.ensure_future(b.decide("a"))
        await asyncio.sleep(0.05)
        return await asyncio.gather(first, b.decide("bb"))

    try:
        asyncio.run(main())
    finally:
        b.close()
    assert r.calls == [2]


def test_batches_are_split_into_calls_of_similar_length():
    r = SlowRouter(delay=0.05)
    texts = ["x" * n for n in (100, 10, 12, 110, 14, 400)]
    b = Batcher(r, max_batch=16, length_ratio=1.5)

    async def main():
        blocker = asyncio.ensure_future(b.decide("warm"))  # keeps the thread busy while the rest queue
        await asyncio.sleep(0.01)
        out = await asyncio.gather(*(b.decide(t) for t in texts))
        await blocker
        return out

    try:
        out = asyncio.run(main())
    finally:
        b.close()
    assert sorted(r.calls[1:]) == [1, 2, 3]  # {10, 12, 14}, {100, 110}, {400}
    assert [d.w for d in out] == [len(t) / 100 for t in texts]


def test_max_batch_one_scores_each_alone():
    r = SlowRouter(delay=0.01)
    _run(Batcher(r, max_batch=1), [("q", None)] * 8)
    assert r.calls == [1] * 8


def test_a_failing_scorer_fails_its_requests_not_the_thread():
    r = SlowRouter(delay=0.0, fail=True)
    b = Batcher(r)

    async def main():
        with pytest.raises(RoutingFailed, match="scorer exploded"):
            await b.decide("a")
        r.fail = False
        return await b.decide("b" * 80)

    try:
        assert asyncio.run(main()).model == "strong"
    finally:
        b.close()


def test_fast_scorers_are_scored_inline():
    r = SlowRouter(delay=0.0)
    b = Batcher(r, inline_below_ms=50)
    assert b.inline and not b._thread.is_alive()
    out = _run(b, [("q" * 70, None)])
    assert out[0].model == "strong" and threading.main_thread().name in r.threads
    slow = Batcher(SlowRouter(delay=0.01), inline_below_ms=1)
    assert not slow.inline
    slow.close()


def test_an_embedding_router_under_32_concurrent_requests_embeds_in_batches(register_plugin, tmp_path):
    """Issue 26: at 32 concurrent requests a router's encoder runs batches, not 32 single passes.
    A real kNN router behind the batcher, its embedder a plugin that takes a while per call and
    counts the texts of each call: 32 prompts of similar length come in a few calls; 32 of
    MMLU-like mixed lengths (40 to 2,000 characters) in calls of similar length, still far fewer
    than 32 (the batcher's ``tela_batch_size`` histogram sees the same sizes)."""
    import hashlib
    import random

    from pydantic import BaseModel

    from tela_core import Embedder, Record, hookimpl
    from tela_core.models import vector_cache
    from tela_core.routing.router import Router

    class SlowWords(Embedder):
        name = "slow-words"
        description = "hashed words, 20 ms a call (test)"
        Options = type("Options", (BaseModel,), {})
        calls: list[int] = []

        def embed(self, texts):
            SlowWords.calls.append(len(texts))
            time.sleep(0.02)  # a forward pass's fixed cost
            out = np.full((len(texts), 32), 1e-3, dtype=np.float32)
            for i, t in enumerate(texts):
                for w in t.split():
                    out[i, int(hashlib.sha256(w.encode()).hexdigest(), 16) % 32] += 1.0
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    class Plugin:
        @hookimpl
        def tela_register_embedders(self, register):
            register(SlowWords)

    reg = register_plugin(Plugin(), "slow-words-test")
    recs = [
        Record(
            prompt=f"{'prove the theorem' if i % 2 else 'what colour is'} number {i}",
            outcomes={"weak": float(i % 2 == 0), "strong": 1.0},
        )
        for i in range(40)
    ]
    reg.create("family", "embedding-knn", {"embedder": "slow-words", "k": 5}).fit(recs, tmp_path / "knn", {})
    vector_cache.use_shard_cache(False)  # as tela serve runs it, the LRU off: every prompt is embedded
    vector_cache.serving_cache(0)
    try:
        router = Router.load(tmp_path / "knn")
        rng = random.Random(0)
        similar = [f"question {i}: " + "word " * rng.randint(20, 26) for i in range(32)]
        mixed = [f"question {i}: " + "x" * int(40 * 50 ** rng.random()) for i in range(32)]
        for prompts, most_calls in ((similar, 4), (mixed, 16)):
            SlowWords.calls.clear()
            sizes: list[int] = []
            out = _run(
                Batcher(router, max_batch=32, on_batch=lambda n, s: sizes.append(n)), [(p, None) for p in prompts]
            )
            assert len(out) == 32 and sum(SlowWords.calls) == 32
            assert len(SlowWords.calls) <= most_calls and max(SlowWords.calls) > 1, SlowWords.calls
            assert sorted(sizes) == sorted(SlowWords.calls)
    finally:
        vector_cache.use_shard_cache(True)
