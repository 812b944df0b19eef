"""``old-question-only``: the user's question and the score, without the seed's system prompt."""

from __future__ import annotations

import re
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

from tela_core import Formatted, Formatter, Message, TelaError

# The seed's user message wraps the question as "[Question]\n{question}\n\nPrediction:\n".
_SEED_USER = re.compile(r"\A\[Question\]\n(?P<q>.*)\n\nPrediction:\n\Z", re.DOTALL)


class QuestionOnlyOptions(BaseModel):
    """Settings of ``old-question-only`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    question_prefix: str = "Q: "
    answer_prefix: str = "\nScore: "


class QuestionOnlyFormatter(Formatter):
    """``Q: <question>\\nScore: `` then the score: no system prompt, no seed template."""

    name = "old-question-only"
    description = "just the user's question and the score; no system prompt (tela-old-plugin)"
    Options = QuestionOnlyOptions

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise TelaError("formatter 'old-question-only' needs a user message")
        m = _SEED_USER.match(users[-1])
        question = m.group("q") if m else users[-1]
        completion = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        opts = self.options
        return Formatted(prompt=f"{opts.question_prefix}{question}{opts.answer_prefix}", completion=completion)
