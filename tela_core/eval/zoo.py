"""The router zoo: train several families on one dataset, evaluate each the same way, compare.

:func:`run_zoo` is what ``tela zoo`` and ``bench/zoo_mmlu.py`` call. It splits the records (a named
protocol such as ``mmlu-heldout``, or a seeded 10% split), then for every family: ``fit`` on the
train part (timed), ``score`` the eval prompts (timed), and evaluate the scores with
:mod:`tela_core.eval.replay` beside the random and oracle baselines (:func:`~tela_core.eval.replay.baselines`,
as ``tela eval`` shows them). Results go to one directory: ``results.json``, ``report.md``,
``curves.png`` and one artifact dir per family under ``routers/``.

Each step is a function of its own (:func:`check_families`, :func:`check_routers`,
:func:`split_outcomes`, :func:`train_family`, :func:`score_router`, :func:`family_result`,
:func:`baseline_results`, :func:`write_report`), so a script can run or test one alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.components import LoadContext, Scorer
from tela_core.data import protocols
from tela_core.data.fingerprint import record_training_prompts
from tela_core.data.records import Record
from tela_core.data.sampling import split
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json, atomic_write_text, dumps_json, staged_dir
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest
from tela_core.routing.operating_point import small_sample_warning
from tela_core.routing.router import Router
from tela_core.routing.targets import resolve_pair

from .outcomes import OutcomeArrays, outcome_arrays
from .plots import plot_curves
from .replay import Evaluation, baselines, evaluate_scores
from .score_cache import router_hash, score_cache_dir, score_prompts

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .parallel import ScoreLaunch

__all__ = [
    "FamilyResult",
    "ZooResult",
    "ZooSplit",
    "split_for_zoo",
    "run_zoo",
    "check_families",
    "check_routers",
    "split_outcomes",
    "train_family",
    "score_router",
    "family_result",
    "baseline_results",
    "write_report",
]

#: what an event callback receives: one line of progress
Say = Callable[[str], None]


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


@dataclass
class ZooSplit:
    """What every family is trained and judged on: the train records, the eval prompts and their
    weak/strong outcomes (and costs, when every eval record has both)."""

    protocol: str
    train: list[Record]
    prompts: list[str]
    data: OutcomeArrays


def split_for_zoo(records: Sequence[Record], protocol: str | None, seed: int = 42) -> tuple[list[Record], list[Record]]:
    """(train, eval): the protocol's split when named, else a seeded 10% random split."""
    if protocol:
        return protocols.split(protocol, records)

    return split(records, eval_fraction=0.1, seed=seed)


def run_zoo(
    records: Sequence[Record],
    families: Sequence[str],
    output: Path,
    *,
    protocol: str | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    weak: str | None = None,
    strong: str | None = None,
    on_event: Say | None = None,
    routers: Mapping[str, Path] | None = None,
    trust_remote_code: bool = False,
    launch: ScoreLaunch | None = None,
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
    say = on_event or (lambda _m: None)
    check_families(families)  # unknown names and bad artifacts fail before any training
    added = check_routers(routers or {}, families)
    split = split_outcomes(records, protocol, weak, strong, say)
    rows = []
    for fam in families:
        opts = {"weak": split.data.weak_model, "strong": split.data.strong_model, **dict((options or {}).get(fam, {}))}
        say(f"{fam}: training on {len(split.train)} records")
        scorer, train_s = train_family(fam, opts, split.train, output / "routers" / fam)
        w, score_s = score_router(output / "routers" / fam, split.prompts, launch)
        rows.append(family_result(fam, w, split.data, train_s, score_s, scorer.options.model_dump()))
        say(f"{fam}: APGR {rows[-1].apgr:.3f} (train {train_s_of(rows[-1])}, score {rows[-1].score_seconds:.1f}s)")
    for name, path in added.items():
        say(f"{name}: scoring {len(split.prompts)} prompts with the router in {path}")
        rows.append(_added_router_result(name, path, split, trust_remote_code, launch))
        say(f"{name}: APGR {rows[-1].apgr:.3f} (score {rows[-1].score_seconds:.1f}s)")
    result = _result(split, rows)
    write_report(result, output)
    return result


def check_families(families: Sequence[str]) -> None:
    """Every family is registered and trains itself (``fit``); a backend-trained one is refused,
    naming ``tela run`` and ``--router``."""
    reg = get_registry()
    for fam in families:
        if getattr(reg.get("family", fam), "uses_backend", False):
            raise TelaError(
                f"family {fam!r} is trained by a backend; train it with `tela run`, then add it here with "
                f"--router {fam}=RUN_DIR"
            )


def check_routers(routers: Mapping[str, Path], families: Sequence[str]) -> dict[str, Path]:
    """The added router artifacts, each name distinct from the families' and each dir a router."""
    added = {name: Path(path) for name, path in routers.items()}
    for name, path in added.items():
        if name in families:
            raise TelaError(f"--router {name}: the name is also in --families; pick another name")
        read_manifest(path)  # a missing or foreign directory fails here
    return added


def split_outcomes(
    records: Sequence[Record], protocol: str | None, weak: str | None, strong: str | None, say: Say = lambda _m: None
) -> ZooSplit:
    """Split ``records`` (:func:`split_for_zoo`), choose the pair on the train side and pull the eval
    side's outcomes (and costs) with :func:`~tela_core.eval.outcomes.outcome_arrays`; says the split
    and warns when the eval side is too small to tell families apart."""
    train, evalr = split_for_zoo(records, protocol)
    if not train or not evalr:
        raise TelaError(f"the split left {len(train)} train and {len(evalr)} eval records; need both")
    w_name, s_name = resolve_pair(train, weak, strong)
    data = outcome_arrays(evalr, w_name, s_name)
    say(
        f"split: {len(train)} train, {len(evalr)} eval records ({protocol or 'random 10%'}); weak {w_name}, strong "
        f"{s_name}"
    )
    few = small_sample_warning(
        len(evalr), "the comparison", "differences between families are mostly noise; give the zoo more records"
    )
    if few:
        say(few)
    return ZooSplit(protocol or "random-10%", list(train), [r.prompt for r in evalr], data)


def train_family(family: str, options: Mapping[str, Any], train: Sequence[Record], final: Path) -> tuple[Scorer, float]:
    """Fit ``family`` on ``train`` into ``final``; returns the scorer and the seconds ``fit`` took.

    The router is written into a hidden staging dir that takes ``final``'s place only once it is
    complete (:func:`tela_core.infra.io.staged_dir`): a family that fails, or a killed run, leaves
    the router that was there before (or none), never a half-written or half-deleted one."""
    scorer = get_registry().create("family", family, options)
    with staged_dir(final) as stage:
        t0 = time.perf_counter()
        scorer.fit(train, stage, {})
        seconds = time.perf_counter() - t0
        record_training_prompts(stage, (r.prompt for r in train))  # eval/calibrate warn on these prompts
    return scorer, seconds


def score_router(
    path: Path, prompts: Sequence[str], launch: ScoreLaunch | None = None, trust_remote_code: bool = False
) -> tuple[np.ndarray, float]:
    """``w`` of ``prompts`` by the router saved in ``path`` (loaded as a user would), and the seconds
    scoring took: in this process, or on ``launch``'s ranks (which load the router themselves)."""
    import numpy as np

    ranks = launch is not None and launch.parallel
    router = Router.load(path, trust_remote_code=trust_remote_code, load_scorer=not ranks)
    t0 = time.perf_counter()
    if launch is None or not launch.parallel:
        w = router.score(prompts)
    else:
        cache = score_cache_dir(None)
        scores, _info = score_prompts(
            router.scorer,
            prompts,
            router_id=router_hash(router.path) if cache else None,
            cache_dir=cache,
            progress=False,
            launch=launch,
            router_dir=router.path,
            context=LoadContext(trust_remote_code=trust_remote_code),
        )
        w = np.asarray(scores.w, dtype=float).reshape(-1)
    return w, time.perf_counter() - t0


def family_result(
    name: str, w: np.ndarray, data: OutcomeArrays, train_s: float | None, score_s: float, options: Mapping[str, Any]
) -> FamilyResult:
    """One router's row: ``w`` replayed against ``data`` (with its costs) as ``tela eval`` does."""
    ev = evaluate_scores(w, data.weak, data.strong, weak_cost=data.weak_cost, strong_cost=data.strong_cost, name=name)
    return _row(ev, None if train_s is None else round(train_s, 2), round(score_s, 2), options)


def baseline_results(data: OutcomeArrays) -> list[FamilyResult]:
    """The random and oracle rows: :func:`tela_core.eval.replay.baselines`, the ones ``tela eval`` shows."""
    return [_row(ev, 0.0, 0.0, {}) for ev in baselines(data)]


def _row(ev: Evaluation, train_s: float | None, score_s: float, options: Mapping[str, Any]) -> FamilyResult:
    return FamilyResult(
        ev.name,
        ev.apgr,
        ev.cpt50,
        ev.cpt80,
        ev.auc,
        train_s,
        score_s,
        ev.n,
        options=dict(options),
        curve=list(ev.pgr_grid),
        evaluation=ev.to_dict(),
    )


def _added_router_result(
    name: str, path: Path, split: ZooSplit, trust_remote_code: bool, launch: ScoreLaunch | None
) -> FamilyResult:
    """An already-trained router's row, with the training time and options its manifest records."""
    manifest = read_manifest(path)
    w, score_s = score_router(path, split.prompts, launch, trust_remote_code)
    opts = {"artifact": str(path), "scorer": manifest.get("scorer"), **(manifest.get("scorer_options") or {})}
    return family_result(name, w, split.data, _recorded_train_seconds(manifest), score_s, opts)


def _recorded_train_seconds(manifest: Mapping[str, Any]) -> float | None:
    """Training time an artifact's manifest records (zoo families: ``train_seconds``; ``tela run``
    with a backend: its last attempt's ``train_seconds``), or None when it records none."""
    for value in (manifest.get("train_seconds"), (manifest.get("training") or {}).get("train_seconds")):
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _result(split: ZooSplit, rows: list[FamilyResult]) -> ZooResult:
    data = split.data
    return ZooResult(
        protocol=split.protocol,
        weak=data.weak_model,
        strong=data.strong_model,
        n_train=len(split.train),
        n_eval=len(split.prompts),
        q_weak=float(data.weak.mean()),
        q_strong=float(data.strong.mean()),
        families=rows,
        baselines=baseline_results(data),
    )


def train_s_of(row: FamilyResult) -> str:
    """``"12s"`` or ``"—"`` (training time not recorded)."""
    return "—" if row.train_seconds is None else f"{row.train_seconds:.0f}s"


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
    random and oracle; beside it quality vs cost when the data has costs) in ``output``."""
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
    return dumps_json(asdict(result), indent=2)  # an undefined metric is null, as in results.json
