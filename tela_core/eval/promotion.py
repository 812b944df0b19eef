"""Should a candidate router replace the current one? The comparison behind ``tela promote``.

Both routers score the same labelled prompts, which neither trained on (checked against the
training-prompt sketch each router's ``tela.json`` keeps: :mod:`tela_core.data.fingerprint`). The
candidate is promoted when

1. its APGR is better than the current router's beyond the paired bootstrap interval (the
   interval of APGR(candidate) − APGR(current) lies above 0: :mod:`tela_core.eval.bootstrap`), or
2. the two are equal within the interval (it holds 0) and the candidate is cheaper at its saved
   policy: a lower mean cost per prompt where the data has every chosen model's cost, else a lower
   strong-call share (the share of prompts sent to the strongest model) - and it does not buy that
   with quality there: the paired bootstrap interval of its mean outcome at its saved policy minus
   the current router's (the outcome of the model each one picks, prompt by prompt) does not lie
   below 0. APGR and AIQ do not depend on the saved policy, so without this a copy of the current
   router that never calls the strong model would pass as "equal and cheaper".

A candidate better beyond the interval is still refused when, at its saved policy, it is both worse
(that mean-outcome interval lies below 0) and not cheaper: what it would serve is worse for the same
money, however well it ranks prompts; calibrating its operating point first fixes that.

Otherwise it is refused, and the refusal names the number that failed and by how much.

Routers among more than two models are compared the same way on the N-model score instead of
APGR: AIQ, the mean height of the quality-cost hull of the cost-aware policy over the single models'
cost range (:mod:`tela_core.eval.nmodel`), from each router's per-model predicted quality; the
records then need every model's outcome and cost, and "cheaper" is the mean cost per prompt of the
models each router's own saved policy picks.

A candidate among more models than the current version (a model added with ``tela run --add-to``)
is compared the same way, on records with every one of the candidate's models' outcome and cost:
the current router chooses among its own models only (a model it lacks is one it never picks),
and both routers' quality-cost hulls are measured over the same cost range, that of all the
candidate's single models, on the same prompts. That is the choice a promotion makes: serve the
router that can send prompts to the new model, or the one that cannot. Comparing on the current
models alone would judge the candidate without the one thing it adds. A candidate that drops a
model the current version serves is refused. The current version may be a router between two of
the candidate's models (a first version, before models were added): it routes on ``w`` and a
threshold and predicts no quality per model, so its curve is its threshold sweep, the top ``k``
prompts by ``w`` to its strong model at strong-call shares 0, 0.01, ..., 1 (:func:`_pair_curve`;
prompts of equal ``w`` each count the share of them sent, whatever the records' order), hulled and
averaged over the same cost range.

Labels bought by uncertainty-driven shadow sampling (``shadow_sampling: uncertainty``) are not a
sample of the traffic: close decisions are asked more often. Each record from a shadow log carries
the probability its request was sampled with (``sampling_p``, kept by ``tela collect --from-log``
and ``tela judge``), and every number here - APGR or AIQ, the bootstrap's resamples, the
strong-call share, cost and mean outcome at the saved policy - weighs each prompt by ``1/p``
(inverse-propensity weighting), so that the labelled prompts stand for the traffic they were drawn
from. Records that all carry the same ``p`` (uniform sampling) give exactly the unweighted numbers.
Records of which some carry a ``p`` and some do not cannot be weighted together and are refused
(``weighted=False`` counts every prompt alike).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tela_core.data.fingerprint import SKETCH_KEY, overlap
from tela_core.infra.errors import TelaError

from .bootstrap import PairedInterval, paired_apgr, uniform
from .outcomes import outcome_arrays

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.data.records import Record
    from tela_core.routing.router import Router

__all__ = [
    "Operating",
    "Comparison",
    "compare",
    "check_not_trained_on",
    "sampling_weights",
    "check_sampling_mix",
    "MIN_EFFECTIVE_PROMPTS",
    "PROMOTE",
    "REFUSE",
    "MIN_SAVING",
]

PROMOTE, REFUSE = "promote", "refuse"

#: "cheaper" means at least this share below the current version's mean cost (or strong-call
#: share): a rounding-size saving is no reason to swap versions, and swapping on one churns them.
MIN_SAVING = 0.01


@dataclass(frozen=True)
class Operating:
    """A router at its saved policy on the evaluation prompts: the share sent to the strongest
    model, and the mean cost per prompt of the models chosen (None where a cost is missing)."""

    strong_share: float
    cost: float | None
    #: the mean outcome of the models chosen (None where not computed)
    quality: float | None = None


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
    #: the paired interval of the mean outcome at the saved policies (candidate − current)
    quality: PairedInterval | None = None
    #: how prompts were weighted (:func:`sampling_weights`)
    weighting: dict[str, Any] | None = None

    @property
    def apgr(self) -> PairedInterval:
        """The interval of the score (APGR for two-model routers)."""
        return self.interval

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.to_dict()
        return out


def _lower_end(lo: float) -> str:
    """Where an interval's lower end lies against 0, worded for a refusal (an end at exactly 0 is
    not "0.0000 below 0")."""
    return f"its lower end is {-lo:.4f} below 0" if lo < 0 else f"its lower end is {lo + 0.0:.4f}, not above 0"


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


#: the least evidence weighted records may be worth, in equally weighted prompts (Kish's effective
#: sample size, ``(sum v)^2 / sum v^2``): a set where one record or a few carry nearly all the
#: weight (a hand-edited or tiny ``p``) has a bootstrap interval of a handful of prompts, whatever
#: the record count says, and is refused rather than decided on. Fewer records than twice this
#: need only be worth half their count: weighting may not refuse what counting alike would decide.
MIN_EFFECTIVE_PROMPTS = 10


def _who(r: Record, i: int) -> str:
    return f"record {r.id!r}" if r.id else f"the record of prompt {r.prompt[:40]!r}" if r.prompt else f"record {i + 1}"


def check_sampling_mix(records: Sequence[Record]) -> None:
    """Refuse (a :class:`TelaError`) records of which some carry a shadow sampling probability and
    some do not: they cannot be weighted back to the traffic together."""
    have = sum(r.sampling_p is not None for r in records)
    if 0 < have < len(records):
        raise TelaError(
            f"{have} of the {len(records)} evaluation records carry a shadow sampling probability (sampling_p) and "
            f"{len(records) - have} do not, so they cannot be weighted back to the traffic together; compare on "
            "records of one kind, or count every prompt alike (tela promote --unweighted)"
        )


def sampling_weights(records: Sequence[Record], weighted: bool = True) -> tuple[Any, dict[str, Any]]:
    """Each prompt's weight, proportional to ``1/p`` (``p``: the record's ``sampling_p``; scaled so
    the largest is 1, which no ``p`` overflows), or None where every prompt counts alike (no record
    carries a ``p``, all carry the same, or ``weighted`` is False); and what was done, for the
    promotion record, with the weighted prompts' worth in equally weighted ones (``effective_n``).
    Some records with a ``p`` and some without, or weights worth fewer than
    :data:`MIN_EFFECTIVE_PROMPTS` prompts (half the records, where fewer), are a
    :class:`TelaError`: they cannot stand for the traffic."""
    import numpy as np

    ps = [r.sampling_p for r in records]
    have = sum(p is not None for p in ps)
    info: dict[str, Any] = {"records": len(ps), "with_p": have, "weighted": False}
    if not weighted:
        info["how"] = "every prompt alike (unweighted, as asked)" + (
            f"; {have} record(s) carry a sampling probability" if have else ""
        )
        return None, info
    if have == 0:
        info["how"] = "every prompt alike (no record carries a shadow sampling probability)"
        return None, info
    check_sampling_mix(records)
    p = np.array(ps, dtype=float)
    if not (np.isfinite(p).all() and (p > 0).all() and (p <= 1).all()):
        raise TelaError("sampling_p must be a probability in (0, 1] on every record")
    v = uniform(p.min() / p)  # 1/p scaled by the smallest p: in (0, 1], however small a p is
    if v is None:
        info["how"] = f"every prompt alike (all sampled with the same probability, {ps[0]:g})"
        info["effective_n"] = float(len(ps))
        return None, info
    eff = float(v.sum() ** 2 / (v**2).sum())
    info.update(weighted=True, how="each prompt weighted by 1/p, p the probability shadow sampling asked it with")
    info["p_range"] = [float(p.min()), float(p.max())]
    info["effective_n"] = round(eff, 1)
    need = min(float(MIN_EFFECTIVE_PROMPTS), len(ps) / 2)
    if eff < need:
        top = int(np.argmax(v))
        raise TelaError(
            f"weighted by 1/p, these {len(ps)} records are worth {eff:.1f} equally weighted prompts (Kish's "
            f"effective sample size; at least {need:g} needed): the heaviest, "
            f"{_who(records[top], top)} (sampling_p {float(p[top])!r}), carries {v[top] / v.sum():.0%} of the weight; "
            "label more of the traffic, or count every prompt alike (tela promote --unweighted)"
        )
    return v, info


def _mean(x: Any, v: Any) -> float:
    import numpy as np

    return float(np.mean(x)) if v is None else float(np.average(x, weights=v))


def _operating(
    router: Router, scores: Any, records: Sequence[Record], arrays: Any, v: Any = None
) -> tuple[Operating, Any]:
    """The router at its saved policy, and the outcome of the model it picks for each prompt
    (the strong model's outcome where it picks the strongest, else the weak one's); means
    weighted by ``v`` (each prompt's 1/p) where given."""
    import numpy as np

    decisions = router.decisions(scores)
    strongest = router.models[-1]
    to_strong = np.array([d.model == strongest for d in decisions], dtype=bool)
    got = np.where(to_strong, arrays.strong, arrays.weak).astype(float)
    quality: float | None
    if v is not None and len(decisions):
        share, quality = _mean(to_strong, v), _mean(got, v)
    else:
        share = float(to_strong.mean()) if len(decisions) else 0.0
        quality = float(got.mean()) if len(decisions) else None
    costs = []
    for d, r in zip(decisions, records):
        c = (r.costs or {}).get(d.model)
        if c is None:
            return Operating(share, None, quality), got
        costs.append(float(c))
    if v is not None and costs:
        return Operating(share, _mean(costs, v), quality), got
    return Operating(share, sum(costs) / len(costs) if costs else None, quality), got


def paired_mean(
    a: Any, b: Any, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0, weights: Any = None
) -> PairedInterval:
    """The paired bootstrap interval of mean(a) − mean(b) over the same prompts (means weighted by
    ``weights`` where given and not all equal)."""
    import numpy as np

    from .bootstrap import _check_args, _interval

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    _check_args(a.size, resamples, confidence)
    d = a - b
    v = uniform(weights)
    rng = np.random.Generator(np.random.PCG64(seed + 1))  # draws of their own, not the score's
    diffs = []
    for s in range(0, resamples, 250):
        idx = rng.integers(0, d.size, size=(min(250, resamples - s), d.size))
        diffs.append(d[idx].mean(axis=1) if v is None else (d[idx] * v[idx]).sum(axis=1) / v[idx].sum(axis=1))
    return _interval(_mean(a, v), _mean(b, v), np.concatenate(diffs), 0, confidence, int(a.size))


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
    weighted: bool = True,
) -> Comparison:
    """Score ``records`` with both routers and decide (module doc); ``weighted`` False counts every
    prompt alike, whatever sampling probability the records carry."""
    v, weighting = sampling_weights(records, weighted)
    if len(candidate.models) > 2:
        c = _compare_nmodel(candidate, current, records, v, resamples=resamples, confidence=confidence, seed=seed)
        return _weighed(c, weighting)
    arrays = outcome_arrays(records, weak, strong)
    prompts = [r.prompt for r in records]
    s_cand, s_cur = candidate.scores(prompts), current.scores(prompts)
    interval = paired_apgr(
        s_cand.w, s_cur.w, arrays.weak, arrays.strong, resamples=resamples, confidence=confidence, seed=seed, weights=v
    )
    (op_cand, got_cand), (op_cur, got_cur) = (
        _operating(candidate, s_cand, records, arrays, v),
        _operating(current, s_cur, records, arrays, v),
    )
    quality = paired_mean(got_cand, got_cur, resamples=resamples, confidence=confidence, seed=seed, weights=v)
    return _weighed(_decide(records, weak, strong, interval, op_cand, op_cur, confidence, "apgr", quality), weighting)


def _weighed(c: Comparison, weighting: dict[str, Any]) -> Comparison:
    """``c`` saying how its prompts were weighted (in its ``why`` too, when they were)."""
    why = c.why
    if weighting.get("weighted"):
        why += (
            f"; each prompt weighted by 1/p, its shadow sampling probability ({weighting['with_p']} of "
            f"{weighting['records']} records carry one; worth {weighting['effective_n']:.1f} equally weighted "
            "prompts)"
        )
    return dataclasses.replace(c, why=why, weighting=weighting)


def _decide(
    records: Sequence[Record],
    weak: str,
    strong: str,
    interval: PairedInterval,
    op_cand: Operating,
    op_cur: Operating,
    confidence: float,
    metric: str,
    quality: PairedInterval | None = None,
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
    cheaper = c_val < p_val * (1.0 - MIN_SAVING)
    cost_said = (
        f"{label} {c_val:.4g} vs current {p_val:.4g} ({_num(c_val - p_val)}; cheaper means at least "
        f"{MIN_SAVING:.0%} below)"
    )
    failed: dict[str, Any] | None = None
    quality_said = (
        ""
        if quality is None
        else f"mean outcome {quality.a:.4f} vs current {quality.b:.4f}: {_num(quality.diff)} ({pct} interval "
        f"{_num(quality.lo)} .. {_num(quality.hi)}), the interval's upper end {-quality.hi:.4f} below 0"
    )
    if interval.better and not cheaper and quality is not None and quality.worse:
        decision = REFUSE
        why = (
            f"{name} better beyond the interval, but its saved policy is worse and not cheaper: {quality_said}; "
            f"{said}; {cost_said} (calibrate the candidate's operating point, then promote it)"
        )
        failed = {"number": "quality", "value": quality.diff, "hi": quality.hi, "by": -quality.hi}
    elif interval.better:
        decision, why = PROMOTE, f"better beyond the interval: {said}"
    elif interval.worse:
        decision = REFUSE
        why = f"{name} worse beyond the interval: {said}; the interval's upper end is {-interval.hi:.4f} below 0"
        failed = {"number": metric, "value": interval.diff, "hi": interval.hi, "by": -interval.hi}
    elif cheaper and quality is not None and quality.worse:
        decision = REFUSE
        why = (
            f"equal {name} within the interval and cheaper, but worse at its saved policy: {quality_said}; "
            f"{said}; {cost_said}"
        )
        failed = {"number": "quality", "value": quality.diff, "hi": quality.hi, "by": -quality.hi}
    elif cheaper:
        decision, why = PROMOTE, f"equal within the interval and cheaper: {said}; {cost_said}"
    else:
        decision = REFUSE
        why = f"{name} not better beyond the interval ({_lower_end(interval.lo)}): {said}; and not cheaper: {cost_said}"
        failed = {
            "number": key,
            "value": c_val,
            "current": p_val,
            "by": c_val - p_val,
            f"{metric}_lo": interval.lo,
        }
    return Comparison(len(records), weak, strong, interval, op_cand, op_cur, decision, why, failed, metric, quality)


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


def _sweep(pred: Any, cost: Any, truth: Any, v: Any) -> list[tuple[float, float]]:
    """:func:`tela_core.eval.nmodel.sweep`, its means weighted by ``v`` where given."""
    import numpy as np

    from .nmodel import LAMBDAS, sweep

    if v is None:
        return sweep(pred, cost, truth)
    scale = _mean(cost.mean(axis=1), v) or 1.0
    rows = np.arange(len(pred))
    pts = []
    for lam in LAMBDAS:
        choice = np.argmax(pred - lam * cost / scale, axis=1)
        pts.append((_mean(cost[rows, choice], v), _mean(truth[rows, choice], v)))
    return pts


def _compare_nmodel(
    candidate: Router,
    current: Router,
    records: Sequence[Record],
    v: Any = None,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> Comparison:
    import numpy as np

    from .bootstrap import paired_bootstrap
    from .nmodel import hull

    prompts = [r.prompt for r in records]
    p_cand, truth, cost, pick_cand = _nmodel_arrays(candidate, records, prompts)
    cur_models, cand_models = list(current.models), list(candidate.models)

    def on(curve: Any) -> Any:
        """AIQ of the hull of ``curve``'s points on the prompts ``idx``, over the cost range of all the
        candidate's single models on them."""

        def aiq_on(idx: Any) -> float:
            c, t = cost[idx], truth[idx]
            vv = None if v is None else v[idx]
            singles = c.mean(axis=0) if vv is None else np.average(c, axis=0, weights=vv)
            lo, hi = float(singles.min()), float(singles.max())
            return aiq_fast(hull(curve(idx, c, t, vv)), lo, hi if hi > lo else lo + 1e-12)

        return aiq_on

    note = None
    if len(cur_models) == 2:
        # a router between two models routes on w and a threshold, and predicts no quality per model:
        # its curve is its threshold sweep between its pair (_pair_curve)
        s_cur = current.scores(prompts)
        w_cur = np.asarray(s_cur.w, dtype=float)
        jw, js = cand_models.index(cur_models[0]), cand_models.index(cur_models[1])
        pick_cur = np.asarray([cand_models.index(d.model) for d in current.decisions(s_cur)], dtype=int)
        stat_cur = on(lambda idx, c, t, vv: _pair_curve(w_cur[idx], c, t, vv, jw, js))
        note = (
            f"the current version routes between {cur_models[0]} and {cur_models[1]} only: its AIQ is its threshold "
            "sweep between them"
        )
    else:
        p_cur_own, _, _, pick_own = _nmodel_arrays(current, records, prompts)
        # the current router's columns in the candidate's model order (the two may order the same models
        # differently); a model only the candidate has is one the current router never picks (-inf)
        p_cur = np.full_like(p_cand, -np.inf)
        for j, m in enumerate(cand_models):
            if m in cur_models:
                p_cur[:, j] = p_cur_own[:, cur_models.index(m)]
        pick_cur = np.asarray([cand_models.index(cur_models[i]) for i in pick_own], dtype=int)
        stat_cur = on(lambda idx, c, t, vv: _sweep(p_cur[idx], c, t, vv))
    stat_cand = on(lambda idx, c, t, vv: _sweep(p_cand[idx], c, t, vv))
    interval = paired_bootstrap(
        stat_cand, stat_cur, len(records), resamples=resamples, confidence=confidence, seed=seed
    )
    rows = np.arange(len(records))
    strongest = len(candidate.models) - 1

    def op(picked: Any) -> Operating:
        got = truth[rows, picked]
        return Operating(_mean(picked == strongest, v), _mean(cost[rows, picked], v), _mean(got, v))

    quality = paired_mean(
        truth[rows, pick_cand], truth[rows, pick_cur], resamples=resamples, confidence=confidence, seed=seed, weights=v
    )
    models = candidate.models
    c = _decide(records, models[0], models[-1], interval, op(pick_cand), op(pick_cur), confidence, "aiq", quality)
    return c if note is None else dataclasses.replace(c, why=f"{c.why}; {note}")


#: strong-call shares of a two-model router's threshold sweep: 0, 0.01, ..., 1
PAIR_STEPS = 100


def _pair_curve(w: Any, cost: Any, truth: Any, v: Any, jw: int, js: int) -> list[tuple[float, float]]:
    """(mean cost, mean quality) of a router between the columns ``jw`` (weak) and ``js`` (strong)
    that sends the top ``k`` prompts by ``w`` to the strong model, for ``k`` at the strong-call shares
    0, 0.01, ..., 1 (:func:`tela_core.eval.metrics.strong_counts`); means weighted by ``v`` where
    given. Prompts of equal ``w`` are one the router cannot tell apart: where ``k`` ends among them,
    each counts the share of them that goes (the mean over every order of the tie), so the curve
    does not depend on the order of the records - a router of constant ``w`` is a straight line
    from its weak model to its strong one, not a ranking by the file's order."""
    import numpy as np

    from tela_core.eval.metrics import strong_counts

    w = np.asarray(w, dtype=float)
    order = np.argsort(-w, kind="stable")
    vo = np.ones(len(order)) if v is None else np.asarray(v, dtype=float)[order]
    cw, cs, tw, ts = cost[order, jw], cost[order, js], truth[order, jw], truth[order, js]
    dc = np.concatenate([[0.0], np.cumsum(vo * (cs - cw))])
    dt = np.concatenate([[0.0], np.cumsum(vo * (ts - tw))])
    total, base_c, base_t = float(vo.sum()), float((vo * cw).sum()), float((vo * tw).sum())
    ws = w[order]
    starts = np.flatnonzero(np.r_[True, ws[1:] != ws[:-1]]) if len(ws) else np.zeros(1, dtype=int)
    ends = np.r_[starts[1:], len(ws)]
    ks = np.asarray(strong_counts(len(order), PAIR_STEPS))
    tie = np.searchsorted(starts, ks, side="right") - 1  # the tie (run of equal w) each k ends in
    lo, hi = starts[tie], ends[tie]
    share = np.where(hi > lo, (ks - lo) / np.maximum(hi - lo, 1), 0.0)  # of the tie sent to the strong model
    c = base_c + dc[lo] + (dc[hi] - dc[lo]) * share
    t = base_t + dt[lo] + (dt[hi] - dt[lo]) * share
    return [(float(x) / total, float(y) / total) for x, y in zip(c, t)]


def _check_models(candidate: Router, current: Router) -> None:
    cand, cur = list(candidate.models), list(current.models)
    if len(cand) > 2 and len(cur) > 2 and sorted(cand) == sorted(cur):
        return  # the same models; their cheap -> strong order follows the costs each saw, and may differ
    dropped = [m for m in cur if m not in cand]
    if len(cand) > 2 and len(cur) >= 2 and not dropped:
        return  # a model added (tela run --add-to): compared where the current router cannot pick it
    if len(cand) > 2 and dropped:
        raise TelaError(
            f"the candidate does not route to {', '.join(dropped)}, which the current version serves: a new version "
            f"may add models, not drop them (candidate: {', '.join(cand)}); serve it from a folder of its own"
        )
    if cand != cur:
        raise TelaError(
            f"the candidate routes between {', '.join(candidate.models)} and the current version between "
            f"{', '.join(current.models)}: a version must route between the same models (cheap -> strong)"
        )


def check_comparable(candidate: Router, current: Router) -> None:
    """Refuse (bad input) a candidate that routes between other models than the current version;
    an N-model candidate may route among more (the current's and models added to them)."""
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
        "quality": c.quality.to_dict() if c.quality is not None else None,
        "weighting": c.weighting,
    }
