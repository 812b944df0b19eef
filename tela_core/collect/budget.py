"""What calls cost: prices, token estimates, the estimate printed before a run, and the budget.

Prices are dollars per million input (prompt) and output (completion) tokens, per upstream, as in
``tela serve``'s config (``price_input``, ``price_output``). A call's real cost comes from the
token counts the upstream reports (``usage``); before a run, and while a call is in flight, tela
uses an estimate: the prompt's characters / 4 (+4 tokens a message) and an assumed answer length.

The budget (``--max-cost``) counts what the output already holds, what this run spent and what
the calls in flight have *reserved* (their estimate, with the whole ``max_tokens`` allowance when
one is set). A call starts only if that sum, plus its own reservation, stays within the budget;
the first call that would not fit stops the run from starting any more (what is in flight ends
and is kept).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Prices", "Budget", "estimate_tokens", "estimate_prompt_tokens"]

#: characters per token assumed for estimates (English text with common tokenizers: ~4)
CHARS_PER_TOKEN = 4.0
#: tokens each chat message adds (role, separators) in the estimate
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """A rough token count for ``text`` (characters / 4, rounded up)."""
    return int(math.ceil(len(text) / CHARS_PER_TOKEN))


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A rough prompt token count for chat ``messages``."""
    n = 3
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else str(content or "")
        n += TOKENS_PER_MESSAGE + estimate_tokens(text)
    return n


#: the largest price tela takes, in dollars per million tokens: far above any model's list price,
#: so a typo (``1e308``) is refused instead of turning every cost and budget into ``inf``
MAX_PRICE = 100_000.0


@dataclass(frozen=True)
class Prices:
    """Dollars per million input and output tokens of one upstream model."""

    input: float = 0.0
    output: float = 0.0

    @property
    def known(self) -> bool:
        """Whether the config gave any price (0 and 0 means "not priced", e.g. a local model)."""
        return self.input > 0 or self.output > 0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Dollars for a call with these token counts."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


class Budget:
    """Spending against an optional limit, with reservations for calls in flight.

    ``spent`` starts at what earlier runs' answers cost (they count against the limit too).
    Once a reservation is refused the budget is :attr:`exhausted` and refuses every later one, so
    a run stops at one point instead of squeezing in cheaper calls after the limit was hit.
    """

    def __init__(self, limit: float | None = None, spent: float = 0.0) -> None:
        if limit is not None and not (math.isfinite(limit) and limit >= 0):  # nan passes every comparison as False
            raise ValueError(f"a budget must be a finite number of dollars >= 0, got {limit!r} (None: no budget)")
        self.limit = limit
        self.spent_before = float(spent)
        self.spent = float(spent)
        self.reserved = 0.0
        self.exhausted = False

    def reserve(self, amount: float) -> bool:
        """Reserve ``amount`` dollars for a call about to start; False (and exhausted) if it does not fit."""
        if self.exhausted:
            return False
        if self.limit is not None and self.spent + self.reserved + amount > self.limit + 1e-12:
            self.exhausted = True
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        """A call ended: drop its reservation, count what it really cost."""
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual

    @property
    def spent_now(self) -> float:
        """What this run spent."""
        return self.spent - self.spent_before
