"""What the model-calling judges share: the conversation as the judge reads it, and ``[[x]]`` parsing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tela_core import JudgeItem, JudgeOutputError, TelaError
from tela_core.components import message_text

__all__ = ["conversation_before", "bracketed", "snippet", "answer_of"]


def conversation_before(item: JudgeItem) -> str:
    """The turns before the last user turn (system included), as ``### Role:`` blocks; "" for a
    single-turn chat. A judge needs them to judge a follow-up question (MT-Bench's multi-turn
    judge shows the whole conversation the same way)."""
    messages = list(item.messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    blocks = []
    for m in messages[: max(last_user, 0)]:
        role = str(m.get("role", "user")).capitalize()
        blocks.append(f"### {role}:\n{message_text(m.get('content')).strip()}")
    return "\n\n".join(blocks)


def snippet(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters: what an error message quotes of a reply."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bracketed(reply: str, pattern: str, what: str, allowed: Iterable[str]) -> str:
    """The one value a judge ``reply`` puts in double brackets (``[[4]]``, ``[[B]]``).

    ``pattern`` matches the inside of the brackets. Repeating the same value is fine (a judge that
    restates its rating); no value, two different values, or one outside ``allowed`` raise
    :class:`JudgeOutputError`, quoting the reply: the caller retries, then records an error."""
    found = [m.strip() for m in re.findall(r"\[\[\s*(" + pattern + r")\s*\]\]", reply)]
    distinct = list(dict.fromkeys(found))
    allowed = list(allowed)
    if not distinct:
        raise JudgeOutputError(f"the judge's reply has no {what} in [[ ]]: {snippet(reply)!r}", reply)
    if len(distinct) > 1:
        raise JudgeOutputError(
            f"the judge's reply has several different {what}s ({', '.join(f'[[{d}]]' for d in distinct)}): "
            f"{snippet(reply)!r}",
            reply,
        )
    value = distinct[0]
    if value not in allowed:
        raise JudgeOutputError(
            f"the judge's {what} [[{value}]] is not one of {', '.join(allowed)}: {snippet(reply)!r}", reply
        )
    return value


def answer_of(item: JudgeItem, model: str, judge: str) -> str:
    """``model``'s answer in ``item``; a TelaError naming the item when it has none."""
    answer = item.answers.get(model)
    if answer is None:
        have = ", ".join(m for m, a in item.answers.items() if a is not None) or "none"
        raise TelaError(f"judge {judge!r}: item {item.id!r} has no answer from {model!r} (answers from: {have})")
    return answer
