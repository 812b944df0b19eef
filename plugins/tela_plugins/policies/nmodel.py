"""N-model router policies: choose among every model from each one's predicted quality and cost.

A family that predicts every model's quality (``Scores.quality``, columns ``Scores.models``) on a
prompt lets a policy weigh quality against price. Each policy needs each model's cost per request
(``costs``: mean $ per request per model; ``tela run`` stores them from the training records' costs,
a caller may pass others as policy options) and has one *request knob*, the value
``Router.decide(prompts, threshold=VALUE)`` and the model name ``router-NAME-VALUE`` set:

- ``cost-aware`` (knob ``lam``): ``argmax_m quality[m] − λ · cost[m] / mean cost`` (costs over their
  mean across the models, as ``tela eval --all-models`` sweeps it); λ = 0 is the best predicted
  quality whatever it costs, a large λ the cheapest model.
- ``budget`` (knob ``budget``, $ per 1,000 requests): the cost-aware rule at the λ whose mean cost on
  calibration prompts meets the budget (:meth:`BudgetPolicy.calibrate`; ``tela run`` and ``tela
  calibrate --budget`` set it). The λ→cost curve of those prompts is kept, so a per-request budget
  is met without them.
- ``quality-floor`` (knob ``q``): the cheapest model predicted to reach quality q, else the model
  with the best predicted quality (without costs, "cheapest" is the models' order, cheap -> strong).

Ties go to the cheaper model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tela_core import Policy, Scores, TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "NModelPolicy",
    "CostAwarePolicy",
    "BudgetPolicy",
    "QualityFloorPolicy",
    "cost_aware_choice",
    "budget_lambda",
    "lambda_curve",
]

#: λ values a budget policy's curve is measured at: 0, 80 log-spaced values from 1e-3 to 100.
CURVE_LAMBDAS: tuple[float, ...] = (0.0, *(10 ** (-3 + 5 * i / 79) for i in range(80)))


class _CostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    costs: dict[str, float] | None = None
    """Each model's mean cost per request in $ (``tela run`` stores it from the training records)."""

    @field_validator("costs")
    @classmethod
    def _finite(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            bad = {m: c for m, c in v.items() if not (math.isfinite(c) and c >= 0)}
            if bad:
                raise ValueError(f"costs must be finite and >= 0, got {bad}")
        return v


def cost_aware_choice(quality: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    """Column index of ``argmax quality − lam · cost / mean(cost)`` per row, ties to the cheaper
    model. ``quality``: (n, M); ``cost``: (M,) cost per request of each model."""
    import numpy as np

    order = np.argsort(cost, kind="stable")  # argmax takes the first of a tie: the cheapest
    scale = float(cost.mean()) or 1.0
    util = quality[:, order] - lam * cost[order] / scale
    return order[np.argmax(util, axis=1)]


def lambda_curve(quality: np.ndarray, cost: np.ndarray, lambdas: Sequence[float] = CURVE_LAMBDAS) -> list[list[float]]:
    """``[[λ, mean cost per 1,000 requests], ...]`` of the cost-aware rule on ``quality``."""
    return [[float(lam), float(1000 * cost[cost_aware_choice(quality, cost, lam)].mean())] for lam in lambdas]


def budget_lambda(quality: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """The smallest λ whose mean cost per 1,000 requests on ``quality`` is at most ``budget``
    (each prompt's chosen cost only falls as λ grows, so the mean does too: bisection). A budget
    below the cheapest model's cost gives the λ that sends every prompt to the cheapest model."""

    def spend(lam: float) -> float:
        return float(1000 * cost[cost_aware_choice(quality, cost, lam)].mean())

    if spend(0.0) <= budget:
        return 0.0
    hi = 1.0
    while spend(hi) > budget and hi < 1e9:
        hi *= 4.0
    lo = 0.0 if hi <= 1.0 else hi / 4.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if spend(mid) <= budget:
            hi = mid
        else:
            lo = mid
    return float(hi)


class NModelPolicy(Policy):
    """What the N-model policies share: the costs, the request knob and reading ``Scores.quality``."""

    #: the option a request sets (``Router.decide(prompts, threshold=VALUE)``, ``router-NAME-VALUE``)
    knob: ClassVar[str] = ""
    #: what the knob is, for errors and help
    knob_help: ClassVar[str] = ""
    #: N-model policies choose from ``Scores.quality``; :class:`~tela_core.routing.router.Router` checks it
    needs_quality: ClassVar[bool] = True

    def check_knob(self, value: float) -> float:
        """``value`` as this policy's knob, or a :class:`TelaError` saying what it must be."""
        raise NotImplementedError

    def at(self, value: float) -> NModelPolicy:
        """A copy of this policy with its request knob set to ``value`` (validated)."""
        v = self.check_knob(float(value))
        return type(self)(self.options.model_copy(update={self.knob: v}))

    @property
    def knob_value(self) -> float | None:
        value = getattr(self.options, self.knob, None)
        return None if value is None else float(value)

    def cost_vector(self, models: Sequence[str]) -> np.ndarray:
        """Each of ``models``' cost per request, in their order."""
        import numpy as np

        costs = self.options.costs  # type: ignore[attr-defined]
        missing = [m for m in models if costs is None or m not in costs]
        if missing:
            raise TelaError(
                f"policy {self.name!r} needs each model's cost per request; "
                + ("no costs are set" if costs is None else f"none for {', '.join(missing)}")
                + " (tela run stores them from the training records' costs; set them with "
                "--set 'policy.costs={model: dollars per request, ...}')"
            )
        return np.array([float(costs[m]) for m in models], dtype=float)

    def quality_matrix(self, scores: Scores, models: Sequence[str]) -> np.ndarray:
        """``scores.quality``'s columns in the order of ``models``."""
        import numpy as np

        if scores.quality is None:
            raise TelaError(
                f"policy {self.name!r} chooses by each model's predicted quality, and this router's family predicts "
                "none: use a family that does (embedding-knn, matrix-factorization) or a two-model policy "
                "(threshold, calibrated)"
            )
        q = np.asarray(scores.quality, dtype=float)
        cols = list(scores.models or models)
        missing = [m for m in models if m not in cols]
        if missing or q.ndim != 2 or q.shape[1] != len(cols):
            raise TelaError(
                f"policy {self.name!r}: the family predicts quality for {', '.join(cols)}, not for "
                f"{', '.join(missing) or 'the policy models'}"
            )
        q = q[:, [cols.index(m) for m in models]]
        if np.isnan(q).any():
            raise TelaError("the scorer returned NaN quality for some prompts")
        return q

    def choose_index(self, quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Column of ``quality`` chosen per row."""
        raise NotImplementedError

    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        if len(models) < 2:
            raise TelaError(f"policy {self.name!r} needs at least two models, got {len(models)}")
        q = self.quality_matrix(scores, models)
        idx = self.choose_index(q, self.cost_vector(models))
        return [models[int(i)] for i in idx]


def _check_lam(value: float) -> float:
    if not (value >= 0 and math.isfinite(value)):
        raise TelaError(f"lam (the cost weight λ of policy 'cost-aware') must be a number >= 0, got {value}")
    return value


class CostAwareOptions(_CostOptions):
    lam: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    """λ: the quality one mean cost per request is worth; 0 = best predicted quality whatever it costs."""


class CostAwarePolicy(NModelPolicy):
    """``argmax_m quality[m] − λ · cost[m] / mean cost`` over N models."""

    name = "cost-aware"
    description = "N models: argmax predicted quality - lam * cost / mean cost (knob lam >= 0)"
    Options = CostAwareOptions
    knob = "lam"
    knob_help = "λ >= 0, the weight of cost"

    def check_knob(self, value: float) -> float:
        return _check_lam(value)

    def choose_index(self, quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
        return cost_aware_choice(quality, cost, float(self.options.lam))


class BudgetOptions(_CostOptions):
    budget: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    """Mean spend to meet, in $ per 1,000 requests."""
    lam: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    """The λ that meets ``lam_budget`` on the calibration prompts (set by calibration); None until then."""
    lam_budget: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    """The budget ``lam`` was calibrated for; another ``budget`` reads its λ off ``curve``."""
    curve: list[list[float]] | None = None
    """[[λ, $ per 1,000 requests], ...] on the calibration prompts: how a request's budget finds its λ."""
    calibration_prompts: int | None = Field(None, ge=1)
    """How many prompts λ was calibrated on."""
    calibration_data: str | None = None
    """The prompts λ was calibrated on."""
    achieved_cost: float | None = Field(None, ge=0.0)
    """$ per 1,000 requests λ gives on the calibration prompts."""


class BudgetPolicy(NModelPolicy):
    """The cost-aware rule at the λ whose mean cost on calibration prompts meets a budget."""

    name = "budget"
    description = "N models: cost-aware at the lam that meets a budget in $ per 1,000 requests (knob budget > 0)"
    Options = BudgetOptions
    knob = "budget"
    knob_help = "$ per 1,000 requests > 0"

    def check_knob(self, value: float) -> float:
        if not (value > 0 and math.isfinite(value)):
            raise TelaError(f"budget (policy 'budget', $ per 1,000 requests) must be a number > 0, got {value}")
        return value

    def at(self, value: float) -> NModelPolicy:
        """This policy at a request's budget: λ read off the calibration curve."""
        v = self.check_knob(float(value))
        return type(self)(self.options.model_copy(update={"budget": v, "lam": self.lam_for(v), "lam_budget": v}))

    def lam_for(self, budget: float) -> float:
        """The λ for ``budget``: the calibrated one at the budget it was calibrated for (or a λ set by
        hand, without a curve, at the policy's own budget only), else the smallest λ of the
        calibration curve within it (the largest λ when none is)."""
        o = self.options
        if o.lam is not None and o.lam_budget is not None and math.isclose(budget, o.lam_budget):
            return float(o.lam)
        if not o.curve:
            if o.lam is not None and math.isclose(budget, o.budget):  # a λ set by hand, for its own budget
                return float(o.lam)
            if o.lam is not None:  # no curve to read another budget's λ off: never a silent other spend
                raise TelaError(
                    f"policy 'budget' has lam set by hand and no calibration curve, so it cannot route at a "
                    f"budget of {budget:g} $ per 1,000 requests (only its own, {o.budget:g}); run "
                    f"`tela calibrate --router DIR --data FILE --budget {o.budget:g}` to keep the curve"
                )
            raise TelaError(
                "policy 'budget' is not calibrated yet; run "
                f"`tela calibrate --router DIR --data FILE --budget {budget:g}`"
            )
        within = [lam for lam, cost in o.curve if cost <= budget + 1e-12]
        return float(min(within)) if within else float(max(lam for lam, _ in o.curve))

    def calibrate(self, quality: np.ndarray, models: Sequence[str], data: str | None = None) -> BudgetPolicy:
        """A copy with λ set so that the mean cost on the calibration prompts' predicted ``quality``
        ((n, M), columns ``models``) meets ``budget``, and the λ → cost curve kept."""
        import numpy as np

        q = np.asarray(quality, dtype=float)
        if q.ndim != 2 or len(q) == 0:
            raise TelaError("budget calibration needs at least one prompt's predicted quality")
        cost = self.cost_vector(models)
        lam = budget_lambda(q, cost, float(self.options.budget))
        spent = float(1000 * cost[cost_aware_choice(q, cost, lam)].mean())
        opts = self.options.model_copy(
            update={
                "lam": lam,
                "lam_budget": float(self.options.budget),
                "curve": lambda_curve(q, cost),
                "calibration_prompts": int(len(q)),
                "calibration_data": data,
                "achieved_cost": spent,
            }
        )
        return type(self)(opts)

    def choose_index(self, quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
        return cost_aware_choice(quality, cost, self.lam_for(float(self.options.budget)))


class QualityFloorOptions(_CostOptions):
    q: float = Field(0.7, ge=0.0, le=1.0)
    """The quality a model must be predicted to reach, in [0, 1]."""


class QualityFloorPolicy(NModelPolicy):
    """The cheapest model predicted to reach quality ``q``; none does: the best predicted."""

    name = "quality-floor"
    description = "N models: the cheapest model predicted to reach quality q, else the best (knob q in [0, 1])"
    Options = QualityFloorOptions
    knob = "q"
    knob_help = "a quality in [0, 1]"

    def cost_vector(self, models: Sequence[str]) -> np.ndarray:
        """The models' costs; without any, their rank in the list (cheap -> strong)."""
        import numpy as np

        if self.options.costs is None:
            return np.arange(len(models), dtype=float)
        return super().cost_vector(models)

    def check_knob(self, value: float) -> float:
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise TelaError(f"q (the quality floor of policy 'quality-floor') must be in [0, 1], got {value}")
        return value

    def choose_index(self, quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
        import numpy as np

        order = np.argsort(cost, kind="stable")
        q = quality[:, order]
        ok = q >= float(self.options.q)
        first_ok = np.argmax(ok, axis=1)  # the cheapest model that reaches the floor
        best = np.argmax(q, axis=1)  # ties: the cheaper one
        return order[np.where(ok.any(axis=1), first_ok, best)]
