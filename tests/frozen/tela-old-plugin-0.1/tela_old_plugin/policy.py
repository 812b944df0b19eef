"""``old-strong-if-above``: the strong model iff w >= threshold."""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Policy, Scores


class ThresholdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="strong iff w >= threshold")


class StrongIfAbove(Policy):
    """The strong model iff w >= threshold; the weak one otherwise."""

    name = "old-strong-if-above"
    Options = ThresholdOptions

    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        return [models[-1] if w >= self.options.threshold else models[0] for w in scores.w]
