"""The token counts an upstream reports (``usage``), as far as tela believes them.

An upstream (or a proxy in front of it) can report anything: a negative count, one of hundreds of
digits, a float, a string. tela prices, budgets, rate-limits and counts in Prometheus counters
with these numbers, so a count is taken only when it is a whole number from 0 to
:data:`MAX_TOKENS`; otherwise the call counts as one without a usage report (``tela collect``
then estimates it, ``tela serve`` leaves it out).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_TOKENS", "token_count"]

#: the largest token count of one call taken as reported (far above any model's context window)
MAX_TOKENS = 1_000_000_000


def token_count(value: Any) -> int | None:
    """``value`` when it is a believable token count (an int, not a bool, 0..MAX_TOKENS), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None
