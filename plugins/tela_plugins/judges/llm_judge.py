"""``llm-judge``: a judge model rates each model's answer 1..5, the seed's scale; the weak one's is the label.

This is how RouteLLM labelled its "GPT-4 judge" data: the judge model scored the weak model's
answer, given the strong model's answer as a reference. By default (``rate: all``) every model's
answer is rated, so the records carry each model's outcome, which ``tela run``, ``eval`` and ``zoo``
read as they are; ``rate: weak`` asks one call per prompt and gives the label alone. The prompt
follows the single-answer grading templates of MT-Bench's LLM-as-a-judge that RouteLLM's repository runs
(``single-v1``, and ``single-math-v1`` with a reference; see the ``judge`` and ``user_prompt``
fields of ``benchmarks/mt-bench/gpt-4_single.jsonl`` in lm-sys/RouteLLM): instructions, the
question, the reference answer and the assistant's answer between start/end markers, and the
rating written in double brackets. tela rates on the seed's 1..5 scale instead of 1..10, with the
seed's score criteria spelled out, so the judge's ``[[k]]`` is the record's label as is.

Parsing: the reply must contain ``[[k]]`` with k an integer 1..5, once (or repeated with the
same k). No ``[[k]]``, two different ones, or a k off the scale raise :class:`JudgeOutputError`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Judge, JudgeItem, JudgeOutputError, JudgeRequest, TelaError, Verdict

from .common import answer_of, bracketed, conversation_before

__all__ = [
    "LLMJudge",
    "LLMJudgeOptions",
    "SYSTEM_PROMPT",
    "SYSTEM_PROMPT_WITH_REFERENCE",
    "parse_rating",
    "user_message",
]

_SCALE = """Rate on this 1 to 5 scale:
5: excellent: correct, complete and helpful; an expert would hardly do better.
4: good: correct and helpful, with minor omissions.
3: adequate: answers the question, with gaps in detail, depth or accuracy.
2: poor: a significant error or omission, or mostly unhelpful.
1: wrong, irrelevant, or a refusal without reason."""

#: The judge's instructions without a reference answer.
SYSTEM_PROMPT = f"""You are an impartial judge of the answer an AI assistant gave to a user's question. Consider the answer's helpfulness, relevance, accuracy, depth and level of detail. Begin with a short, objective explanation of your judgement. Then give your rating of the answer in double square brackets, exactly once, in the form "Rating: [[3]]".

{_SCALE}"""

#: The judge's instructions with a reference answer.
SYSTEM_PROMPT_WITH_REFERENCE = f"""You are an impartial judge of the answer an AI assistant gave to a user's question. You are also shown a reference answer. Consider correctness first, then helpfulness. Begin by comparing the assistant's answer with the reference answer; point out any mistakes, in a short and objective explanation. An answer that reaches the reference's conclusion in other words is correct. Then give your rating of the assistant's answer in double square brackets, exactly once, in the form "Rating: [[3]]".

{_SCALE}"""


class LLMJudgeOptions(BaseModel):
    """Options of the ``llm-judge`` judge."""

    model_config = ConfigDict(extra="forbid")

    use_reference: bool = Field(
        True,
        description="show the judge a reference answer: the item's reference answer when the data has one, "
        "else the strong model's answer (as RouteLLM's GPT-4-judge labels did)",
    )
    rate: Literal["weak", "all"] = Field(
        "all",
        description="all | weak: rate every model's answer (one call per model), so the records carry every "
        "model's outcome, which tela run's families, tela eval and tela zoo need; or the weak model's answer "
        "only (one judge call per prompt), enough for the score-token router and target=label",
    )
    system_prompt: str | None = Field(
        None,
        description="replace the judge's instructions (its system message); they must ask for the rating "
        "as [[k]] with k in 1..5",
    )
    max_tokens: int | None = Field(
        512, ge=1, description="cap on the judge's reply in tokens (room for its explanation before the rating)"
    )


def parse_rating(reply: str) -> int:
    """The 1..5 rating in a judge's reply (``[[k]]``); :class:`JudgeOutputError` if there is not
    exactly one (a rating repeated with the same k counts once)."""
    return int(bracketed(reply, r"[-+]?\d+(?:\.\d+)?", "rating", ["1", "2", "3", "4", "5"]))


def user_message(item: JudgeItem, answer: str, reference: str | None) -> str:
    """The user message the judge gets: earlier turns, the question, the reference, the answer."""
    parts = []
    earlier = conversation_before(item)
    if earlier:
        parts.append(f"[Conversation before the question]\n{earlier}")
    parts.append(f"[Question]\n{item.prompt}")
    if reference is not None:
        parts.append(f"[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]")
    parts.append(f"[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")
    return "\n\n".join(parts)


class LLMJudge(Judge):
    """A judge model rates each model's answer (or the weak one's, ``rate: weak``) 1..5 ([[k]]),
    optionally against a reference."""

    name = "llm-judge"
    Options = LLMJudgeOptions
    options: LLMJudgeOptions
    needs_upstream = True
    needs_reference = False
    #: rates each answer on its own: tela judge takes one model's answers alone
    rates_alone = True

    def _weak(self, item: JudgeItem) -> str | None:
        if item.weak is not None:
            return item.weak
        return next(iter(item.answers)) if len(item.answers) == 1 else None

    def _plan(self, item: JudgeItem) -> list[tuple[str, str | None, str | None]]:
        """(model rated, reference text, where the reference came from) per judge call."""
        weak = self._weak(item)
        if self.options.rate == "weak":
            if weak is None:
                raise TelaError(
                    f"judge 'llm-judge': item {item.id!r} has answers from {', '.join(item.answers)} but no weak model "
                    "named; name the pair, or rate every answer with --set judge.rate=all"
                )
            models = [weak]
        else:
            models = [m for m, a in item.answers.items() if a is not None]
        plan = []
        for model in models:
            answer_of(item, model, self.name)
            ref: str | None = None
            source: str | None = None
            if self.options.use_reference:
                if item.reference is not None:
                    ref, source = item.reference, "reference"
                elif item.strong is not None and model != item.strong and item.answers.get(item.strong) is not None:
                    ref, source = item.answers[item.strong], item.strong
            plan.append((model, ref, source))
        return plan

    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        out = []
        for model, ref, _ in self._plan(item):
            system = self.options.system_prompt or (SYSTEM_PROMPT_WITH_REFERENCE if ref is not None else SYSTEM_PROMPT)
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": user_message(item, item.answers[model], ref)},
            ]
            out.append(JudgeRequest(messages=messages, max_tokens=self.options.max_tokens))
        return out

    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        plan = self._plan(item)
        if len(replies) != len(plan):
            raise ValueError(f"llm-judge: {len(plan)} judge calls for item {item.id!r}, {len(replies)} replies")
        ratings: dict[str, int] = {}
        for i, ((model, _, _), reply) in enumerate(zip(plan, replies)):
            try:
                ratings[model] = parse_rating(reply)
            except JudgeOutputError as e:
                e.index = i
                raise
        weak = self._weak(item)
        detail: dict[str, Any] = {
            "ratings": ratings,
            "reference_from": {model: source for model, _, source in plan},
            "replies": list(replies),
        }
        return Verdict(
            label=ratings.get(weak) if weak is not None else None,
            outcomes={model: (k - 1) / 4 for model, k in ratings.items()},
            detail=detail,
        )
