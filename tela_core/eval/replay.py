"""Replaying a router's scores against real outcomes: its curve and metrics, and the two
baselines every report shows.

- :func:`evaluate_scores` replays one router's ``w`` against per-prompt weak/strong outcomes (and
  costs) and returns an :class:`Evaluation` (:mod:`tela_core.eval.metrics` definitions).
- :func:`random_baseline` (mean over numpy ``default_rng`` seeds 0..9) and :func:`oracle_scores`
  (``w = strong − weak``) are the baselines; :func:`baselines` evaluates both on outcome data, with
  its costs, for every report that shows them (``tela eval``, ``tela zoo``, :func:`evaluate`).
- :func:`evaluate` does the same from an ``(n, m)`` outcome matrix and model names.
- :func:`policy_point` is where a concrete policy's decisions land on the same axes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from tela_core.eval import metrics
from tela_core.infra.errors import TelaError

from .outcomes import OutcomeArrays

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "RANDOM_SEEDS",
    "Evaluation",
    "evaluate_scores",
    "evaluate",
    "random_baseline",
    "oracle_scores",
    "Baselines",
    "baselines",
    "random_scores",
    "policy_point",
]

#: seeds of the random baseline (numpy ``default_rng(seed).random(n)``), as docs/metrics.md says
RANDOM_SEEDS: tuple[int, ...] = tuple(range(10))


@dataclass
class Evaluation:
    """One router's replayed curve and metrics (definitions: :mod:`tela_core.eval.metrics`).

    ``p``/``quality``/``pgr_grid`` are on the grid 0, 0.1, …, 1; the ``*_fine`` lists on
    0, 0.01, …, 1. ``cost`` is the mean cost per query at each ``p`` when prices are known.
    For the random baseline every number is the mean over ``seeds`` runs.
    """

    name: str
    n: int
    q_weak: float
    q_strong: float
    apgr: float
    cpt50: float
    cpt80: float
    auc: float
    p: list[float]
    quality: list[float]
    pgr_grid: list[float]
    p_fine: list[float] = field(default_factory=list)
    quality_fine: list[float] = field(default_factory=list)
    cost: list[float] | None = None
    cost_fine: list[float] | None = None
    seeds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cost_curve(w: np.ndarray, weak_cost: np.ndarray, strong_cost: np.ndarray, steps: int) -> list[float]:
    import numpy as np

    order = metrics.routing_order(w)
    cum = np.concatenate([[0.0], np.cumsum((strong_cost - weak_cost)[order])])
    ks = metrics.strong_counts(len(w), steps)
    return [float((weak_cost.sum() + cum[k]) / len(w)) for k in ks]


def evaluate_scores(
    w: np.ndarray,
    weak: np.ndarray,
    strong: np.ndarray,
    *,
    weak_cost: np.ndarray | None = None,
    strong_cost: np.ndarray | None = None,
    name: str = "router",
) -> Evaluation:
    """Replay router scores ``w`` (larger: send to strong) against weak/strong outcomes."""
    import numpy as np

    c = metrics.curve(w, weak, strong)
    ev = Evaluation(
        name=name,
        n=c.n,
        q_weak=c.q_weak,
        q_strong=c.q_strong,
        apgr=c.apgr,
        cpt50=c.cpt50,
        cpt80=c.cpt80,
        auc=c.auc,
        p=c.p,
        quality=c.quality,
        pgr_grid=c.pgr,
        p_fine=c.p_fine,
        quality_fine=c.quality_fine,
    )
    if weak_cost is not None and strong_cost is not None:
        wc, sc = np.asarray(weak_cost, dtype=float), np.asarray(strong_cost, dtype=float)
        ev.cost = _cost_curve(np.asarray(w, dtype=float), wc, sc, metrics.APGR_GRID_STEPS)
        ev.cost_fine = _cost_curve(np.asarray(w, dtype=float), wc, sc, metrics.CPT_GRID_STEPS)
    return ev


def oracle_scores(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """The oracle's ``w``: strong − weak outcome (ties broken stably by the metrics)."""
    import numpy as np

    return np.asarray(strong, dtype=float) - np.asarray(weak, dtype=float)


def random_scores(n: int, seed: int) -> np.ndarray:
    """A random router's ``w`` for ``n`` prompts: ``numpy.random.default_rng(seed).random(n)``."""
    import numpy as np

    return np.random.default_rng(seed).random(n)


def random_baseline(
    weak: np.ndarray,
    strong: np.ndarray,
    *,
    seeds: Iterable[int] = RANDOM_SEEDS,
    weak_cost: np.ndarray | None = None,
    strong_cost: np.ndarray | None = None,
    name: str = "random",
) -> Evaluation:
    """The random router: every number (metrics and curves) is the mean over ``seeds``."""
    import numpy as np

    seeds = list(seeds)
    if not seeds:
        raise TelaError("the random baseline needs at least one seed")
    runs = [
        evaluate_scores(random_scores(len(weak), s), weak, strong, weak_cost=weak_cost, strong_cost=strong_cost)
        for s in seeds
    ]

    def mean(attr: str) -> Any:
        vals = [getattr(r, attr) for r in runs]
        if vals[0] is None:
            return None
        if isinstance(vals[0], list):
            return [float(x) for x in np.mean(np.asarray(vals, dtype=float), axis=0)]
        return float(np.mean(vals))

    first = runs[0]
    return Evaluation(
        name=name,
        n=first.n,
        q_weak=first.q_weak,
        q_strong=first.q_strong,
        apgr=mean("apgr"),
        cpt50=mean("cpt50"),
        cpt80=mean("cpt80"),
        auc=mean("auc"),
        p=first.p,
        quality=mean("quality"),
        pgr_grid=mean("pgr_grid"),
        p_fine=first.p_fine,
        quality_fine=mean("quality_fine"),
        cost=mean("cost"),
        cost_fine=mean("cost_fine"),
        seeds=len(seeds),
    )


class Baselines(NamedTuple):
    """The two baselines every report shows beside a router."""

    random: Evaluation
    oracle: Evaluation


def baselines(data: OutcomeArrays) -> Baselines:
    """The random and oracle baselines of ``data``, with cost curves when ``data`` has costs.

    The one place ``tela eval``, ``tela zoo`` and :func:`evaluate` get them, so every report judges
    a router against the same two numbers."""
    wc, sc = data.weak_cost, data.strong_cost
    oracle_w = oracle_scores(data.weak, data.strong)
    return Baselines(
        random=random_baseline(data.weak, data.strong, weak_cost=wc, strong_cost=sc),
        oracle=evaluate_scores(oracle_w, data.weak, data.strong, weak_cost=wc, strong_cost=sc, name="oracle"),
    )


def evaluate(
    w: np.ndarray,
    outcomes: np.ndarray,
    models: Sequence[str],
    *,
    weak: str | None = None,
    strong: str | None = None,
    costs: np.ndarray | None = None,
    name: str = "router",
) -> dict[str, Any]:
    """Evaluate ``w`` from an ``(n, m)`` outcome matrix whose columns are ``models``.

    ``weak``/``strong`` default to the first and last model; ``costs`` is an optional ``(n, m)``
    cost matrix. Returns ``{"router": …, "random": …, "oracle": …}``, each an evaluation dict.
    """
    import numpy as np

    outcomes = np.asarray(outcomes, dtype=float)
    models = list(models)
    if outcomes.ndim != 2 or outcomes.shape[1] != len(models):
        raise TelaError(f"outcomes must be (n, {len(models)}) for models {models}, got shape {outcomes.shape}")
    weak = weak or models[0]
    strong = strong or models[-1]
    for m in (weak, strong):
        if m not in models:
            raise TelaError(f"model {m!r} is not among {', '.join(models)}")
    wi, si = models.index(weak), models.index(strong)
    wo, so = outcomes[:, wi], outcomes[:, si]
    wc = sc = None
    if costs is not None:
        costs = np.asarray(costs, dtype=float)
        if costs.shape != outcomes.shape:
            raise TelaError(f"costs must have the outcomes' shape {outcomes.shape}, got {costs.shape}")
        wc, sc = costs[:, wi], costs[:, si]
    base = baselines(OutcomeArrays(weak, strong, wo, so, wc, sc))
    return {
        "router": evaluate_scores(w, wo, so, weak_cost=wc, strong_cost=sc, name=name).to_dict(),
        "random": base.random.to_dict(),
        "oracle": base.oracle.to_dict(),
    }


def policy_point(strong_chosen: np.ndarray, data: OutcomeArrays) -> dict[str, Any]:
    """Where a concrete policy's decisions land: strong-call share, quality, PGR and cost per query."""
    import numpy as np

    chosen = np.asarray(strong_chosen, dtype=bool)
    q = np.where(chosen, data.strong, data.weak)
    gap = float(data.strong.mean() - data.weak.mean())
    point: dict[str, Any] = {
        "strong_share": float(chosen.mean()),
        "quality": float(q.mean()),
        "pgr": float((q.mean() - data.weak.mean()) / gap) if abs(gap) > 1e-12 else None,
    }
    if data.weak_cost is not None and data.strong_cost is not None:
        point["cost"] = float(np.where(chosen, data.strong_cost, data.weak_cost).mean())
    return point
