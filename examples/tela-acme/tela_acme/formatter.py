"""``acme-compact``: the user's question only, long prompts cut in the middle to a character budget.

The seed's ``role-prefix`` text carries a 185-token system prompt on every example. A router
trained on the question alone trains and scores faster; a very long prompt (a pasted document
and a question at the end) is cut in the middle, keeping its opening and its last part (where the
question usually is), so one pasted log does not dominate a batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Formatted, Formatter, Message, TelaError

# The seed's user message wraps the question as "[Question]\n{question}\n\nPrediction:\n".
_SEED_USER = re.compile(r"\A\[Question\]\n(?P<q>.*)\n\nPrediction:\n\Z", re.DOTALL)


class CompactOptions(BaseModel):
    """Settings of ``acme-compact`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    max_chars: int = Field(
        1500, ge=0, description="Longest question kept, in characters (0: no limit); longer ones are cut in the middle."
    )
    tail_share: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="Share of max_chars kept from the end of a cut question (the rest from its start).",
    )
    marker: str = Field(" [...] ", description="Text put where a question was cut.")
    prefix: str = Field("Question: ", description="Text before the question.")
    suffix: str = Field("\nScore: ", description="Text between the question and the score (the completion).")
    lowercase: bool = Field(
        False, description="Lower-case the question (for tokenisers or features that are case-sensitive)."
    )


def compact(question: str, max_chars: int, tail_share: float, marker: str) -> str:
    """``question`` cut to ``max_chars`` characters of content: head, ``marker``, tail."""
    if max_chars == 0 or len(question) <= max_chars:
        return question
    tail = int(round(max_chars * tail_share))
    head = max_chars - tail
    return question[:head].rstrip() + marker + (question[-tail:].lstrip() if tail else "")


class CompactFormatter(Formatter):
    """The user's question (middle-cut to max_chars) and the score; no system prompt."""

    name = "acme-compact"
    description = "the question only, middle-cut to max_chars (head + tail kept), then the score (tela-acme)"
    Options = CompactOptions
    options: CompactOptions

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise TelaError("formatter 'acme-compact' needs a user message")
        m = _SEED_USER.match(users[-1])
        question = m.group("q") if m else users[-1]
        o = self.options
        question = compact(question, o.max_chars, o.tail_share, o.marker)
        if o.lowercase:
            question = question.lower()
        completion = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        return Formatted(prompt=f"{o.prefix}{question}{o.suffix}", completion=completion)
