"""Should a candidate router replace the current one? The comparison behind ``tela promote``.

Both routers score the same labelled prompts, which neither trained on (checked against the
training-prompt sketch each router's ``tela.json`` keeps: :mod:`tela_core.data.fingerprint`). The
candidate is promoted when

1. its APGR is better than the current router's beyond the paired bootstrap interval (the
   interval of APGR(candidate) − APGR(current) lies above 0: :mod:`tela_core.eval.bootstrap`), or
2. the two are equal within the interval (it holds 0) and the candidate is cheaper at its saved
   policy: a lower mean cost per prompt where the data has every chosen model's cost, else a lower
   strong-call share (the share of prompts sent to the strongest model).

Otherwise it is refused, and the refusal names the number that failed and by how much.

Routers among more than two models are compared the same way on the N-model score instead of
APGR: AIQ, the mean height of the quality-cost hull of the cost-aware policy over the single models'
cost range (:mod:`tela_core.eval.nmodel`), from each router's per-model predicted quality; the
records then need every model's outcome and cost, and "cheaper" is the mean cost per prompt of the
models each router's own saved policy picks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tela_core.data.fingerprint import SKETCH_KEY, overlap
from tela_core.infra.errors import TelaError

from .bootstrap import PairedInterval, paired_apgr
from .outcomes import outcome_arrays

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.data.records import Record
    from tela_core.routing.router import Router

__all__ = ["Operating", "Comparison", "compare", "check_not_trained_on", "PROMOTE", "REFUSE"]

PROMOTE, REFUSE = "promote", "refuse"


@dataclass(frozen=True)
class Operating:
    """A router at its saved policy on the evaluation prompts: the share sent to the strongest
    model, and the mean cost per prompt of the models chosen (None where a cost is missing)."""

    strong_share: float
    cost: float | None


@dataclass(frozen=True)
class Comparison:
    """Candidate against current on the same prompts, and the decision."""

    n: int
    weak: str
    strong: str
    interval: PairedInterval  # of the score: a = candidate, b = current
    candidate: Operating
    current: Operating
    decision: str  # PROMOTE or REFUSE
    why: str
    #: the number that failed (the score, ``cost`` or ``strong_share``) and by how much; None when promoted
    failed: dict[str, Any] | None
    #: the score compared: ``apgr`` (two models) or ``aiq`` (N models)
    metric: str = "apgr"

    @property
    def apgr(self) -> PairedInterval:
        """The interval of the score (APGR for two-model routers)."""
        return self.interval

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.to_dict()
        return out


def check_not_trained_on(what: str, manifest: Mapping[str, Any], prompts: Sequence[str]) -> dict[str, Any]:
    """Refuse (a :class:`TelaError`) when any of ``prompts`` is one the router trained on, per its
    manifest's sketch; what was checked otherwise (``{"checked": prompts checked, "trained": 0}``, or
    ``{"checked": 0, "note": ...}`` for a router that records no training prompts)."""
    sketch = manifest.get(SKETCH_KEY)
    got = overlap(sketch, prompts) if isinstance(sketch, Mapping) else None
    if got is None:
        return {"checked": 0, "note": "the router records no training prompts (trained before tela 0.2?)"}
    sampled, trained = got
    if trained:
        exact = int(sketch.get("n", 0)) <= len(sketch.get("hashes", [])) if isinstance(sketch, Mapping) else False
        of = f"{trained} of the {sampled} evaluation prompts" + ("" if exact else " checked (a sample)")
        raise TelaError(
            f"{of} are the {what} router's own training prompts; evaluate on recent traffic that neither router "
            "trained on (label it with tela collect / tela judge, and leave it out of training)"
        )
    return {"checked": sampled, "trained": 0}


def _operating(router: Router, scores: Any, records: Sequence[Record]) -> Operating:
    decisions = router.decisions(scores)
    strongest = router.models[-1]
    share = sum(d.model == strongest for d in decisions) / max(1, len(decisions))
    costs = []
    for d, r in zip(decisions, records):
        c = (r.costs or {}).get(d.model)
        if c is None:
            return Operating(share, None)
        costs.append(float(c))
    return Operating(share, sum(costs) / len(costs) if costs else None)


def _num(x: float) -> str:
    return f"{x:+.4f}"


def compare(
    candidate: Router,
    current: Router,
    records: Sequence[Record],
    weak: str,
    strong: str,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Score ``records`` with both routers and decide (module doc)."""
    if len(candidate.models) > 2:
        return _compare_nmodel(candidate, current, records, resamples=resamples, confidence=confidence, seed=seed)
    arrays = outcome_arrays(records, weak, strong)
    prompts = [r.prompt for r in records]
    s_cand, s_cur = candidate.scores(prompts), current.scores(prompts)
    interval = paired_apgr(
        s_cand.w, s_cur.w, arrays.weak, arrays.strong, resamples=resamples, confidence=confidence, seed=seed
    )
    op_cand, op_cur = _operating(candidate, s_cand, records), _operating(current, s_cur, records)
    return _decide(records, weak, strong, interval, op_cand, op_cur, confidence, "apgr")


def _decide(
    records: Sequence[Record],
    weak: str,
    strong: str,
    interval: PairedInterval,
    op_cand: Operating,
    op_cur: Operating,
    confidence: float,
    metric: str,
) -> Comparison:
    pct, name = f"{confidence:.0%}", metric.upper()
    said = (
        f"{name} {interval.a:.4f} vs current {interval.b:.4f}: {_num(interval.diff)} "
        f"({pct} interval {_num(interval.lo)} .. {_num(interval.hi)})"
    )
    if op_cand.cost is not None and op_cur.cost is not None:
        key, c_val, p_val, label = "cost", op_cand.cost, op_cur.cost, "mean cost per prompt"
    else:
        key, c_val, p_val, label = "strong_share", op_cand.strong_share, op_cur.strong_share, "strong-call share"
    cheaper = c_val < p_val
    cost_said = f"{label} {c_val:.4g} vs current {p_val:.4g} ({_num(c_val - p_val)})"
    failed: dict[str, Any] | None = None
    if interval.better:
        decision, why = PROMOTE, f"better beyond the interval: {said}"
    elif interval.worse:
        decision = REFUSE
        why = f"{name} worse beyond the interval: {said}; the interval's upper end is {-interval.hi:.4f} below 0"
        failed = {"number": metric, "value": interval.diff, "hi": interval.hi, "by": -interval.hi}
    elif cheaper:
        decision, why = PROMOTE, f"equal within the interval and cheaper: {said}; {cost_said}"
    else:
        decision = REFUSE
        why = (
            f"{name} not better beyond the interval (its lower end is {0.0 - interval.lo:.4f} below 0): {said}; "
            f"and not cheaper: {cost_said}"
        )
        failed = {
            "number": key,
            "value": c_val,
            "current": p_val,
            "by": c_val - p_val,
            f"{metric}_lo": interval.lo,
        }
    return Comparison(len(records), weak, strong, interval, op_cand, op_cur, decision, why, failed, metric)


# -- N models --------------------------------------------------------------------------------------


def aiq_fast(h: Sequence[tuple[float, float]], lo: float, hi: float, n: int = 2001) -> float:
    """:func:`tela_core.eval.nmodel.aiq` in one ``numpy.interp`` (the same grid and rules: 0 below
    the hull's first point, flat beyond its last), for the bootstrap's thousands of hulls."""
    import numpy as np

    cs = np.linspace(lo, hi, n)
    xs, ys = np.array([p[0] for p in h]), np.array([p[1] for p in h])
    vals = np.interp(cs, xs, ys)
    vals[cs < xs[0]] = 0.0
    return float(np.trapezoid(vals, cs) / (hi - lo))


def _nmodel_arrays(router: Router, records: Sequence[Record], prompts: list[str]) -> tuple[Any, Any, Any, Any]:
    """(pred, truth, cost, picked) over the router's models, cheap -> strong: predicted quality,
    outcomes, costs, and the column its saved policy picks for each prompt."""
    import numpy as np

    scores = router.scores(prompts, quality=True)
    if scores.quality is None:
        raise TelaError(
            f"{router.path}: scorer {router.manifest.get('scorer')!r} predicts no per-model quality, which "
            "comparing routers among more than two models needs"
        )
    cols = list(scores.models or getattr(router.scorer, "models", []) or [])
    missing = [m for m in router.models if m not in cols]
    if missing:
        raise TelaError(f"{router.path}: predicts no quality for {', '.join(missing)}")
    for i, r in enumerate(records):
        lack = [m for m in router.models if m not in (r.outcomes or {}) or m not in (r.costs or {})]
        if lack:
            where = r.id or f"record {i + 1}"
            raise TelaError(f"{where}: no outcome or cost for {', '.join(lack)}; N-model routers are compared on both")
    pred = np.asarray(scores.quality, dtype=float)[:, [cols.index(m) for m in router.models]]
    truth = np.array([[(r.outcomes or {})[m] for m in router.models] for r in records], dtype=np.float64)
    cost = np.array([[(r.costs or {})[m] for m in router.models] for r in records], dtype=np.float64)
    picked = [router.models.index(d.model) for d in router.decisions(scores)]
    return pred, truth, cost, np.asarray(picked, dtype=int)


def _compare_nmodel(
    candidate: Router, current: Router, records: Sequence[Record], *, resamples: int, confidence: float, seed: int
) -> Comparison:
    import numpy as np

    from .bootstrap import paired_bootstrap
    from .nmodel import hull, sweep

    prompts = [r.prompt for r in records]
    p_cand, truth, cost, pick_cand = _nmodel_arrays(candidate, records, prompts)
    p_cur, _, _, pick_cur = _nmodel_arrays(current, records, prompts)
    # the current router's columns in the candidate's model order (the two may order the same models differently)
    order = [list(current.models).index(m) for m in candidate.models]
    p_cur = p_cur[:, order]
    pick_cur = np.asarray([list(candidate.models).index(current.models[i]) for i in pick_cur], dtype=int)

    def stat(pred: Any) -> Any:
        def aiq_on(idx: Any) -> float:
            c, t = cost[idx], truth[idx]
            singles = c.mean(axis=0)
            lo, hi = float(singles.min()), float(singles.max())
            return aiq_fast(hull(sweep(pred[idx], c, t)), lo, hi if hi > lo else lo + 1e-12)

        return aiq_on

    interval = paired_bootstrap(
        stat(p_cand), stat(p_cur), len(records), resamples=resamples, confidence=confidence, seed=seed
    )
    rows = np.arange(len(records))
    strongest = len(candidate.models) - 1

    def op(picked: Any) -> Operating:
        return Operating(float((picked == strongest).mean()), float(cost[rows, picked].mean()))

    models = candidate.models
    return _decide(records, models[0], models[-1], interval, op(pick_cand), op(pick_cur), confidence, "aiq")


def _check_models(candidate: Router, current: Router) -> None:
    cand, cur = list(candidate.models), list(current.models)
    if len(cand) > 2 and len(cur) > 2 and sorted(cand) == sorted(cur):
        return  # the same models; their cheap -> strong order follows the costs each saw, and may differ
    if cand != cur:
        raise TelaError(
            f"the candidate routes between {', '.join(candidate.models)} and the current version between "
            f"{', '.join(current.models)}: a version must route between the same models (cheap -> strong)"
        )


def check_comparable(candidate: Router, current: Router) -> None:
    """Refuse (bad input) a candidate that routes between other models than the current version."""
    _check_models(candidate, current)


def as_json_numbers(c: Comparison) -> dict[str, Any]:
    """The numbers of a comparison, for a promotion record."""
    return {
        "prompts": c.n,
        "weak": c.weak,
        "strong": c.strong,
        "metric": c.metric,
        c.metric: c.interval.to_dict(),
        "candidate": asdict(c.candidate),
        "current": asdict(c.current),
    }
