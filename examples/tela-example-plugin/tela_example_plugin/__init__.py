"""An example third-party tela plugin: one formatter, registered through entry point group ``tela``.

``question-only`` drops the long system prompt and shows the router just the question, which makes
training on a CPU several times cheaper per example (the seed's system prompt is ~170 tokens).
"""

from __future__ import annotations

from typing import Any, Sequence

from tela_core import Formatted, Formatter, Message, hookimpl


class QuestionOnlyFormatter(Formatter):
    """``Q: <user message>\\nA: `` then the score: no system prompt."""

    name = "question-only"
    description = "just the user message and the score; no system prompt (example plugin)"

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        completion = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        return Formatted(prompt=f"Q: {user}\nA: ", completion=completion)


@hookimpl
def tela_register_formatters(register):
    register(QuestionOnlyFormatter)
