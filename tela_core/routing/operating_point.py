"""The operating point a router is saved with: which threshold on ``w`` it routes at.

``tela run`` chooses it on scores of records the router did not train on (the held-out part of
the training data for a family trained by a backend, out-of-fold scores for a family that trains
itself on every record: :mod:`tela_core.train.heldout`), by a stated rule:

- ``knee`` (the default): the knee of the quality–cost curve. For each strong-call share p in
  0.10, 0.15, …, 0.90 the threshold that sends p of the held-out prompts to the strong model is
  replayed against their outcomes; the one whose PGR beats random routing (PGR = p) by the most is
  chosen (the smaller share on a tie: cheaper). Shares below 0.10 and above 0.90 are left out: a
  router that sends (almost) nothing to one model gains nothing from routing. When the held-out
  records have no per-model outcomes, the strong model is no better than the weak one on them, or
  the router does not beat random routing on them (APGR at most 0.5, or no share ahead of random),
  there is no knee: the share 0.5 is taken instead and the point says why.
- ``share=P``: the threshold that sends the share P of the held-out prompts to the strong model
  (``tela calibrate``'s rule).
- ``threshold=T``: the fixed threshold T (``threshold=0.5`` is what tela 0.2 saved); nothing is
  held out or scored for it.

The choice is saved as the router's ``calibrated`` policy (``threshold`` for ``threshold=T``) in
``policy.json``, with the point itself (:class:`OperatingPoint`) under ``operating_point``.
Nothing here depends on the family or its embedder: only ``w`` and the outcomes are read.

A router that predicts every model's quality, trained on records with every model's outcome and
cost, routes among all of them (:func:`choose_nmodel_point`), by the rules:

- ``knee`` (the default): the ``budget`` policy at the least cost at which the router matches the
  best single model's quality (the model with the best mean outcome on the held-out records, its
  out-of-fold predictions), the cost-aware rule swept over λ; when no λ matches it, the best single
  model's cost;
- ``budget=best``: the ``budget`` policy at the best single model's cost: the best quality the
  router buys for what always calling that model costs;
- ``budget=B``: the ``budget`` policy at $B per 1,000 requests;
- ``lam=L``: the ``cost-aware`` policy at λ = L;
- ``q=Q``: the ``quality-floor`` policy at Q.

``share=P`` and ``threshold=T`` keep such a router on its weak/strong pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.plugins.discovery import get_registry

from .metrics import apgr

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "NMODEL_RULES",
    "choose_nmodel_point",
    "describe_nmodel_point",
    "mean_costs",
    "DEFAULT_RULE",
    "FALLBACK_SHARE",
    "KNEE_SHARES",
    "MIN_SAMPLE",
    "OperatingPoint",
    "parse_rule",
    "choose_operating_point",
    "gains_nothing",
    "small_sample_warning",
]

#: The rule ``tela run`` uses unless ``--operating-point`` names another.
DEFAULT_RULE = "knee"
#: The strong-call shares the knee is looked for among.
KNEE_SHARES: tuple[float, ...] = tuple(round(0.10 + 0.05 * i, 2) for i in range(17))
#: The share taken when there is no knee (no outcomes, no quality gap, no gain over random).
FALLBACK_SHARE = 0.5
#: Below this many prompts a strong-call share or a PGR measured on them is flagged as noise:
#: the standard error of a share near 0.5 is about 0.05 at 100 prompts, 0.11 at 20.
MIN_SAMPLE = 100


def small_sample_warning(n: int, what: str, advice: str = "") -> str | None:
    """A warning line when ``n`` prompts are too few (< :data:`MIN_SAMPLE`) for ``what``; None otherwise."""
    if n >= MIN_SAMPLE:
        return None
    se = math.sqrt(0.25 / max(n, 1))
    return (
        f"warning: {what} rests on {n} prompt{'s' if n != 1 else ''}, fewer than {MIN_SAMPLE}: a share measured "
        f"on them is uncertain by about ±{se:.2f} (one standard error at 0.5), so treat it as a rough guess"
        + (f"; {advice}" if advice else "")
    )


#: N-model rules (kind -> policy); ``knee`` and ``budget=best`` give ``budget`` at the best single model's cost
NMODEL_RULES = {"budget": "budget", "lam": "cost-aware", "q": "quality-floor"}


def parse_rule(text: str | None) -> tuple[str, float | None]:
    """``"knee"`` / ``"share=P"`` / ``"threshold=T"`` (and, for N-model routers, ``"budget=B"``,
    ``"budget=best"``, ``"lam=L"``, ``"q=Q"``) -> (kind, value); a :class:`TelaError` naming the
    accepted forms otherwise. None is the default rule; ``budget=best`` is ``("budget", None)``."""
    raw = (DEFAULT_RULE if text is None else str(text)).strip()
    kind, sep, value = raw.partition("=")
    kind = kind.strip().lower()
    forms = (
        "knee, share=P (a strong-call share in [0, 1]) or threshold=T (a threshold on w in [0, 1]); for a router "
        "among N models also budget=B|best ($ per 1,000 requests), lam=L (>= 0) or q=Q (in [0, 1])"
    )
    if kind == "knee" and not sep:
        return "knee", None
    if kind == "budget" and not sep:  # what RunConfig keeps of budget=best
        return "budget", None
    if kind in NMODEL_RULES and sep:
        if kind == "budget" and value.strip().lower() == "best":
            return "budget", None
        try:
            x = float(value)
        except ValueError:
            raise TelaError(f"operating point {raw!r}: {value.strip()!r} is not a number; expected {forms}") from None
        if kind == "budget" and not (x > 0 and math.isfinite(x)):
            raise TelaError(f"operating point {raw!r}: budget must be > 0 ($ per 1,000 requests), got {value.strip()}")
        if kind == "lam" and not (x >= 0 and math.isfinite(x)):
            raise TelaError(f"operating point {raw!r}: lam must be >= 0, got {value.strip()}")
        if kind == "q" and not 0.0 <= x <= 1.0:
            raise TelaError(f"operating point {raw!r}: q must be in [0, 1], got {value.strip()}")
        return kind, x
    if kind in ("share", "threshold") and sep:
        try:
            x = float(value)
        except ValueError:
            raise TelaError(f"operating point {raw!r}: {value.strip()!r} is not a number; expected {forms}") from None
        if not (0.0 <= x <= 1.0):  # NaN fails too
            raise TelaError(f"operating point {raw!r}: {kind} must be in [0, 1], got {value.strip()}")
        return kind, x
    raise TelaError(f"operating point {raw!r}: expected {forms}")


@dataclass
class OperatingPoint:
    """Where a router's saved policy routes, and what that did on the held-out scores."""

    #: the rule as given (``knee``, ``share=0.3``, ``threshold=0.5``)
    rule: str
    #: the threshold on ``w`` saved in the policy
    threshold: float
    #: the strong-call share the rule aimed at (the knee's share, P of ``share=P``; None for ``threshold=T``)
    target_share: float | None = None
    #: how many held-out scores the point was chosen on, and what they were
    heldout: int = 0
    heldout_what: str = ""
    #: on the held-out scores: the share sent to the strong model, the quality of the chosen models and PGR
    strong_share: float | None = None
    quality: float | None = None
    pgr: float | None = None
    q_weak: float | None = None
    q_strong: float | None = None
    #: APGR of the held-out scores (random routing: 0.5)
    apgr: float | None = None
    #: why the rule could not be applied as stated (e.g. no knee), or None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}

    def describe(self) -> str:
        """One line: the policy, and where it lands on the held-out scores."""
        s = f"threshold w >= {self.threshold:.4f} (rule: {self.rule}"
        if self.rule == "knee" and self.note is None:
            s += ", the knee of the quality-cost curve)"
        elif self.rule == "knee" and self.target_share is not None:
            s += f"; no knee, so the share {self.target_share:g})"
        else:
            s += ")"
        if self.strong_share is None:
            s += "; nothing held out to measure it on"
        if self.strong_share is not None:
            s += f"; on {self.heldout} held-out prompts ({self.heldout_what}): {self.strong_share:.0%} strong calls"
            if self.quality is not None:
                s += f", quality {self.quality:.3f} (weak alone {self.q_weak:.3f}, strong alone {self.q_strong:.3f})"
            if self.pgr is not None:
                s += f", PGR {self.pgr:.2f}"
            if self.apgr is not None:
                s += f"; APGR there {self.apgr:.3f} (random 0.5)"
        return s


def _threshold_for(w: np.ndarray, share: float) -> float:
    """The ``calibrated`` policy's threshold for ``share`` on ``w`` (the rule of ``tela calibrate``)."""
    policy = get_registry().create("policy", "calibrated", {"strong_share": share}).calibrate(w)
    return float(policy.options.threshold)


def choose_operating_point(
    w: Sequence[float] | np.ndarray | None,
    weak: Sequence[float] | np.ndarray | None = None,
    strong: Sequence[float] | np.ndarray | None = None,
    rule: str | None = None,
    heldout_what: str = "",
) -> OperatingPoint:
    """The operating point ``rule`` (:func:`parse_rule`) picks on held-out scores ``w``, with the
    weak and strong models' outcomes on the same prompts when known (the knee needs them)."""
    import numpy as np

    kind, value = parse_rule(rule)
    if kind in NMODEL_RULES:
        raise TelaError(f"operating point {rule}: a rule for a router among N models, not for a weak/strong pair")
    label = DEFAULT_RULE if kind == "knee" else f"{kind}={value:g}"
    arr = None if w is None else np.asarray(w, dtype=float).reshape(-1)
    if kind == "threshold":
        assert value is not None
        point = OperatingPoint(label, float(value))
        if arr is not None and arr.size:
            _measure(point, arr, weak, strong, heldout_what)
        return point
    if arr is None or arr.size == 0:
        raise TelaError(f"operating point {label}: no held-out scores to choose it on")
    note = None
    if kind == "share":
        assert value is not None
        share = float(value)
    else:
        share, note = _knee(arr, weak, strong)
    point = OperatingPoint(label, _threshold_for(arr, share), target_share=share, note=note)
    _measure(point, arr, weak, strong, heldout_what)
    return point


def _measure(point: OperatingPoint, w: np.ndarray, weak: Any, strong: Any, what: str) -> None:
    import numpy as np

    mask = w >= point.threshold
    point.heldout, point.heldout_what = int(w.size), what
    point.strong_share = float(mask.mean())
    if weak is None or strong is None:
        return
    wk, st = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    q = np.where(mask, st, wk)
    point.quality, point.q_weak, point.q_strong = float(q.mean()), float(wk.mean()), float(st.mean())
    gap = float(st.mean() - wk.mean())
    point.pgr = float((q.mean() - wk.mean()) / gap) if gap > 1e-12 else None
    if gap > 1e-12:
        point.apgr = float(apgr(w, wk, st))


def _knee(w: np.ndarray, weak: Any, strong: Any) -> tuple[float, str | None]:
    """(share, note): the knee's share on ``w``, or :data:`FALLBACK_SHARE` and why there is none."""
    import numpy as np

    fallback = f"the share {FALLBACK_SHARE} was taken instead"
    if weak is None or strong is None:
        return (
            FALLBACK_SHARE,
            f"the held-out records carry no per-model outcomes, so there is no quality-cost curve; {fallback}",
        )
    wk, st = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    gap = float(st.mean() - wk.mean())
    if gap <= 1e-12:
        return FALLBACK_SHARE, (
            f"the strong model is no better than the weak one on the held-out records (quality "
            f"{st.mean():.3f} vs {wk.mean():.3f}), so routing can gain nothing; {fallback}"
        )

    area = apgr(w, wk, st)
    if area <= 0.5:
        return FALLBACK_SHARE, (
            f"the router does not beat random routing on its held-out scores (APGR {area:.3f}; random "
            f"0.5), so it has no knee; {fallback}"
        )
    best: tuple[float, float] | None = None
    for p in KNEE_SHARES:
        mask = w >= _threshold_for(w, p)
        share = float(mask.mean())
        pgr = float((np.where(mask, st, wk).mean() - wk.mean()) / gap)
        lead = pgr - share
        if best is None or lead > best[0] + 1e-12:
            best = (lead, p)
    assert best is not None
    if best[0] <= 0:
        return FALLBACK_SHARE, (
            "no share beats random routing on the held-out records (the router learnt nothing usable there); "
            + fallback
        )
    return best[1], None


def gains_nothing(point: dict[str, Any] | None) -> str | None:
    """Why a saved policy's point (``strong_share``, ``pgr``) gains nothing from routing, or None:
    it sends (almost) every prompt to one model (share under 0.05 or over 0.95), or recovers almost
    none of the quality gap (PGR under 0.05)."""
    if not point:
        return None
    share, pgr = point.get("strong_share"), point.get("pgr")
    if isinstance(share, (int, float)) and share < 0.05:
        return f"it sends {share:.1%} of the prompts to the strong model: almost all go to the weak one"
    if isinstance(share, (int, float)) and share > 0.95:
        return f"it sends {share:.1%} of the prompts to the strong model: almost none go to the weak one"
    if isinstance(pgr, (int, float)) and pgr < 0.05:
        return f"it recovers {pgr:.3f} of the quality gap between the models (PGR)"
    return None


def mean_costs(records: Sequence[Any], models: Sequence[str]) -> dict[str, float] | None:
    """Each model's mean cost per request over ``records``' costs, or None when a model has none."""
    out: dict[str, float] = {}
    for m in models:
        vals = [float(r.costs[m]) for r in records if r.costs and r.costs.get(m) is not None]
        if not vals:
            return None
        out[m] = sum(vals) / len(vals)
    return out


def choose_nmodel_point(
    quality: np.ndarray,
    models: Sequence[str],
    truth: np.ndarray | None,
    costs: dict[str, float],
    rule: str | None = None,
    heldout_what: str = "",
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(policy name, its options, the point) for an N-model router by ``rule`` (module doc).

    ``quality``: (n, M) predicted quality of held-out (out-of-fold) prompts, columns ``models``;
    ``truth``: their observed outcomes (the same shape) or None; ``costs``: $ per request per model.
    The point says where the policy lands on those prompts: mean outcome, $ per 1,000 requests, each
    model's share, beside the best single model."""
    import numpy as np

    kind, value = parse_rule(rule)
    if kind in ("share", "threshold"):
        raise TelaError(f"operating point {rule}: a rule for a weak/strong pair, not for a router among N models")
    q = np.asarray(quality, dtype=float)
    cost = np.array([costs[m] for m in models], dtype=float)
    point: dict[str, Any] = {"rule": DEFAULT_RULE if kind == "knee" else (rule or DEFAULT_RULE)}
    point.update(heldout=int(len(q)), heldout_what=heldout_what)
    best: dict[str, Any] | None = None
    if truth is not None:
        t = np.asarray(truth, dtype=float)
        singles = np.nan_to_num(np.nanmean(np.where(np.isnan(t).all(axis=0), 0.0, t), axis=0))
        j = int(np.argmax(singles))  # the best single model (the cheaper on a tie: models are cheap -> strong)
        best = {"model": models[j], "quality": float(singles[j]), "cost_per_1000": float(1000 * cost[j])}
        point["best_single"] = best
    reg = get_registry()
    name = "budget" if kind in ("knee", "budget") else NMODEL_RULES[kind]
    opts: dict[str, Any] = {"costs": dict(costs)}
    if name == "budget":
        if value is None:
            if best is None:
                raise TelaError(
                    "operating point: the held-out records carry no outcomes to find the best single model; "
                    "give a budget with --operating-point budget=B"
                )
            value = float(best["cost_per_1000"])
            point["note"] = f"budget = the best single model's cost ({best['model']})"
            match = _cheapest_match(q, cost, np.asarray(truth, dtype=float), best, opts) if kind == "knee" else None
            if match is not None:
                value = match
                point["note"] = (
                    f"budget = the least cost at which the router matches the best single model ({best['model']}, "
                    f"quality {best['quality']:.3f}) on these prompts"
                )
            elif kind == "knee":
                point["note"] += ": no point of the router matches its quality on these prompts"
            if value <= 0:  # the models that match it cost nothing (no prices): a budget of $0 is no budget
                value = FREE_BUDGET
                point["note"] += f"; that point costs $0, so the budget is ${FREE_BUDGET:g} (a budget is > 0)"
        policy = reg.create("policy", "budget", {**opts, "budget": value}).calibrate(
            q, models, data=f"{heldout_what} (tela run, operating point {point['rule']})"
        )
    else:
        knob = "lam" if name == "cost-aware" else "q"
        policy = reg.create("policy", name, {**opts, knob: value})
    idx = policy.choose_index(q, cost)
    point.update(policy=name, knob=policy.knob, value=float(policy.knob_value))
    if name == "budget":
        point["lam"] = policy.options.lam
    point["cost_per_1000"] = float(1000 * cost[idx].mean())
    point["share"] = {m: float((idx == j).mean()) for j, m in enumerate(models)}
    if truth is not None:
        got = np.asarray(truth, dtype=float)[np.arange(len(idx)), idx]
        point["quality"] = float(np.nanmean(got)) if not np.isnan(got).all() else None
    return name, policy.options.model_dump(mode="json"), point


#: The budget ($ per 1,000 requests) of a knee that costs nothing: only free models are picked.
FREE_BUDGET = 1e-9

#: λ values the N-model knee is looked for among: 0 and 80 log-spaced values from 1e-3 to 100
KNEE_LAMBDAS: tuple[float, ...] = (0.0, *(10 ** (-3 + 5 * i / 79) for i in range(80)))


def _cheapest_match(
    q: np.ndarray, cost: np.ndarray, truth: np.ndarray, best: dict[str, Any], opts: dict[str, Any]
) -> float | None:
    """The least $ per 1,000 requests at which the cost-aware rule on predicted quality ``q``
    reaches the best single model's observed quality on ``truth``, or None when no λ does."""
    import numpy as np

    reg = get_registry()
    rows = np.arange(len(q))
    reached = []
    for lam in KNEE_LAMBDAS:
        idx = reg.create("policy", "cost-aware", {**opts, "lam": lam}).choose_index(q, cost)
        got = truth[rows, idx]
        if not np.isnan(got).all() and float(np.nanmean(got)) >= best["quality"]:
            reached.append(float(1000 * cost[idx].mean()))
    return min(reached) if reached else None


def describe_nmodel_point(point: dict[str, Any]) -> str:
    """One line: an N-model policy and where it lands on the held-out predictions."""
    knob, value = point.get("knob"), point.get("value")
    what = f"${value:.4g} per 1,000 requests" if knob == "budget" else f"{knob} {value:.4g}"
    s = f"{point.get('policy')} {what} (rule: {point.get('rule')}"
    s += f"; {point['note']})" if point.get("note") else ")"
    if point.get("lam") is not None and knob == "budget":
        s += f", λ {point['lam']:.4g}"
    what = str(point.get("heldout_what") or "")
    s += f"; on {point.get('heldout')} {'' if 'not held out' in what else 'held-out '}prompts ({what}): "
    if point.get("quality") is not None:
        s += f"quality {point['quality']:.3f} at "
    s += f"${point.get('cost_per_1000', 0):.4g} per 1,000"
    best = point.get("best_single")
    if best:
        s += f" (best single model {best['model']}: {best['quality']:.3f} at ${best['cost_per_1000']:.4g})"
    return s
