"""``reference``: grade each model's answer against the item's reference answer, by rule.

No judge model is called. Each model's answer is right (1.0) or wrong (0.0), by one of four
graders (see :mod:`.graders` for what each one reads from an answer):

- ``choice``: the MMLU-style letter the answer picks equals the reference letter.
- ``number``: the answer's final number equals the reference's, by value.
- ``exact``: the normalised answer (or its final boxed / "Answer:" string) equals the reference.
- ``regex``: ``pattern`` matches the answer; ``{reference}`` in it stands for the reference, escaped.

The label comes from the weak and strong models' correctness the way outcome sources derive
theirs (:func:`tela_core.data.labels.label_for`): weak right 5, only strong right 1, both wrong 3.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tela_core import Judge, JudgeItem, JudgeRequest, TelaError, Verdict
from tela_core.data.labels import OutcomeOptions, label_for

from .graders import (
    Graded,
    RegexPatternError,
    compile_regex,
    escape_regex,
    extract_number,
    grade_choice,
    grade_exact,
    grade_number,
    grade_regex,
    normalize_text,
    reference_choice,
)

__all__ = ["ReferenceJudge", "ReferenceOptions"]


class ReferenceOptions(BaseModel):
    """Options of the ``reference`` judge."""

    model_config = ConfigDict(extra="forbid")

    grader: Literal["choice", "number", "exact", "regex"] = Field(
        "choice",
        description="choice | number | exact | regex: a choice letter (MMLU style), a final number "
        "(#### 42, commas and units dropped), the normalised string, or a regular expression that must match",
    )
    letters: str = Field(
        "ABCD",
        pattern=r"^[A-Z]+$",
        description="choice grader: the answer letters a question can have (ABCDEFGHIJ for MMLU-Pro)",
    )
    pattern: str | None = Field(
        None,
        description="regex grader: the pattern an answer must match (Python syntax less backreferences and "
        "lookaround, run in linear time by RE2; searched anywhere in the answer; (?i) for any case); {reference} in it "
        "stands for the item's reference answer, escaped",
    )

    @model_validator(mode="after")
    def _pattern(self) -> ReferenceOptions:
        if self.grader == "regex":
            if not self.pattern:
                raise ValueError("the regex grader needs a pattern (--set judge.pattern=...)")
            try:
                compile_regex(self.pattern.replace("{reference}", "x"))
            except RegexPatternError as e:
                raise ValueError(
                    str(e).replace(repr(self.pattern.replace("{reference}", "x")), repr(self.pattern), 1)
                ) from None
        return self


class ReferenceJudge(Judge):
    """Grades every answer against the item's reference answer (choice letter, number, exact, regex)."""

    name = "reference"
    Options = ReferenceOptions
    options: ReferenceOptions
    needs_upstream = False
    needs_reference = True
    #: rates each answer on its own: tela judge takes one model's answers alone
    rates_alone = True

    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        return []

    def _grade(self, answer: str, reference: str) -> Graded:
        grader = self.options.grader
        if grader == "choice":
            return grade_choice(answer, reference, self.options.letters)
        if grader == "number":
            return grade_number(answer, reference)
        if grader == "exact":
            return grade_exact(answer, reference)
        assert self.options.pattern is not None  # the options validator saw to it
        try:
            pattern = compile_regex(self.options.pattern.replace("{reference}", escape_regex(reference.strip())))
        except RegexPatternError as e:  # e.g. a reference so long the pattern outgrows RE2's memory
            raise TelaError(f"judge 'reference': {e}") from None
        return grade_regex(answer, pattern)

    def _check_reference(self, item: JudgeItem) -> str:
        ref = item.reference
        if ref is None or not ref.strip():
            raise TelaError(f"judge 'reference': item {item.id!r} has no reference answer to grade against")
        grader = self.options.grader
        if grader == "choice" and reference_choice(ref, self.options.letters) is None:
            raise TelaError(
                f"judge 'reference': item {item.id!r}'s reference {ref.strip()[:40]!r} names no choice letter "
                f"({self.options.letters}); set judge.letters, or use another grader"
            )
        if grader == "exact" and not normalize_text(ref, drop_articles=False):
            raise TelaError(
                f"judge 'reference': item {item.id!r}'s reference {ref.strip()[:40]!r} holds no words to compare "
                "(the exact grader ignores case and punctuation)"
            )
        if grader == "number" and extract_number(ref) is None:
            raise TelaError(f"judge 'reference': item {item.id!r}'s reference {ref.strip()[:40]!r} holds no number")
        return ref

    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        if replies:
            raise ValueError(f"reference: no judge calls for item {item.id!r}, got {len(replies)} replies")
        ref = self._check_reference(item)
        graded = {model: self._grade(answer or "", ref) for model, answer in item.answers.items()}
        outcomes = {model: 1.0 if g.correct else 0.0 for model, g in graded.items()}
        label = None
        if item.weak in outcomes and item.strong in outcomes:
            assert item.weak is not None and item.strong is not None
            label = label_for(outcomes[item.weak], outcomes[item.strong], OutcomeOptions())
        detail: dict[str, Any] = {
            "grader": self.options.grader,
            "extracted": {model: g.extracted for model, g in graded.items()},
        }
        if self.options.grader == "choice":
            detail["reference_read"] = reference_choice(ref, self.options.letters)
        elif self.options.grader == "number":
            detail["reference_read"] = extract_number(ref)
        return Verdict(label=label, outcomes=outcomes, detail=detail)
