"""The quality-against-strong-call-share plot (and quality against cost, when prices are known)
of ``report.md`` and the zoo's ``curves.png``. matplotlib is imported inside the function."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tela_core.infra.io import atomic_open

from .replay import Evaluation

__all__ = ["plot_curves", "PER"]

#: the cost axis is in dollars per this many queries, as the tables of ``report.md`` are
PER = 1000


def plot_curves(
    curves: Mapping[str, Evaluation | Mapping[str, Any]],
    path: Path,
    *,
    title: str = "",
    q_weak: float | None = None,
    q_strong: float | None = None,
    point: Mapping[str, Any] | None = None,
) -> Path:
    """A PNG of quality against strong-call share for each named evaluation (and, when costs are
    known, quality against cost in $ per 1,000 queries beside it). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = {k: (v.to_dict() if isinstance(v, Evaluation) else dict(v)) for k, v in curves.items()}
    with_cost = any(v.get("cost_fine") for v in items.values())
    fig, axes = plt.subplots(1, 2 if with_cost else 1, figsize=(11 if with_cost else 6.5, 4.5), squeeze=False)
    ax = axes[0][0]
    styles = {"random": dict(color="grey", linestyle="--"), "oracle": dict(color="black", linestyle=":")}
    for name, ev in items.items():
        xs = ev.get("p_fine") or ev["p"]
        ys = ev.get("quality_fine") or ev["quality"]
        ax.plot(xs, ys, label=f"{name} (APGR {ev['apgr']:.3f})", **styles.get(name, {}))
    if q_weak is not None:
        ax.axhline(q_weak, color="tab:red", linewidth=0.7, alpha=0.6, label=f"weak only ({q_weak:.3f})")
    if q_strong is not None:
        ax.axhline(q_strong, color="tab:green", linewidth=0.7, alpha=0.6, label=f"strong only ({q_strong:.3f})")
    if point:
        ax.plot([point["strong_share"]], [point["quality"]], "o", color="tab:purple", label="saved policy")
    ax.set_xlabel("share of prompts sent to the strong model")
    ax.set_ylabel("quality (mean outcome)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    if with_cost:
        cx = axes[0][1]
        for name, ev in items.items():  # $ per 1,000 queries, as report.md's tables (per query needed a 1e-5 offset)
            if ev.get("cost_fine"):
                cx.plot(
                    [PER * c for c in ev["cost_fine"]],
                    ev.get("quality_fine") or ev["quality"],
                    label=name,
                    **styles.get(name, {}),
                )
        if point and point.get("cost") is not None:
            cx.plot([PER * point["cost"]], [point["quality"]], "o", color="tab:purple")
        cx.ticklabel_format(axis="x", style="plain", useOffset=False)
        cx.set_xlabel("mean cost ($ per 1,000 queries)")
        cx.set_ylabel("quality (mean outcome)")
        cx.grid(alpha=0.3)
        cx.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path
