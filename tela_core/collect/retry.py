"""When a failed call to a paid model is tried again, and after how long.

A 429 (rate limited), a 408/409/425, a 5xx, a timeout, a broken connection or an answer that is not
an OpenAI chat completion is tried again, up to :attr:`RetryPolicy.tries` times in all, after an
exponential backoff with jitter (the wait doubles each time, capped, and is drawn between half and
all of that so that many clients do not retry in step). When the upstream says how long to wait
(``Retry-After``, in seconds or as an HTTP date) that wait is honoured exactly, never shortened.
An authentication failure (401/403) is never retried: every later call would fail the same way.
Any other 4xx (a prompt too long, a bad parameter) is not retried either: it is recorded as that
answer's error.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["RetryPolicy", "retry_after_seconds", "classify_status", "AUTH_STATUSES", "RETRY_STATUSES"]

#: statuses that mean "your key is wrong or not allowed": stop everything, never retry
AUTH_STATUSES = frozenset({401, 403})
#: statuses worth trying again (rate limits, timeouts, server errors)
RETRY_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


def classify_status(status: int) -> Literal["ok", "auth", "retry", "fail"]:
    """What to do with an HTTP status: ``ok`` (2xx), ``auth`` (stop), ``retry`` or ``fail`` (record)."""
    if 200 <= status < 300:
        return "ok"
    if status in AUTH_STATUSES:
        return "auth"
    if status in RETRY_STATUSES:
        return "retry"
    return "fail"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (>= 0): a number of seconds or an
    HTTP date (RFC 9110). None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    import email.utils
    from datetime import timezone

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryPolicy:
    """How often and how long to retry one call.

    ``tries`` counts every attempt (1: never retry). The n-th retry waits a draw from
    ``[d/2, d]`` with ``d = min(cap_s, base_s * 2**(n-1))``, unless the upstream sent
    ``Retry-After``: then exactly that (a longer one than ``max_retry_after_s`` ends the retries,
    rather than leaving a run asleep for hours).
    """

    tries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    max_retry_after_s: float = 600.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def backoff(self, retry: int) -> float:
        """The jittered exponential wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, retry - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def wait(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``retry``; None when the upstream asks for a longer wait
        than :attr:`max_retry_after_s`."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_s else None
        return self.backoff(retry)
