"""The router zoo: train several families on one dataset, evaluate each the same way, compare.

:func:`run_zoo` is what ``tela zoo`` and ``bench/zoo_mmlu.py`` call. It splits the records (a named
protocol such as ``mmlu-heldout``, or a seeded 10% split), then for every family: ``fit`` on the
train part (timed), ``score`` the eval prompts (timed), and evaluate the scores with
:mod:`tela_core.eval.replay` beside the random and oracle baselines. Results go to one directory:
``results.json``, ``report.md``, ``curves.png`` and one artifact dir per family under ``routers/``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from tela_core.infra.errors import TelaError
from tela_core.data.records import Record
from tela_core.routing.targets import resolve_pair

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.routing.router import Router

    from .parallel import ScoreLaunch

__all__ = ["FamilyResult", "ZooResult", "split_for_zoo", "run_zoo", "write_report"]


@dataclass
class FamilyResult:
    """One family's row in the comparison."""

    family: str
    apgr: float
    cpt50: float
    cpt80: float
    auc: float
    train_seconds: float | None  # None: an added artifact whose manifest records no training time
    score_seconds: float
    n_eval: int
    options: dict[str, Any] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)  # PGR on the p grid 0, 0.1, ..., 1
    evaluation: dict[str, Any] = field(default_factory=dict, repr=False)  # tela_core.eval.Evaluation


@dataclass
class ZooResult:
    """Every family's result plus the baselines and the split that produced them."""

    protocol: str
    weak: str
    strong: str
    n_train: int
    n_eval: int
    q_weak: float
    q_strong: float
    families: list[FamilyResult]
    baselines: list[FamilyResult]


def split_for_zoo(records: Sequence[Record], protocol: str | None, seed: int = 42) -> tuple[list[Record], list[Record]]:
    """(train, eval): the protocol's split when named, else a seeded 10% random split."""
    if protocol:
        from tela_core.data import protocols

        return protocols.split(protocol, records)
    from tela_core.data.sampling import split

    return split(records, eval_fraction=0.1, seed=seed)


def _recorded_train_seconds(manifest: Mapping[str, Any]) -> float | None:
    """Training time an artifact's manifest records (zoo families: ``train_seconds``; ``tela run``
    with a backend: its last attempt's ``train_seconds``), or None when it records none."""
    for value in (manifest.get("train_seconds"), (manifest.get("training") or {}).get("train_seconds")):
        if isinstance(value, (int, float)):
            return float(value)
    return None


def train_s_of(row: FamilyResult) -> str:
    """``"12s"`` or ``"—"`` (training time not recorded)."""
    return "—" if row.train_seconds is None else f"{row.train_seconds:.0f}s"


def _row(name: str, w: Any, weak_o: Any, strong_o: Any, train_s: float | None, score_s: float, options: Mapping[str, Any]) -> FamilyResult:
    from . import replay

    ev = replay.evaluate_scores(w, weak_o, strong_o)
    return FamilyResult(
        family=name,
        apgr=ev.apgr,
        cpt50=ev.cpt50,
        cpt80=ev.cpt80,
        auc=ev.auc,
        train_seconds=None if train_s is None else round(train_s, 2),
        score_seconds=round(score_s, 2),
        n_eval=len(w),
        options=dict(options),
        curve=list(ev.pgr_grid),
        evaluation=ev.to_dict(),
    )


def run_zoo(
    records: Sequence[Record],
    families: Sequence[str],
    output: Path,
    *,
    protocol: str | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    weak: str | None = None,
    strong: str | None = None,
    on_event: Callable[[str], None] | None = None,
    routers: Mapping[str, Path] | None = None,
    trust_remote_code: bool = False,
    launch: "ScoreLaunch | None" = None,
) -> ZooResult:
    """Train, score and evaluate every family; write the report into ``output``.

    ``routers`` adds already-trained artifacts (name -> artifact dir), e.g. a ``score-token`` router
    from ``tela run``, which a backend trains and the zoo cannot: they are scored and evaluated on the
    same eval prompts, with the training time their manifest records. Whoever trained them is
    responsible for keeping the eval prompts out of their training data. ``trust_remote_code`` is
    the user's opt-in for those routers' own model code (:meth:`tela_core.routing.router.Router.load`).
    ``launch`` (:class:`~tela_core.eval.parallel.ScoreLaunch`) scores the eval prompts on launched
    ranks, through the score cache when ``TELA_CACHE`` is set; the score time then includes the launch.
    """
    import numpy as np

    from tela_core.plugins.discovery import get_registry

    say = on_event or (lambda _m: None)
    ranks = launch is not None and launch.parallel
    reg = get_registry()
    for fam in families:
        cls = reg.get("scorer", fam)  # unknown names fail before any training
        if getattr(cls, "uses_backend", False):
            raise TelaError(
                f"family {fam!r} is trained by a backend; train it with `tela run`, then add it here with "
                f"--router {fam}=RUN_DIR"
            )
    from tela_core.routing.artifact import read_manifest
    from tela_core.data.fingerprint import record_training_prompts
    from tela_core.routing.router import Router

    extra = dict(routers or {})
    for name, path in extra.items():
        if name in families:
            raise TelaError(f"--router {name}: the name is also in --families; pick another name")
        read_manifest(Path(path))  # a missing or foreign directory fails before any training
    train, evalr = split_for_zoo(records, protocol)
    if not train or not evalr:
        raise TelaError(f"the split left {len(train)} train and {len(evalr)} eval records; need both")
    w_name, s_name = resolve_pair(train, weak, strong)
    weak_o = np.array([(r.outcomes or {})[w_name] for r in evalr], dtype=np.float64)
    strong_o = np.array([(r.outcomes or {})[s_name] for r in evalr], dtype=np.float64)
    prompts = [r.prompt for r in evalr]
    say(f"split: {len(train)} train, {len(evalr)} eval records ({protocol or 'random 10%'}); weak {w_name}, strong {s_name}")
    from tela_core.routing.operating_point import small_sample_warning

    few = small_sample_warning(len(evalr), "the comparison", "differences between families are mostly noise; give the zoo more records")
    if few:
        say(few)
    results: list[FamilyResult] = []
    for fam in families:
        opts = {"weak": w_name, "strong": s_name, **dict((options or {}).get(fam, {}))}
        scorer = reg.create("scorer", fam, opts)
        say(f"{fam}: training on {len(train)} records")
        t0 = time.perf_counter()
        final = output / "routers" / fam
        # Train into a hidden staging dir and move it into place only once fit() returns, so a
        # family that fails (or a killed run) leaves no half-written router behind.
        stage = final.parent / f".{fam}.partial-{uuid.uuid4().hex[:8]}"
        try:
            scorer.fit(train, stage, {})
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        t1 = time.perf_counter()
        record_training_prompts(stage, (r.prompt for r in train))  # eval/calibrate warn on these prompts
        if final.exists():  # a --force rerun, or a rerun after a failed one (no report was written)
            shutil.rmtree(final)
        os.replace(stage, final)
        loaded = Router.load(final, load_scorer=not ranks)  # score what was saved, as a user would
        t2 = time.perf_counter()
        w = _score(loaded, prompts, launch)
        t3 = time.perf_counter()
        row = _row(fam, w, weak_o, strong_o, t1 - t0, t3 - t2, scorer.options.model_dump())
        results.append(row)
        say(f"{fam}: APGR {row.apgr:.3f} (train {train_s_of(row)}, score {row.score_seconds:.1f}s)")
    for name, path in extra.items():
        manifest = read_manifest(Path(path))
        say(f"{name}: scoring {len(prompts)} prompts with the router in {path}")
        router = Router.load(Path(path), trust_remote_code=trust_remote_code, load_scorer=not ranks)
        t2 = time.perf_counter()
        w = _score(router, prompts, launch)
        t3 = time.perf_counter()
        opts = {"artifact": str(path), "scorer": manifest.get("scorer"), **(manifest.get("scorer_options") or {})}
        row = _row(name, w, weak_o, strong_o, _recorded_train_seconds(manifest), t3 - t2, opts)
        results.append(row)
        say(f"{name}: APGR {row.apgr:.3f} (score {row.score_seconds:.1f}s)")
    from . import replay

    base = []
    for name, base_w in (("random", None), ("oracle", replay.oracle_scores(weak_o, strong_o))):
        if base_w is None:
            ev = replay.random_baseline(weak_o, strong_o)
        else:
            ev = replay.evaluate_scores(base_w, weak_o, strong_o)
        base.append(
            FamilyResult(name, ev.apgr, ev.cpt50, ev.cpt80, ev.auc, 0.0, 0.0, len(prompts), curve=list(ev.pgr_grid), evaluation=ev.to_dict())
        )
    result = ZooResult(
        protocol=protocol or "random-10%",
        weak=w_name,
        strong=s_name,
        n_train=len(train),
        n_eval=len(evalr),
        q_weak=float(weak_o.mean()),
        q_strong=float(strong_o.mean()),
        families=results,
        baselines=base,
    )
    write_report(result, output)
    return result


def _score(router: "Router", prompts: Sequence[str], launch: "ScoreLaunch | None") -> "np.ndarray":
    """``w`` of ``prompts``: in this process, or on ``launch``'s ranks (which load ``router.path``)."""
    import numpy as np

    if launch is None or not launch.parallel:
        return router.score(prompts)
    from .score_cache import router_hash, score_cache_dir, score_prompts

    cache = score_cache_dir(None)
    scores, _info = score_prompts(router.scorer, prompts, router_id=router_hash(router.path) if cache else None,
                                  cache_dir=cache, progress=False, launch=launch, router_dir=router.path)
    return np.asarray(scores.w, dtype=float).reshape(-1)


def table_rows(result: ZooResult) -> list[list[str]]:
    rows = []
    for r in sorted(result.families, key=lambda r: -r.apgr) + result.baselines:
        trained = any(r is f for f in result.families)
        rows.append(
            [
                r.family,
                f"{r.apgr:.3f}",
                f"{r.cpt50:.2f}",
                f"{r.cpt80:.2f}",
                (f"{r.train_seconds:.1f}" if r.train_seconds is not None else "—") if trained else "",
                f"{r.score_seconds:.1f}" if trained else "",
            ]
        )
    return rows


HEADER = ["family", "APGR", "CPT(50%)", "CPT(80%)", "train s", "score s"]


def write_report(result: ZooResult, output: Path) -> None:
    """``results.json``, ``report.md`` and ``curves.png`` (quality vs strong-call share, every family,
    random and oracle) in ``output``."""
    from tela_core.infra.io import atomic_write_json, atomic_write_text

    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "results.json", asdict(result))
    lines = [
        f"# Router zoo: {result.protocol}",
        "",
        f"{result.n_train} training and {result.n_eval} evaluation prompts; weak `{result.weak}` "
        f"({result.q_weak:.4f}), strong `{result.strong}` ({result.q_strong:.4f}). "
        "APGR on the grid p = 0, 0.1, …, 1; CPT on a 0.01 grid (docs/metrics.md). Times: wall seconds on this machine.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    lines += ["", "![quality against strong-call share](curves.png)", ""]
    atomic_write_text(output / "report.md", "\n".join(lines))
    _plot(result, output / "curves.png")


def _plot(result: ZooResult, path: Path) -> None:
    from .plots import plot_curves

    curves = {r.family: r.evaluation for r in result.families + result.baselines}
    plot_curves(
        curves,
        path,
        title=f"router zoo, {result.protocol} ({result.n_eval} prompts)",
        q_weak=result.q_weak,
        q_strong=result.q_strong,
    )


def result_table_json(result: ZooResult) -> str:
    """The comparison as JSON (for ``tela zoo --json``)."""
    from tela_core.infra.io import dumps_json

    return dumps_json(asdict(result), indent=2)  # an undefined metric is null, as in results.json
