"""``pairwise``: a judge model compares the two models' answers, asked in both orders.

LLM judges favour a position (most often the first answer shown), so a single comparison mixes
the answers' quality with where they stood. As Chatbot Arena's and MT-Bench's pairwise judge do,
tela asks twice, with the answers swapped, and combines: a model scores 1 for a win, 0.5 for a
tie and 0 for a loss in each order, and its outcome is the mean over the two orders. A judge that
prefers the same *position* both times thus gives each model one win and one loss: 0.5 each, a
tie, instead of a verdict the order decided.

The prompt follows MT-Bench's pairwise template (``pair-v2``): instructions that name position
and length bias, the question, optionally a reference answer, the two answers between start/end
markers, and the verdict as ``[[A]]`` (assistant A better), ``[[B]]`` (B better) or ``[[C]]``
(a tie). A reply without exactly one of them raises :class:`JudgeOutputError`.

The label is derived from the two outcomes the way outcome sources derive theirs
(:func:`tela_core.data.labels.label_for`): the weak model at 0.5 or more (it wins or ties) gives 5,
otherwise 1.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Judge, JudgeItem, JudgeOutputError, JudgeRequest, TelaError, Verdict
from tela_core.data.labels import OutcomeOptions, label_for

from .common import answer_of, bracketed, conversation_before

__all__ = ["PairwiseJudge", "PairwiseOptions", "SYSTEM_PROMPT", "parse_winner", "user_message"]

#: The judge's instructions.
SYSTEM_PROMPT = """You are an impartial judge comparing the answers two AI assistants gave to a user's question. Choose the assistant whose answer follows the user's instructions and answers the question better, considering helpfulness, relevance, accuracy, depth and level of detail. If a reference answer is shown, compare both answers with it first and point out their mistakes. Begin with a short, objective comparison of the two answers. The order in which the answers are shown must not influence your decision, nor must their length or the assistants' names. Then give your verdict in double square brackets, exactly once: "[[A]]" if assistant A's answer is better, "[[B]]" if assistant B's answer is better, "[[C]]" for a tie."""


class PairwiseOptions(BaseModel):
    """Options of the ``pairwise`` judge."""

    model_config = ConfigDict(extra="forbid")

    use_reference: bool = Field(True, description="show the judge the item's reference answer when the data has one")
    system_prompt: str | None = Field(
        None,
        description="replace the judge's instructions (its system message); they must ask for the verdict as "
        "[[A]], [[B]] or [[C]] (a tie)",
    )
    max_tokens: int | None = Field(
        512, ge=1, description="cap on each judge reply in tokens (room for its comparison before the verdict)"
    )


def parse_winner(reply: str) -> str:
    """``A``, ``B`` or ``C`` (a tie) from a judge's reply; :class:`JudgeOutputError` if not exactly one."""
    return bracketed(reply, r"[A-Za-z]+", "verdict", ["A", "B", "C"])


def user_message(item: JudgeItem, first: str, second: str, reference: str | None) -> str:
    """The user message: earlier turns, the question, the reference, assistant A's and B's answers."""
    parts = []
    earlier = conversation_before(item)
    if earlier:
        parts.append(f"[Conversation before the question]\n{earlier}")
    parts.append(f"[Question]\n{item.prompt}")
    if reference is not None:
        parts.append(f"[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]")
    parts.append(f"[The Start of Assistant A's Answer]\n{first}\n[The End of Assistant A's Answer]")
    parts.append(f"[The Start of Assistant B's Answer]\n{second}\n[The End of Assistant B's Answer]")
    return "\n\n".join(parts)


#: points for the answer shown as A / as B, per verdict
_POINTS = {"A": (1.0, 0.0), "B": (0.0, 1.0), "C": (0.5, 0.5)}


class PairwiseJudge(Judge):
    """A judge model compares the two answers in both orders (position bias cancels); 1/0/0.5 outcomes."""

    name = "pairwise"
    Options = PairwiseOptions
    options: PairwiseOptions
    needs_upstream = True
    needs_reference = False

    def _pair(self, item: JudgeItem) -> tuple[str, str]:
        """(weak, strong), or the two answers in their order when the pair is not named."""
        if item.weak is not None and item.strong is not None:
            pair = (item.weak, item.strong)
        elif len(item.answers) == 2:
            a, b = list(item.answers)
            pair = (a, b) if item.strong != a and item.weak != b else (b, a)
        else:
            raise TelaError(
                f"judge 'pairwise' compares two answers; item {item.id!r} has {len(item.answers)} "
                f"({', '.join(item.answers) or 'none'}) and no weak/strong pair named"
            )
        for model in pair:
            answer_of(item, model, self.name)
        return pair

    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        x, y = self._pair(item)
        ref = item.reference if self.options.use_reference else None
        system = self.options.system_prompt or SYSTEM_PROMPT
        return [
            JudgeRequest(
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user_message(item, item.answers[a], item.answers[b], ref)},
                ],
                max_tokens=self.options.max_tokens,
            )
            for a, b in ((x, y), (y, x))
        ]

    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        x, y = self._pair(item)
        if len(replies) != 2:
            raise ValueError(f"pairwise: 2 judge calls for item {item.id!r}, {len(replies)} replies")
        winners = []
        for i, reply in enumerate(replies):
            try:
                winners.append(parse_winner(reply))
            except JudgeOutputError as e:
                e.index = i
                raise
        # order 0 shows x as A; order 1 shows y as A
        x_points = (_POINTS[winners[0]][0] + _POINTS[winners[1]][1]) / 2
        outcomes = {x: x_points, y: 1.0 - x_points}
        named = item.weak == x and item.strong == y
        label = label_for(outcomes[x], outcomes[y], OutcomeOptions()) if named else None
        detail: dict[str, Any] = {
            "orders": [[x, y], [y, x]],
            "verdicts": winners,
            "consistent": _POINTS[winners[0]][0] == _POINTS[winners[1]][1],
            "replies": list(replies),
        }
        return Verdict(label=label, outcomes=outcomes, detail=detail)
