"""Builtin plugin: the judges ``llm-judge``, ``reference`` and ``pairwise`` (``tela judge``).

- ``llm-judge`` (:mod:`.llm_judge`): a judge model rates the weak model's answer 1..5 (``[[k]]``).
- ``reference`` (:mod:`.reference`): rule-based graders against a reference answer (choice letter,
  number, exact string, regex); per-model correctness.
- ``pairwise`` (:mod:`.pairwise`): a judge model compares the two answers in both orders.

All three are pure: they build the judge model's requests and read its replies; ``tela judge``
makes the calls.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl

from .llm_judge import LLMJudge
from .pairwise import PairwiseJudge
from .reference import ReferenceJudge

__all__ = ["LLMJudge", "ReferenceJudge", "PairwiseJudge"]


@hookimpl
def tela_register_judges(register: Any) -> None:
    register(LLMJudge)
    register(ReferenceJudge)
    register(PairwiseJudge)
