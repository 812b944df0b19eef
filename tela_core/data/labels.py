"""The outcome -> 1..5 label mapping every outcome source shares (RouteLLM CSVs, LLMRouter, Arena, ...).

Outcome data says, per prompt, how well each model did (0..1). The seed's router learns a 1..5
score that an expert would give the *weak* model's answer, so a training label is derived from the
weak and strong models' outcomes (docs/metrics.md):

=========================  ============================  =======
weak model                 strong model                  label
=========================  ============================  =======
right                      (any)                         ``label_weak_right`` (5)
wrong                      right                         ``label_only_strong_right`` (1)
wrong                      wrong                         ``label_both_wrong`` (3)
=========================  ============================  =======

"Right" means outcome >= ``right_threshold`` (0.5; outcomes are 0/1 in most data). A both-wrong
prompt gets a middle label: sending it to the strong model buys nothing. It lives in the core so
that every source plugin maps outcomes the same way without importing another plugin.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutcomeOptions", "label_for"]


class OutcomeOptions(BaseModel):
    """Options every outcome source has: which models form the weak/strong pair, and the labels."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    weak_model: str | None = None
    """The cheap model whose answer quality the label predicts (each source sets a default)."""
    strong_model: str | None = None
    """The strong model (each source sets a default)."""
    label_weak_right: int = Field(5, ge=1, le=5)
    """Label when the weak model is right."""
    label_only_strong_right: int = Field(1, ge=1, le=5)
    """Label when the weak model is wrong and the strong one right."""
    label_both_wrong: int = Field(3, ge=1, le=5)
    """Label when both are wrong."""
    right_threshold: float = Field(0.5, gt=0.0, le=1.0)
    """An outcome at or above this counts as right."""


def label_for(weak: float, strong: float, options: OutcomeOptions) -> int:
    """The 1..5 training label for a prompt with these weak/strong outcomes (see module doc)."""
    t = options.right_threshold
    if weak >= t:
        return options.label_weak_right
    if strong >= t:
        return options.label_only_strong_right
    return options.label_both_wrong
