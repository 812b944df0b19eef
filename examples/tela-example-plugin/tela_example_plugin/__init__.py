"""An example third-party tela plugin: one formatter, registered through entry point group ``tela``.

``question-only`` drops the long system prompt and shows the router just the question, which makes
training cheaper per example: the seed's system prompt is 185 SmolLM2 tokens, and on the bundled
MMLU sample an example averages 119 tokens with ``question-only`` against 324 with ``role-prefix``.
The package is laid out exactly as a plugin you publish would be: see its README.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Formatted, Formatter, Message, TelaError, hookimpl

__all__ = ["QuestionOnlyFormatter", "QuestionOnlyOptions"]

# The seed's user message wraps the question as "[Question]\n{question}\n\nPrediction:\n".
_SEED_USER = re.compile(r"\A\[Question\]\n(?P<q>.*)\n\nPrediction:\n\Z", re.DOTALL)


class QuestionOnlyOptions(BaseModel):
    """Settings of ``question-only`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    question_prefix: str = Field("Q: ", description="text before the question")
    answer_prefix: str = Field("\nScore: ", description="text between the question and the score token")


class QuestionOnlyFormatter(Formatter):
    """``Q: <question>\\nScore: `` then the score: no system prompt, no seed template."""

    name = "question-only"
    description = "just the user's question and the score; no system prompt (example plugin)"
    Options = QuestionOnlyOptions

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise TelaError("formatter 'question-only' needs a user message")
        m = _SEED_USER.match(users[-1])
        question = m.group("q") if m else users[-1]
        completion = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        opts = self.options
        return Formatted(prompt=f"{opts.question_prefix}{question}{opts.answer_prefix}", completion=completion)


@hookimpl
def tela_register_formatters(register: Any) -> None:
    register(QuestionOnlyFormatter)
