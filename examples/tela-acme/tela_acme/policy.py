"""``acme-budget``: a hard cap on the share of traffic sent to the strong model, plus a floor on w.

``calibrated`` picks the threshold whose strong share is *closest* to a target, which may overshoot.
A budget is a ceiling: ``tela calibrate --policy acme-budget`` sets the lowest threshold whose
share of the calibration prompts is *at most* ``strong_share``, and never below ``min_w``, so
prompts the router thinks are easy are not sent to the strong model just because budget is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Policy, Scores, TelaError


class BudgetOptions(BaseModel):
    """Settings of ``acme-budget`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    strong_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description=(
            "Most share of the calibration prompts sent to the strong model, in [0, 1] (tela calibrate --strong-share)."
        ),
    )
    min_w: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Never send a prompt with w below this to the strong model, whatever the budget.",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        description="Strong iff w >= threshold; set by `tela calibrate --policy acme-budget` (or by hand).",
    )
    achieved_share: float | None = Field(
        None, description="Strong share the threshold gave on the calibration prompts (set by calibrate)."
    )
    calibration_prompts: int | None = Field(
        None, description="How many prompts the threshold was calibrated on (set by calibrate)."
    )


def budget_threshold(w: Sequence[float], max_share: float, min_w: float) -> float:
    """The lowest threshold t >= min_w with share(w >= t) <= max_share (ties never overshoot)."""
    import numpy as np

    s = np.sort(np.asarray(w, dtype=np.float64))[::-1]  # descending
    if s.size == 0:
        raise TelaError("acme-budget: no prompts to calibrate on")
    k = int(np.floor(max_share * s.size + 1e-9))  # most prompts allowed to go strong
    if k >= s.size:
        t = float(s[-1])
    else:
        above = s[:k][s[:k] > s[k]]  # prompts strictly above the first one that must stay weak
        t = float(above.min()) if above.size else float(np.nextafter(s[k], np.inf))
    return max(t, min_w)


class BudgetPolicy(Policy):
    """Strong iff w >= a threshold calibrated so at most strong_share of prompts go strong."""

    name = "acme-budget"
    description = (
        "at most strong_share of prompts to the strong model (calibrated ceiling), never below min_w (tela-acme)"
    )
    Options = BudgetOptions
    options: BudgetOptions

    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        t = self.options.threshold
        if t is None:
            raise TelaError(
                "policy 'acme-budget' has no threshold yet: run `tela calibrate --policy acme-budget "
                "--strong-share SHARE ...` or pass --set policy.threshold=T"
            )
        # No per-call state: the answer for a prompt depends on its w only, never on its batch.
        return [models[-1] if w >= t else models[0] for w in scores.w]

    def calibrate(self, w: Sequence[float], data: Any = None) -> BudgetPolicy:
        """A copy whose threshold keeps the strong share of ``w`` at or below the budget."""
        import numpy as np

        o = self.options
        t = budget_threshold(w, o.strong_share, o.min_w)
        share = float(np.mean(np.asarray(w, dtype=np.float64) >= t))
        return type(self)(o.model_copy(update={"threshold": t, "achieved_share": share, "calibration_prompts": len(w)}))
