"""A router among N models judged on outcome data: ``tela eval --all-models`` (and ``tela eval`` of
a router whose saved policy is an N-model one).

Every prompt of the data is scored for each model's predicted quality; :mod:`tela_core.eval.nmodel`
sweeps the cost-aware policy over them (hull, AIQ, best single model, oracle) and this module adds
where the router's *own* policy lands (:func:`policy_point`): the quality and cost of the models it
picks on the same prompts, beside the best single model, so a report says what the saved policy
(or ``--policy``/``--set policy.*``) delivers, not only what some λ could.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.components import Scores
    from tela_core.eval.nmodel import NModelEvaluation
    from tela_core.routing.router import Router

__all__ = ["routes_among_many", "evaluate_router_nmodel", "policy_point", "describe_point"]


def routes_among_many(router_dir: str | Path) -> bool:
    """Whether the router in ``router_dir`` is saved with an N-model policy (cost-aware, budget,
    quality-floor: a policy with a request knob other than the threshold)."""
    from tela_core.infra.errors import UnknownComponentError
    from tela_core.plugins.discovery import get_registry
    from tela_core.routing.artifact import read_policy

    name = read_policy(router_dir).get("name") or "threshold"
    try:
        return bool(getattr(get_registry().get("policy", str(name)), "knob", None))
    except UnknownComponentError:
        return False  # Router.load names the missing plugin


def policy_point(
    policy: Any, models: Sequence[str], pred: np.ndarray, cost: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    """Where an N-model ``policy`` lands on these prompts: the models it picks from ``pred``
    ((n, M) predicted quality, columns ``models``), their mean observed quality (``truth``) and mean
    cost per query (``cost``, the data's own per-prompt costs), and each model's share."""
    import numpy as np

    from tela_core.eval.nmodel import arena_score

    idx = np.asarray(policy.choose_index(pred, policy.cost_vector(models)), dtype=int)
    rows = np.arange(len(idx))
    quality, spent = float(truth[rows, idx].mean()), float(cost[rows, idx].mean())
    return {
        "name": policy.name,
        "knob": policy.knob,
        "value": policy.knob_value,
        "quality": quality,
        "cost": spent,
        "arena_score": arena_score(1000 * spent, quality),
        "share": {m: float((idx == j).mean()) for j, m in enumerate(models)},
    }


def evaluate_router_nmodel(
    router: Router, records: Sequence[Any], data: str | Path, scores: Scores | None = None
) -> tuple[NModelEvaluation, dict[str, Any] | None]:
    """(the cost-aware evaluation, the router's policy point or None) of ``router`` on ``records``
    (which need every judged model's outcome and cost; at least two of the router's models).
    ``scores``: the records' prompts already scored with each model's quality (e.g. through the
    score cache, :func:`tela_core.eval.score_cache.score_prompts` with ``quality=True``); None
    scores them here."""
    import numpy as np

    from tela_core.eval import nmodel

    prompts = [r.prompt for r in records]
    if scores is None:
        scores = router.scores(prompts, quality=True)
    if scores.quality is None:
        raise TelaError(
            f"{router.path}: scorer {router.manifest.get('scorer')!r} predicts no per-model quality; --all-models "
            "needs a family with predict_models (embedding-knn, matrix-factorization)"
        )
    cols = list(scores.models or getattr(router.scorer, "models", []) or [])
    order = cols  # the family's order; a router among N models: its own, cheap -> strong
    if len(router.models) > 2:
        order = [m for m in router.models if m in cols] + [m for m in cols if m not in router.models]
    have = [m for m in order if all(m in (r.outcomes or {}) and m in (r.costs or {}) for r in records)]
    if len(have) < 2:
        raise TelaError(
            f"{data}: needs outcomes and costs for at least two of the router's models "
            f"({', '.join(cols) or 'none'}); found {', '.join(have) or 'none'}"
            + ("; --weak-model and --strong-model judge its w on a pair instead" if len(router.models) > 2 else "")
        )
    pred = np.asarray(scores.quality, dtype=float)[:, [cols.index(m) for m in have]]
    truth = np.array([[r.outcomes[m] for m in have] for r in records], dtype=float)
    cost = np.array([[r.costs[m] for m in have] for r in records], dtype=float)
    result = nmodel.evaluate_nmodel(router.name, have, pred, cost, truth)
    point = None
    if getattr(router.policy, "knob", None):
        try:
            point = policy_point(router.policy, have, pred, cost, truth)
        except TelaError as e:  # e.g. a budget policy not calibrated, costs missing
            point = {"name": router.policy_spec.get("name"), "note": str(e)}
        else:
            best = result.singles[have.index(result.best_single)]
            point.update(
                best_single=result.best_single,
                quality_vs_best=point["quality"] - best[1],
                cost_vs_best=(point["cost"] / best[0]) if best[0] > 0 else None,
            )
        result.extra["policy"] = point
        result.extra["policy_line"] = describe_point(point)
    left = [m for m in order if m not in have]
    if left:  # a model some record lacks is out of every number of the report: say so
        result.extra["left_out"] = left
        note = (
            f"Left out: {', '.join(left)}, whose outcome or cost some records lack; every number here is among "
            f"the other {len(have)} models" + (", the router's policy choosing among them" if point else "") + "."
        )
        result.extra["policy_line"] = " ".join(x for x in (note, result.extra.get("policy_line")) if x)
    return result, point


def describe_point(point: dict[str, Any]) -> str:
    """One line for the report: the router's policy and where it lands."""
    if point.get("note"):
        return f"saved policy {point.get('name')}: {point['note']}"
    knob, value = point.get("knob"), point.get("value")
    what = f"${value:.4g} per 1,000 requests" if knob == "budget" else f"{knob} {value:.4g}"
    s = (
        f"The router's policy {point['name']} ({what}) reaches quality {point['quality']:.4f} at "
        f"{point['cost']:.3g} per query (${1000 * point['cost']:.4g} per 1,000)"
    )
    if point.get("best_single"):
        ratio = point.get("cost_vs_best")
        s += f": {point['quality_vs_best']:+.4f} against {point['best_single']}" + (
            f", at {ratio:.2f}× its cost" if ratio is not None else ""
        )
    if point.get("arena_score") is not None:
        s += f"; RouterArena score {100 * point['arena_score']:.2f}"
    return s + "."
