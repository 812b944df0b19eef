"""N-model routing judged by quality against cost: the cost-aware policy, its hull and AIQ.

With more than two models a router predicts every model's quality on a prompt (a family's
``predict_models``); the cost-aware policy picks, per prompt,
``argmax_m predicted_quality[m] − λ · cost[m] / mean_cost``, and sweeping λ from 0 (best predicted
quality whatever it costs) to large (cheapest) traces (mean cost, mean quality) points. Their upper
non-decreasing convex hull is what the router can deliver at each budget (mixing two policies
interpolates between their points), and the hull's mean height over the single models' cost range
is RouterBench's AIQ (``docs/metrics.md``). The single models and the oracle (the same policy on the
true outcomes) are computed on the same prompts, so every number in a report is comparable.

Beside AIQ each report gives the RouterArena score (:func:`arena_score`) of every single model, of
the router's best operating point on the sweep (and of its own policy's point, when it has one) and
of the oracle's: one number per operating point that weighs accuracy against the cost of 1,000
queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.io import atomic_open, atomic_write_json, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "LAMBDAS",
    "hull",
    "hull_value",
    "aiq",
    "sweep",
    "arena_score",
    "arena_best",
    "NModelEvaluation",
    "evaluate_nmodel",
    "write_nmodel_report",
]

#: λ values swept by :func:`sweep`: 0, 60 log-spaced values from 1e-3 to 10, then 1e3.
LAMBDAS: list[float] = [0.0] + [10 ** (-3 + 4 * i / 59) for i in range(60)] + [1e3]

Point = tuple[float, float]


def hull(points: Sequence[Point]) -> list[Point]:
    """Upper non-decreasing convex hull of (cost, quality) points, sorted by cost."""
    pts = sorted(set(points), key=lambda p: (p[0], -p[1]))
    best: list[Point] = []
    for c, q in pts:  # keep only points that raise quality (non-decreasing frontier)
        if not best or q > best[-1][1]:
            best.append((c, q))
    out: list[Point] = []
    for p in best:  # upper convex hull (monotone chain)
        while len(out) >= 2:
            (x1, y1), (x2, y2) = out[-2], out[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                out.pop()
            else:
                break
        out.append(p)
    return out


def hull_value(h: Sequence[Point], c: float) -> float:
    """Quality the hull reaches at cost ``c``: NaN below its cheapest point, flat beyond its last
    (spending more buys nothing)."""
    import numpy as np

    xs, ys = [p[0] for p in h], [p[1] for p in h]
    if c <= xs[0]:
        return ys[0] if c == xs[0] else float("nan")
    return float(np.interp(c, xs, ys))


def aiq(h: Sequence[Point], lo: float, hi: float, n: int = 2001) -> float:
    """Mean of the hull over [lo, hi] (RouterBench AIQ, normalised by the range); a hull that
    starts above ``lo`` counts 0 below its first point."""
    import numpy as np

    cs = np.linspace(lo, hi, n)
    vals = np.nan_to_num(np.array([hull_value(h, c) for c in cs]), nan=0.0)
    return float(np.trapezoid(vals, cs) / (hi - lo))


def sweep(pred: np.ndarray, cost: np.ndarray, truth: np.ndarray, lambdas: Sequence[float] = LAMBDAS) -> list[Point]:
    """(mean cost, mean true quality) of the cost-aware policy at every λ.

    ``pred``, ``cost`` and ``truth`` are (prompts, models) arrays: predicted quality, the cost of
    sending each prompt to each model, and the observed quality.
    """
    import numpy as np

    scale = float(cost.mean()) or 1.0
    idx = np.arange(len(pred))
    pts = []
    for lam in lambdas:
        choice = np.argmax(pred - lam * cost / scale, axis=1)
        pts.append((float(cost[idx, choice].mean()), float(truth[idx, choice].mean())))
    return pts


#: RouterArena's cost range ($ per 1,000 queries) of its log-normalised cost, and its β.
ARENA_C_MAX, ARENA_C_MIN, ARENA_BETA = 200.0, 0.0044, 0.1


def arena_score(
    cost_per_1k: float,
    accuracy: float,
    beta: float = ARENA_BETA,
    c_max: float = ARENA_C_MAX,
    c_min: float = ARENA_C_MIN,
) -> float:
    """RouterArena's score S_β of an operating point: the weighted harmonic mean of accuracy A and
    log-normalised cost C, ``S = (1 + β)·A·C / (β·A + C)`` with
    ``C = (log2 c_max − log2 c) / (log2 c_max − log2 c_min)``, where c is the mean cost of 1,000
    queries in $ and (c_max, c_min) = ($200, $0.0044), β = 0.1. This is
    ``compute_arena_score`` of RouterArena's ``llm_evaluation/run.py`` (RouteWorks/RouterArena,
    arXiv 2510.00202), which its leaderboard ranks by (shown there ×100).

    Two edges, where RouterArena's code raises or leaves the formula's range: a cost of 0 (a free
    local model) counts as ``c_min`` (C = 1), and a point whose cost is at or above ``c_max``
    (C ≤ 0) scores 0.
    """
    import math

    c = max(float(cost_per_1k), c_min)
    norm = (math.log2(c_max) - math.log2(c)) / (math.log2(c_max) - math.log2(c_min))
    if norm <= 0 or accuracy <= 0:
        return 0.0
    return (1 + beta) * accuracy * norm / (beta * accuracy + norm)


def arena_best(points: Sequence[Point], lambdas: Sequence[float] | None = None) -> dict[str, float]:
    """The operating point with the highest RouterArena score among ``points`` ((mean cost per
    query, quality), e.g. :func:`sweep`'s): its score, quality, cost per 1,000 queries and, with
    ``lambdas``, its λ."""
    scores = [arena_score(1000 * c, q) for c, q in points]
    i = max(range(len(points)), key=lambda k: (scores[k], -points[k][0]))
    best = {"arena_score": scores[i], "quality": points[i][1], "cost_per_1k": 1000 * points[i][0]}
    if lambdas is not None:
        best["lam"] = float(lambdas[i])
    return best


@dataclass
class NModelEvaluation:
    """A router's quality–cost result on N models, beside the single models and the oracle."""

    router: str
    models: list[str]
    n_prompts: int
    singles: list[Point]  # (mean cost, quality) of always calling each model
    best_single: str
    router_hull: list[Point]
    oracle_hull: list[Point]
    aiq_router: float
    aiq_singles: float
    aiq_oracle: float
    quality_max: float
    quality_at_best_single_cost: float
    cost_to_match_best_single: float | None  # × the best single model's cost; None if never reached
    #: RouterArena score (:func:`arena_score`) of always calling each model, in ``models`` order
    arena_singles: list[float] = field(default_factory=list)
    #: the router's and the oracle's best-scoring points on the λ sweep (:func:`arena_best`)
    arena_router: dict[str, float] = field(default_factory=dict)
    arena_oracle: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_nmodel(
    router: str, models: list[str], pred: np.ndarray, cost: np.ndarray, truth: np.ndarray
) -> NModelEvaluation:
    """Judge per-model predictions ``pred`` with the cost-aware policy (module doc)."""
    import numpy as np

    singles = [(float(cost[:, j].mean()), float(truth[:, j].mean())) for j in range(len(models))]
    lo, hi = min(c for c, _ in singles), max(c for c, _ in singles)
    if hi <= lo:
        hi = lo + 1e-12
    best_j = int(np.argmax([q for _, q in singles]))
    router_pts, oracle_pts = sweep(pred, cost, truth), sweep(truth, cost, truth)
    rh, oh = hull(router_pts), hull(oracle_pts)
    reach = [c for c, q in rh if q >= singles[best_j][1]]
    return NModelEvaluation(
        router=router,
        models=list(models),
        n_prompts=int(len(truth)),
        singles=singles,
        best_single=models[best_j],
        router_hull=rh,
        oracle_hull=oh,
        aiq_router=aiq(rh, lo, hi),
        aiq_singles=aiq(hull(singles), lo, hi),
        aiq_oracle=aiq(oh, lo, hi),
        quality_max=max(q for _, q in rh),
        quality_at_best_single_cost=hull_value(rh, singles[best_j][0]),
        cost_to_match_best_single=(min(reach) / singles[best_j][0]) if reach else None,
        arena_singles=[arena_score(1000 * c, q) for c, q in singles],
        arena_router=arena_best(router_pts, LAMBDAS),
        arena_oracle=arena_best(oracle_pts, LAMBDAS),
    )


def _markdown(e: NModelEvaluation) -> str:
    best = e.singles[e.models.index(e.best_single)]
    match = "never" if e.cost_to_match_best_single is None else f"{e.cost_to_match_best_single:.2f}×"
    lines = [
        f"# N-model routing: {e.router}",
        "",
        f"{e.n_prompts} prompts, {len(e.models)} models; cost-aware policy argmax_m pred[m] − λ·cost[m]/mean cost, "
        f"λ swept over {len(LAMBDAS)} values. Costs are per query.",
        "",
        "| | quality | mean cost per query | AIQ (hull area / cost range) |",
        "|---|---|---|---|",
        f"| router hull | max {e.quality_max:.4f} | | **{e.aiq_router:.4f}** |",
        f"| single models' hull | | | {e.aiq_singles:.4f} |",
        f"| oracle hull | max {max(q for _, q in e.oracle_hull):.4f} | | {e.aiq_oracle:.4f} |",
        f"| best single model ({e.best_single}) | {best[1]:.4f} | {best[0]:.3g} | |",
        "",
        f"At the best single model's cost the router reaches quality {e.quality_at_best_single_cost:.4f}; "
        f"it matches that model's quality at {match} its cost.",
        "",
        *([str(e.extra["policy_line"]), ""] if e.extra.get("policy_line") else []),  # the router's own policy
        *_arena_lines(e),
        "| model | quality | mean cost per query | RouterArena score |",
        "|---|---|---|---|",
        *[
            f"| {m} | {q:.4f} | {c:.3g} | {_pct(a)} |"
            for m, (c, q), a in zip(e.models, e.singles, e.arena_singles or [float("nan")] * len(e.models))
        ],
        "",
    ]
    return "\n".join(lines)


def _pct(score: float) -> str:
    return "" if score != score else f"{100 * score:.2f}"


def _arena_lines(e: NModelEvaluation) -> list[str]:
    """The RouterArena table: the router's best point on the sweep, its own policy's point (when
    the report has one), the oracle's best point and the best single model by that score."""
    if not e.arena_router:
        return []
    rows = [("router, best point on the λ sweep", e.arena_router)]
    point = e.extra.get("policy") or {}
    if isinstance(point, dict) and "quality" in point and "cost" in point:
        q, c = float(point["quality"]), float(point["cost"])
        rows.append(
            (
                f"router, its policy {point.get('name')}",
                {"arena_score": arena_score(1000 * c, q), "quality": q, "cost_per_1k": 1000 * c},
            )
        )
    rows.append(("oracle, best point on the λ sweep", e.arena_oracle))
    out = [
        "RouterArena score (weighted harmonic mean of accuracy and log-normalised cost per 1,000 queries, "
        "β = 0.1; ×100 as on its leaderboard):",
        "",
        "| operating point | RouterArena score | quality | $ per 1,000 queries |",
        "|---|---|---|---|",
        *[f"| {name} | {_pct(p['arena_score'])} | {p['quality']:.4f} | {p['cost_per_1k']:.4g} |" for name, p in rows],
    ]
    if e.arena_singles:
        j = max(range(len(e.models)), key=lambda k: e.arena_singles[k])
        c, q = e.singles[j]
        out.append(
            f"| best single model by this score ({e.models[j]}) | {_pct(e.arena_singles[j])} "
            f"| {q:.4f} | {1000 * c:.4g} |"
        )
    return [*out, ""]


def _plot(e: NModelEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, h, style in (("router", e.router_hull, "-o"), ("oracle", e.oracle_hull, "--")):
        ax.plot([c for c, _ in h], [q for _, q in h], style, label=f"{name} hull", markersize=3)
    ax.scatter([c for c, _ in e.singles], [q for _, q in e.singles], color="black", zorder=3, label="single models")
    for m, (c, q) in zip(e.models, e.singles):
        ax.annotate(m.split("/")[-1][:24], (c, q), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mean cost per query")
    ax.set_ylabel("mean quality")
    ax.set_title(f"quality vs cost: {e.router} (AIQ {e.aiq_router:.3f}, oracle {e.aiq_oracle:.3f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


#: files :func:`write_nmodel_report` writes
NMODEL_FILES = ("nmodel.json", "nmodel.md", "cost-quality.png")


def write_nmodel_report(e: NModelEvaluation, output: Path, meta: dict[str, Any] | None = None) -> list[Path]:
    """``nmodel.json``, ``nmodel.md`` and ``cost-quality.png`` into ``output`` (each atomically)."""
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "nmodel.json", {**(meta or {}), **e.to_dict()})
    atomic_write_text(output / "nmodel.md", _markdown(e))
    paths = [output / "nmodel.json", output / "nmodel.md"]
    try:
        _plot(e, output / "cost-quality.png")
        paths.append(output / "cost-quality.png")
    except ImportError:  # matplotlib is the `plot` extra
        pass
    return paths
