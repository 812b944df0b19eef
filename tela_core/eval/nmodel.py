"""N-model routing judged by quality against cost: the cost-aware policy, its hull and AIQ.

With more than two models a router predicts every model's quality on a prompt (a family's
``predict_models``); the cost-aware policy picks, per prompt,
``argmax_m predicted_quality[m] − λ · cost[m] / mean_cost``, and sweeping λ from 0 (best predicted
quality whatever it costs) to large (cheapest) traces (mean cost, mean quality) points. Their upper
non-decreasing convex hull is what the router can deliver at each budget (mixing two policies
interpolates between their points), and the hull's mean height over the single models' cost range
is RouterBench's AIQ (``docs/metrics.md``). The single models and the oracle (the same policy on the
true outcomes) are computed on the same prompts, so every number in a report is comparable.
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
    rh = hull(sweep(pred, cost, truth))
    oh = hull(sweep(truth, cost, truth))
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
        "| model | quality | mean cost per query |",
        "|---|---|---|",
        *[f"| {m} | {q:.4f} | {c:.3g} |" for m, (c, q) in zip(e.models, e.singles)],
        "",
    ]
    return "\n".join(lines)


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
