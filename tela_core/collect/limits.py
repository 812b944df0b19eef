"""How hard tela may press one upstream: calls in flight, requests and tokens per minute.

Every upstream gets its own :class:`Limits`: a bound on calls in flight (a semaphore), a rolling 60-second window of
request starts (requests per minute) and of tokens (tokens per minute: a call's prompt estimate plus its output
allowance when it starts, corrected to what the upstream reported when it ends), each spread evenly over the minute
rather than spent in one burst, and a pause that a 429's ``Retry-After`` sets for the whole upstream, so the other
calls waiting on it do not run into the same limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["LimitSettings", "RateWindow", "Limits"]


@dataclass(frozen=True)
class LimitSettings:
    """One upstream's limits (None: no limit of that kind)."""

    max_concurrency: int = 8
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


class _Slot:
    __slots__ = ("t", "n")

    def __init__(self, t: float, n: float) -> None:
        self.t = t
        self.n = n


class RateWindow:
    """At most ``limit`` units started in any ``window`` seconds (a sliding log, exact), spread
    out rather than in one burst: a token bucket refilled at ``limit / window`` per second and
    holding at most ``burst_s`` seconds of it lets a start through only when it is full enough,
    as APIs that enforce a per-minute limit per second or so expect.

    A single request larger than the bucket waits for a full bucket and leaves it in debt, and one
    larger than the whole limit is let through when the window is empty, so it is slow rather than
    stuck forever.
    """

    def __init__(
        self, limit: float, window: float = 60.0, clock: Callable[[], float] = time.monotonic, burst_s: float = 1.0
    ) -> None:
        if not (math.isfinite(limit) and limit > 0):  # nan would make every wait nan: a hang
            raise ValueError(f"a rate limit must be a finite number > 0, got {limit!r}")
        self.limit = float(limit)
        self.window = float(window)
        self.clock = clock
        self._slots: deque[_Slot] = deque()
        self._used = 0.0
        self.rate = self.limit / self.window
        self.capacity = max(1.0, self.rate * burst_s)
        self._level = self.capacity
        self._at = clock()

    def _expire(self, now: float) -> None:
        while self._slots and self._slots[0].t <= now - self.window:
            self._used -= self._slots.popleft().n

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now

    def delay(self, n: float) -> float:
        """Seconds until ``n`` units fit (0: now)."""
        now = self.clock()
        self._expire(now)
        self._refill(now)
        bucket = max(0.0, (min(n, self.capacity) - self._level) / self.rate)
        if not self._slots or self._used + n <= self.limit + 1e-9:
            return bucket
        # wait until enough of the oldest starts leave the window
        need = self._used + n - self.limit
        freed = 0.0
        for slot in self._slots:
            freed += slot.n
            if freed >= need - 1e-9:
                return max(bucket, slot.t + self.window - now)
        return max(bucket, self._slots[-1].t + self.window - now)

    async def acquire(self, n: float) -> _Slot:
        """Wait until ``n`` units fit, then take them; returns the slot (see :meth:`adjust`)."""
        while True:
            d = self.delay(n)
            if d <= 1e-9:
                slot = _Slot(self.clock(), float(n))
                self._slots.append(slot)
                self._used += slot.n
                self._level -= slot.n
                return slot
            await asyncio.sleep(d)

    def adjust(self, slot: _Slot, n: float) -> None:
        """Count ``n`` units for ``slot`` instead of what it took (the real token count)."""
        if any(s is slot for s in self._slots):
            self._used += float(n) - slot.n
        self._level = min(self.capacity, self._level + slot.n - float(n))
        slot.n = float(n)


class Limits:
    """The limits of one upstream, applied around each call (:meth:`slot`)."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._sem = asyncio.Semaphore(max(1, settings.max_concurrency))
        self.rpm = RateWindow(settings.requests_per_minute, clock=clock) if settings.requests_per_minute else None
        self.tpm = RateWindow(settings.tokens_per_minute, clock=clock) if settings.tokens_per_minute else None
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every call to this upstream for ``seconds`` (a 429 with ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self.clock() + max(0.0, seconds))

    async def _wait_pause(self) -> None:
        while True:
            d = self._paused_until - self.clock()
            if d <= 0:
                return
            await asyncio.sleep(d)

    @asynccontextmanager
    async def slot(self, tokens: float) -> AsyncIterator[Callable[[float], None]]:
        """Hold one call's place: in flight, in the request window and the token window.
        Yields ``settle(real_tokens)`` to correct the token count once the answer says it."""
        async with self._sem:
            await self._wait_pause()
            if self.rpm is not None:
                await self.rpm.acquire(1)
            tslot = await self.tpm.acquire(tokens) if self.tpm is not None else None
            await self._wait_pause()  # a 429 may have come in while this call waited its turn
            tpm = self.tpm

            def settle(real: float) -> None:
                if tpm is not None and tslot is not None:
                    tpm.adjust(tslot, real)

            yield settle
