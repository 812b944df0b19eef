"""Judging routers on real outcome data: replay, baselines, reports and plots.

A library: ``tela eval`` and ``tela zoo`` (and anyone's script) call the same functions, so every
router family is judged the same way, beside the same baselines:

- :func:`evaluate_scores` replays one router's ``w`` against per-prompt weak/strong outcomes
  (and costs) and returns an :class:`Evaluation` (:mod:`tela_core.metrics` definitions).
- :func:`random_baseline` (mean over numpy ``default_rng`` seeds 0..9) and :func:`oracle_scores`
  (``w = strong − weak``) are the two baselines every report shows.
- :func:`evaluate` does the same from an ``(n, m)`` outcome matrix and model names.
- :func:`score_prompts` scores prompts through any :class:`~tela_core.components.Scorer` in
  chunks with a progress bar, caching the result by content hash (router files + prompts), so a
  second eval of the same router and data does not run the model again.
- :func:`build_report`, :func:`write_report` (``report.json``, ``report.md``, ``quality.png``)
  and :func:`plot_curves` turn evaluations into files.

numpy and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from . import metrics
from .errors import TelaError
from .targets import model_names, resolve_pair  # the one pair rule, re-exported for eval's callers

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .components import Scorer, Scores
    from .records import Record

__all__ = [
    "RANDOM_SEEDS",
    "REPORT_FILES",
    "Evaluation",
    "OutcomeArrays",
    "outcome_arrays",
    "model_names",
    "resolve_pair",
    "evaluate_scores",
    "evaluate",
    "random_baseline",
    "oracle_scores",
    "random_scores",
    "policy_point",
    "score_prompts",
    "router_hash",
    "score_cache_dir",
    "build_report",
    "render_markdown",
    "write_report",
    "plot_curves",
]

#: seeds of the random baseline (numpy ``default_rng(seed).random(n)``), as docs/metrics.md says
RANDOM_SEEDS: tuple[int, ...] = tuple(range(10))
#: what :func:`write_report` writes
REPORT_FILES: tuple[str, ...] = ("report.json", "report.md", "quality.png")


# ------------------------------------------------------------------------------------------------
# Outcomes
# ------------------------------------------------------------------------------------------------


@dataclass
class OutcomeArrays:
    """Per-prompt outcomes (and costs, when every prompt has them) of the weak and strong model."""

    weak_model: str
    strong_model: str
    weak: "np.ndarray"
    strong: "np.ndarray"
    weak_cost: "np.ndarray | None" = None
    strong_cost: "np.ndarray | None" = None


def outcome_arrays(records: Sequence["Record"], weak_model: str, strong_model: str) -> OutcomeArrays:
    """Pull the weak/strong outcomes (and costs) out of outcome records.

    Raises :class:`TelaError` naming the first record that lacks an outcome for either model.
    Costs are kept only when every record has a cost for both models.
    """
    import numpy as np

    if not records:
        raise TelaError("no records to evaluate")
    weak, strong, wc, sc = [], [], [], []
    has_cost = True
    for i, r in enumerate(records):
        out = r.outcomes or {}
        for m in (weak_model, strong_model):
            if m not in out:
                where = r.id or f"record {i + 1}"
                known = ", ".join(sorted(out)) or "none"
                raise TelaError(f"{where}: no outcome for model {m!r} (outcomes for: {known}); outcome data is needed to evaluate")
        weak.append(out[weak_model])
        strong.append(out[strong_model])
        costs = r.costs or {}
        if has_cost and weak_model in costs and strong_model in costs:
            wc.append(costs[weak_model])
            sc.append(costs[strong_model])
        else:
            has_cost = False
    return OutcomeArrays(
        weak_model,
        strong_model,
        np.asarray(weak, dtype=float),
        np.asarray(strong, dtype=float),
        np.asarray(wc, dtype=float) if has_cost else None,
        np.asarray(sc, dtype=float) if has_cost else None,
    )


# ------------------------------------------------------------------------------------------------
# Evaluations
# ------------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One router's replayed curve and metrics (definitions: :mod:`tela_core.metrics`).

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


def _cost_curve(w: "np.ndarray", weak_cost: "np.ndarray", strong_cost: "np.ndarray", steps: int) -> list[float]:
    import numpy as np

    order = metrics.routing_order(w)
    cum = np.concatenate([[0.0], np.cumsum((strong_cost - weak_cost)[order])])
    ks = metrics.strong_counts(len(w), steps)
    return [float((weak_cost.sum() + cum[k]) / len(w)) for k in ks]


def evaluate_scores(
    w: "np.ndarray",
    weak: "np.ndarray",
    strong: "np.ndarray",
    *,
    weak_cost: "np.ndarray | None" = None,
    strong_cost: "np.ndarray | None" = None,
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


def oracle_scores(weak: "np.ndarray", strong: "np.ndarray") -> "np.ndarray":
    """The oracle's ``w``: strong − weak outcome (ties broken stably by the metrics)."""
    import numpy as np

    return np.asarray(strong, dtype=float) - np.asarray(weak, dtype=float)


def random_scores(n: int, seed: int) -> "np.ndarray":
    """A random router's ``w`` for ``n`` prompts: ``numpy.random.default_rng(seed).random(n)``."""
    import numpy as np

    return np.random.default_rng(seed).random(n)


def random_baseline(
    weak: "np.ndarray",
    strong: "np.ndarray",
    *,
    seeds: Iterable[int] = RANDOM_SEEDS,
    weak_cost: "np.ndarray | None" = None,
    strong_cost: "np.ndarray | None" = None,
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


def evaluate(
    w: "np.ndarray",
    outcomes: "np.ndarray",
    models: Sequence[str],
    *,
    weak: str | None = None,
    strong: str | None = None,
    costs: "np.ndarray | None" = None,
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
    return {
        "router": evaluate_scores(w, wo, so, weak_cost=wc, strong_cost=sc, name=name).to_dict(),
        "random": random_baseline(wo, so, weak_cost=wc, strong_cost=sc).to_dict(),
        "oracle": evaluate_scores(oracle_scores(wo, so), wo, so, weak_cost=wc, strong_cost=sc, name="oracle").to_dict(),
    }


def policy_point(strong_chosen: "np.ndarray", data: OutcomeArrays) -> dict[str, Any]:
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


# ------------------------------------------------------------------------------------------------
# Scoring with a cache
# ------------------------------------------------------------------------------------------------


def router_hash(artifact_dir: Path) -> str:
    """SHA-256 over a router dir's files (names and bytes), leaving out ``policy.json``: the policy
    does not change the scores, so calibrating a router keeps its cached scores valid."""
    from .artifact import POLICY

    h = hashlib.sha256()
    root = Path(artifact_dir)
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == POLICY or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def score_cache_dir(fallback: Path | None = None) -> Path | None:
    """``$TELA_CACHE/scores`` when ``TELA_CACHE`` is set, else ``fallback`` (may be None: no cache)."""
    root = os.environ.get("TELA_CACHE")
    if root:
        return Path(root).expanduser() / "scores"
    return fallback


def _cache_key(router_id: str, scorer: "Scorer", prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    opts: Any = getattr(scorer, "options", None)
    settings = opts.model_dump(mode="json") if hasattr(opts, "model_dump") else {}
    for speed_only in ("batch_size", "max_batch_tokens"):  # change how fast, not what is scored
        settings.pop(speed_only, None)
    opts_json = json.dumps(settings, sort_keys=True, default=str)
    h.update(f"{scorer.name}\0{router_id}\0{opts_json}\0{len(prompts)}\0".encode())
    for p in prompts:
        h.update(hashlib.sha256(p.encode("utf-8", "surrogatepass")).digest())
    return h.hexdigest()[:32]


def score_prompts(
    scorer: "Scorer",
    prompts: Sequence[str],
    *,
    router_id: str | None = None,
    cache_dir: Path | None = None,
    chunk_size: int = 128,
    progress: bool = True,
    description: str = "scoring",
) -> tuple["Scores", dict[str, Any]]:
    """Score ``prompts`` with ``scorer`` in chunks (a rich progress bar on stderr), reusing a cached
    result when ``router_id`` (e.g. :func:`router_hash`) and ``cache_dir`` are given.

    Returns the scores and info ``{"cached": bool, "seconds": float, "key": str | None}``.
    """
    import numpy as np

    from .components import Scores

    key = _cache_key(router_id, scorer, prompts) if router_id and cache_dir else None
    if not key:
        return _score_uncached(scorer, prompts, key, None, chunk_size, progress, description)
    path = Path(cache_dir) / f"{key}.npz"  # type: ignore[arg-type]
    hit = _cached_scores(path, len(prompts))
    if hit is not None:
        return hit, {"cached": True, "seconds": 0.0, "key": key}
    from .locks import cache_lock

    # One writer per entry: a second eval of the same router and prompts waits, then reads.
    with cache_lock(path, on_wait=lambda who: _warn(f"waiting for {who}, which is scoring the same prompts")) as held:
        if held is None:
            _warn(f"cannot write the score cache in {path.parent}; continuing without it")
        hit = _cached_scores(path, len(prompts)) if held is not None else None
        if hit is not None:
            return hit, {"cached": True, "seconds": 0.0, "key": key}
        return _score_uncached(scorer, prompts, key, path if held is not None else None, chunk_size, progress, description)


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def _cached_scores(path: Path, n: int) -> "Scores | None":
    """The cached scores in ``path`` when it holds ``n`` of them; None when absent or damaged (a
    damaged entry is dropped and computed again)."""
    import numpy as np

    from .components import Scores

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            w = z["w"]
            probs = z["probs"] if "probs" in z.files else None
        if len(w) == n and (probs is None or len(probs) == n):
            return Scores(w=w, probs=probs)
    except Exception:  # truncated, garbage or foreign: BadZipFile, EOFError, KeyError, ValueError, OSError
        pass
    _warn(f"damaged score cache entry {path}; scoring again")
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def _score_uncached(
    scorer: "Scorer", prompts: Sequence[str], key: str | None, path: Path | None, chunk_size: int, progress: bool,
    description: str,
) -> tuple["Scores", dict[str, Any]]:
    import numpy as np

    from .components import Scores

    t0 = time.perf_counter()
    ws: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    has_probs = True
    chunks = [prompts[i : i + chunk_size] for i in range(0, len(prompts), chunk_size)]
    bar = _progress(progress)
    with bar:
        task = bar.add_task(description, total=len(prompts))
        for chunk in chunks:
            s = scorer.score(list(chunk))
            w = np.asarray(s.w, dtype=float).reshape(-1)
            if len(w) != len(chunk):
                raise TelaError(f"scorer {scorer.name!r} returned {len(w)} scores for {len(chunk)} prompts")
            ws.append(w)
            if s.probs is None:
                has_probs = False
            else:
                ps.append(np.asarray(s.probs, dtype=float))
            bar.advance(task, len(chunk))
    w_all = np.concatenate(ws) if ws else np.zeros(0)
    probs_all = np.concatenate(ps) if has_probs and ps else None
    seconds = time.perf_counter() - t0
    if path is not None:
        try:
            _save_npz(path, w_all, probs_all)
        except OSError as e:
            _warn(f"cannot write the score cache in {path.parent} ({e.strerror or e}); continuing without it")
    return Scores(w=w_all, probs=probs_all), {"cached": False, "seconds": seconds, "key": key}


def _save_npz(path: Path, w: "np.ndarray", probs: "np.ndarray | None") -> None:
    import numpy as np

    from .io import atomic_open

    arrays = {"w": w} if probs is None else {"w": w, "probs": probs}
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # a binary file object


def _progress(enabled: bool) -> Any:
    from .progress import make_progress

    return make_progress(enabled)


# ------------------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------------------


def build_report(
    evaluations: Sequence[Evaluation],
    *,
    data: OutcomeArrays,
    meta: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict ``report.json`` holds: the setting, each router's evaluation (the router
    first, then the baselines) and, when given, where the router's saved policy lands."""
    report: dict[str, Any] = {
        "tela_report": 1,
        **dict(meta or {}),
        "weak_model": data.weak_model,
        "strong_model": data.strong_model,
        "n": int(len(data.weak)),
        "q_weak": float(data.weak.mean()),
        "q_strong": float(data.strong.mean()),
        "cost_weak": float(data.weak_cost.mean()) if data.weak_cost is not None else None,
        "cost_strong": float(data.strong_cost.mean()) if data.strong_cost is not None else None,
        "definitions": "docs/metrics.md: top ⌊p·n⌉ by w to strong (stable ties); APGR/AUC trapezoid on p=0,0.1,…,1; CPT on a 0.01 grid",
        "routers": [e.to_dict() for e in evaluations],
    }
    if policy is not None:
        report["policy"] = dict(policy)
    return report


def _fmt(x: Any, spec: str) -> str:
    if x is None:
        return "–"
    try:
        if x != x:  # NaN
            return "–"
    except TypeError:
        pass
    return format(x, spec)


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: the summary table, PGR (and cost) at each p, and the policy point."""
    routers = report["routers"]
    lines = [
        f"# Router evaluation: {report.get('router', routers[0]['name'])}",
        "",
        f"Data: `{report.get('data', '?')}` (source `{report.get('source', '?')}`"
        + (f", protocol `{report['protocol']}`" if report.get("protocol") else "")
        + f"), {report['n']} prompts. Weak `{report['weak_model']}` {report['q_weak']:.4f}, "
        f"strong `{report['strong_model']}` {report['q_strong']:.4f}.",
        "",
        "APGR and AUC: trapezoid on p = 0, 0.1, …, 1; CPT on a 0.01 grid; random = mean of "
        f"{len(RANDOM_SEEDS)} seeds (docs/metrics.md).",
        "",
        "| router | APGR | CPT(50%) | CPT(80%) | AUC |",
        "|---|---|---|---|---|",
    ]
    for r in routers:
        lines.append(f"| {r['name']} | {_fmt(r['apgr'], '.3f')} | {_fmt(r['cpt50'], '.2f')} | {_fmt(r['cpt80'], '.2f')} | {_fmt(r['auc'], '.4f')} |")
    lines += ["", "PGR at each strong-call share p:", ""]
    ps = routers[0]["p"]
    lines.append("| router | " + " | ".join(f"{p:.1f}" for p in ps) + " |")
    lines.append("|---|" + "---|" * len(ps))
    for r in routers:
        lines.append(f"| {r['name']} | " + " | ".join(_fmt(x, ".3f") for x in r["pgr_grid"]) + " |")
    if any(r.get("cost") for r in routers):
        lines += ["", "Mean cost per query at each p, in $ per 1,000 queries:", ""]
        lines.append("| router | " + " | ".join(f"{p:.1f}" for p in ps) + " |")
        lines.append("|---|" + "---|" * len(ps))
        for r in routers:
            if r.get("cost"):
                lines.append(f"| {r['name']} | " + " | ".join(_fmt(1000 * x, ".4g") for x in r["cost"]) + " |")
    pol = report.get("policy")
    if pol and pol.get("point"):
        pt = pol["point"]
        lines += [
            "",
            f"Saved policy `{pol.get('name')}` {json.dumps(pol.get('options', {}))}: strong-call share "
            f"{pt['strong_share']:.3f}, quality {pt['quality']:.4f}, PGR {_fmt(pt.get('pgr'), '.3f')}"
            + (f", ${1000 * pt['cost']:.4g} per 1,000 queries" if pt.get("cost") is not None else "")
            + ".",
        ]
    lines += ["", "![quality against strong-call share](quality.png)", ""]
    return "\n".join(lines)


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
    known, quality against cost per query beside it). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_open

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
        for name, ev in items.items():
            if ev.get("cost_fine"):
                cx.plot(ev["cost_fine"], ev.get("quality_fine") or ev["quality"], label=name, **styles.get(name, {}))
        if point and point.get("cost") is not None:
            cx.plot([point["cost"]], [point["quality"]], "o", color="tab:purple")
        cx.set_xlabel("mean cost per query ($)")
        cx.set_ylabel("quality (mean outcome)")
        cx.grid(alpha=0.3)
        cx.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``quality.png`` into ``out_dir`` (each atomically).

    Callers check for existing files first (:func:`tela_core.io.check_can_write`).
    """
    from .io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    routers = {r["name"]: r for r in report["routers"]}
    pol = report.get("policy") or {}
    png = plot_curves(
        routers,
        out / "quality.png",
        title=f"{report.get('router', '')} on {Path(str(report.get('data', ''))).name} ({report['n']} prompts)",
        q_weak=report.get("q_weak"),
        q_strong=report.get("q_strong"),
        point=pol.get("point"),
    )
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report))
    return [out / "report.json", out / "report.md", png]

