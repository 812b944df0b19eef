"""Router policies: turn a scorer's output into a model choice.

Models are ordered weak/cheap first, strong/expensive last (``policy.json``'s ``models``).

- ``threshold``: strong iff ``w ≥ threshold`` (two models).
- ``calibrated``: the same rule, with the threshold chosen on a calibration set so that the share
  of its prompts sent to the strong model is as close to ``strong_share`` as the scores allow
  (:func:`calibrate_threshold`, ``tela calibrate``).
- ``tiers``: N models by bands of the expected score 1..5 (a high score means the cheap model's
  answer is expected to be good, so it stays on a cheap tier).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tela_core import Policy, Scores, TelaError, get_registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "ThresholdPolicy",
    "CalibratedPolicy",
    "TiersPolicy",
    "calibrate_threshold",
    "strong_share",
]


def _two(models: Sequence[str], policy: str) -> tuple[str, str]:
    if len(models) != 2:
        raise TelaError(
            f"policy {policy!r} routes between two models (weak, strong); got {len(models)}: {', '.join(models)}"
        )
    return models[0], models[1]


def _w(scores: Scores) -> np.ndarray:
    import numpy as np

    w = np.asarray(scores.w, dtype=float).reshape(-1)
    if np.isnan(w).any():
        raise TelaError("the scorer returned NaN for some prompts")
    return w


def calibrate_threshold(w: Sequence[float] | np.ndarray, share: float) -> float:
    """The threshold whose strong-call share on ``w`` (``mean(w ≥ t)``) is closest to ``share``.

    Only shares of the form ``mean(w ≥ v)``, ``v`` one of the distinct values of ``w``, (and 0)
    can be reached; with continuous scores that is every k/n, but a score-token router's ``w``
    often ties, and the ``1 − share`` quantile then lands on a tie that sends far more (or fewer)
    prompts to the strong model than a neighbouring threshold would. So every reachable share is
    considered and the closest one wins (the smaller share on a tie: cheaper). The threshold is
    placed midway in the gap of ``w`` values that gives that share, as far as possible from the
    calibration scores on both sides. A prompt with ``w = 1`` goes to the strong model under
    every threshold in [0, 1], so share 0 is reachable only when no ``w`` is 1.
    """
    import numpy as np

    if not 0 <= share <= 1:
        raise TelaError(f"strong-call share must be in [0, 1], got {share}")
    arr = np.asarray(w, dtype=float).reshape(-1)
    if arr.size == 0:
        raise TelaError("calibration needs at least one prompt")
    if np.isnan(arr).any():
        raise TelaError("calibration scores hold NaN values")
    arr = np.clip(arr, 0.0, 1.0)
    values, counts = np.unique(arr, return_counts=True)  # ascending
    at_or_above = np.cumsum(counts[::-1])[::-1] / arr.size  # share(t) for t in (values[j-1], values[j]]
    lower = np.concatenate([[0.0], values[:-1]])
    cands = [(float(s), float((lo + hi) / 2.0)) for s, lo, hi in zip(at_or_above, lower, values)]
    if values[-1] < 1.0:
        cands.append((0.0, float((values[-1] + 1.0) / 2.0)))
    best_share, best_t = min(cands, key=lambda c: (abs(c[0] - share), c[0]))
    return float(np.clip(best_t, 0.0, 1.0))


def strong_share(w: Sequence[float] | np.ndarray, threshold: float) -> float:
    """The share of ``w`` at or above ``threshold``."""
    import numpy as np

    return float((np.asarray(w, dtype=float) >= threshold).mean())


class ThresholdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Send a prompt to the strong model when its w (P(strong needed)) is at least this, in [0, 1]."""


class ThresholdPolicy(Policy):
    """Strong iff ``w ≥ threshold``."""

    name = "threshold"
    description = "strong model iff w >= threshold (t in [0, 1])"
    Options = ThresholdOptions

    @property
    def threshold(self) -> float:
        return float(self.options.threshold)

    def strong_mask(self, scores: Scores) -> np.ndarray:
        """True where the prompt goes to the strong model."""
        return _w(scores) >= self.threshold

    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        weak, strong = _two(models, self.name)
        return [strong if s else weak for s in self.strong_mask(scores)]


class CalibratedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    strong_share: float = Field(0.5, ge=0.0, le=1.0)
    """Target share of prompts sent to the strong model, in [0, 1]."""
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """The calibrated threshold (set by `tela calibrate`); None until calibrated."""
    calibration_prompts: int | None = Field(None, ge=1)
    """How many prompts the threshold was calibrated on."""
    calibration_data: str | None = None
    """The data the threshold was calibrated on."""
    achieved_share: float | None = Field(None, ge=0.0, le=1.0)
    """Strong-call share the threshold gives on the calibration prompts."""


class CalibratedPolicy(ThresholdPolicy):
    """Strong iff ``w ≥ t``, ``t`` the threshold whose share of strong calls on the calibration
    prompts is closest to ``strong_share`` (:func:`calibrate_threshold`)."""

    name = "calibrated"
    description = "threshold set for a target strong-call share on calibration prompts (tela calibrate)"
    Options = CalibratedOptions

    @property
    def threshold(self) -> float:
        if self.options.threshold is None:
            raise TelaError(
                "policy 'calibrated' has no threshold yet; run `tela calibrate --router DIR --data FILE "
                f"--strong-share {self.options.strong_share}`"
            )
        return float(self.options.threshold)

    def calibrate(self, w: Sequence[float] | np.ndarray, data: str | None = None) -> CalibratedPolicy:
        """A copy of this policy with its threshold set from calibration scores ``w``."""
        t = calibrate_threshold(w, self.options.strong_share)
        opts = self.options.model_copy(
            update={
                "threshold": t,
                "calibration_prompts": int(len(w)),
                "calibration_data": data,
                "achieved_share": strong_share(w, t),
            }
        )
        return type(self)(opts)


class TiersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    bounds: list[float] | None = None
    """N − 1 increasing cut points on the expected score (1..5). A prompt whose expected score is
    at least the highest cut goes to the cheapest model, below the lowest cut to the strongest.
    Default: N − 1 evenly spaced cuts in (1, 5)."""

    @model_validator(mode="after")
    def _increasing(self) -> TiersOptions:
        b = self.bounds
        if b is not None:
            if any(not 1.0 <= x <= 5.0 for x in b):
                raise ValueError(f"bounds must lie in [1, 5] (the score scale), got {b}")
            if any(b[i] >= b[i + 1] for i in range(len(b) - 1)):
                raise ValueError(f"bounds must be strictly increasing, got {b}")
        return self


class TiersPolicy(Policy):
    """N models ordered cheap → strong, chosen by bands of the expected score.

    Scorers without a score distribution are read through ``expected = 1 + 4·(1 − w)``.
    """

    name = "tiers"
    description = "N models (cheap -> strong) by bands of the expected score 1..5"
    Options = TiersOptions

    def bounds_for(self, n_models: int) -> list[float]:
        if n_models < 2:
            raise TelaError(f"policy 'tiers' needs at least two models, got {n_models}")
        b = self.options.bounds
        if b is None:
            return [1.0 + 4.0 * i / n_models for i in range(1, n_models)]
        if len(b) != n_models - 1:
            raise TelaError(f"policy 'tiers': {n_models} models need {n_models - 1} bounds, got {len(b)}: {b}")
        return list(b)

    def tier_index(self, scores: Scores, n_models: int) -> np.ndarray:
        """Index into the cheap → strong model list for each prompt."""
        import numpy as np

        e = scores.expected
        if e is None:
            e = 1.0 + 4.0 * (1.0 - _w(scores))
        e = np.asarray(e, dtype=float)
        above = np.searchsorted(np.asarray(self.bounds_for(n_models)), e, side="right")  # cuts <= e
        return (n_models - 1) - above

    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        idx = self.tier_index(scores, len(models))
        return [models[int(i)] for i in idx]


def make_policy(spec: dict[str, Any]) -> Policy:
    """A policy instance from a ``policy.json`` dict (``name``, ``options``)."""
    return get_registry().create("policy", spec.get("name", "threshold"), spec.get("options") or {})
