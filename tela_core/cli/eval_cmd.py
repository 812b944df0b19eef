"""``tela eval``: judge a router (or the random / oracle baseline) on real outcome data.

The outcome data is replayed through the router's scorer: every prompt gets its ``w``, the
threshold is swept over every strong-call share, and the metrics of ``docs/metrics.md`` (PGR at
p = 0, 0.1, …, 1, APGR, CPT(50%), CPT(80%), AUC; cost per query when prices are known) are printed
beside the random and oracle baselines and written to ``report.json``, ``report.md`` and
``quality.png``. Scores are cached by content hash (router files + prompts) under
``$TELA_CACHE/scores`` (or the output dir's ``.score-cache``), so a second eval is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tela_core.data.detect import read_records
from tela_core.data.fingerprint import overlap_warning
from tela_core.infra.errors import TelaError
from tela_core.infra.io import check_can_write, dumps_json, remove_stale_temp_files
from tela_core.infra.locks import output_lock
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest

from .. import eval as ev
from ..eval.nmodel_router import routes_among_many
from ..eval.pairs import pair_note, trained_pairs
from ..eval.report import oracle_note, policy_line
from . import tables
from .options import (
    LAUNCH_PARAMS,
    force_option,
    json_option,
    launch_options,
    load_router,
    no_cache_option,
    output_option,
    pair_options,
    policy_options,
    protocol_option,
    refuse_unused,
    score_batch_option,
    score_launch_of,
    source_option,
    trust_option,
)

__all__ = ["register", "eval_cmd", "BASELINES"]

#: ``--router`` values that name a baseline rather than a directory
BASELINES = ("random", "oracle")


def register(cli: click.Group) -> None:
    """Attach ``tela eval`` to ``cli``."""
    cli.add_command(eval_cmd)


@click.command("eval")
@click.option(
    "--router",
    "router",
    required=True,
    metavar="DIR|random|oracle",
    help="A router dir, or a baseline: random, oracle.",
)
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path),
    help="Outcome data: a file or a folder (e.g. RouteLLM per-subject CSVs).",
)
@output_option(required=True)
@source_option()
@protocol_option
@pair_options
@score_batch_option
@no_cache_option
@click.option(
    "--all-models",
    is_flag=True,
    help="N-model routing: judge the router's per-model predictions with the cost-aware policy "
    "(quality–cost hull, AIQ, best single model, oracle) instead of a weak/strong pair. The default for a "
    "router saved with an N-model policy (cost-aware, budget, quality-floor), whose point the report adds.",
)
@json_option
@force_option
@policy_options
@trust_option
@launch_options
def eval_cmd(
    router: str,
    data: Path,
    output: Path,
    source_name: str,
    protocol: str | None,
    weak_model: str | None,
    strong_model: str | None,
    score_batch_size: int | None,
    no_cache: bool,
    all_models: bool,
    as_json: bool,
    force: bool,
    policy_name: str | None,
    policy_sets: tuple[str, ...],
    trust_remote_code: bool,
    **launch: Any,
) -> None:
    """Replay outcome data through a router and report PGR, APGR, CPT and AUC beside random and oracle.

    Writes OUTPUT/report.json, OUTPUT/report.md and OUTPUT/quality.png (with --all-models, or a router
    among N models: OUTPUT/nmodel.json, nmodel.md and cost-quality.png); --json prints the report.
    With --protocol only the protocol's held-out side of --data is judged. A baseline (random,
    oracle) loads no router, so the flags about loading and scoring one are refused with it.
    --processes N (or --hostfile, or one command per node) shards the prompts over N ranks; a
    rerun after a kill scores only the chunks that are missing.

    \b
    Examples:
      tela eval --router random --data "$(tela data get routellm-mmlu)" --protocol mmlu-heldout -o out/random
      tela eval --router runs/demo --data heldout.jsonl -o out/demo
      tela eval --router runs/demo --data heldout.jsonl -o out/demo --processes 4
      tela eval --router zoo/routers/matrix-factorization --all-models \\
                --data "$(tela data get llmrouter)" -o out/nim9
    """
    baseline = router if router in BASELINES and not (Path(router) / "tela.json").exists() else None
    manifest = None if baseline is not None else read_manifest(router)  # a bad router dir fails before any work
    if output.exists() and not output.is_dir():
        raise TelaError(f"{output} is a file; --output must be a directory")
    among_many = not all_models and baseline is None and weak_model is None and strong_model is None
    if among_many and routes_among_many(router):  # its saved policy routes among N models
        all_models = True
        if policy_name is not None and not getattr(get_registry().get("policy", policy_name), "knob", None):
            raise TelaError(
                f"--policy {policy_name} routes between two models; this router routes among many: give an "
                "N-model policy (cost-aware, budget, quality-floor), or --weak-model and --strong-model to judge "
                "its w on a pair"
            )
    _refuse_unused(all_models, baseline, among_many)
    ranks = score_launch_of(launch)
    if all_models:
        load = (router, trust_remote_code, score_batch_size, policy_name, policy_sets)
        _eval_all_models(load, baseline, manifest, data, output, source_name, protocol, as_json, force, ranks, no_cache)
        return
    for name in ev.REPORT_FILES:
        check_can_write(output / name, force)
    records, source, info = read_records(data, source_name, weak_model, strong_model, protocol, complete="pair")
    weak, strong = ev.resolve_pair(records, weak_model, strong_model, source)
    arrays = ev.outcome_arrays(records, weak, strong)
    _warn_if_trained_on(manifest, records)
    pairs = _pair_check(manifest, weak, strong)
    _lock_output(output, force)
    evaluations, policy_info, scoring = _evaluate_pair(
        router, baseline, arrays, records, output, ranks, no_cache, score_batch_size, policy_name, policy_sets,
        trust_remote_code,
    )  # fmt: skip
    meta = {
        "router": baseline or str(router),
        "scorer": manifest.get("scorer") if manifest else baseline,
        "data": str(data),
        "source": source.name,
        "protocol": protocol,
        **info,
        **pairs,
        "scoring": {k: v for k, v in scoring.items() if k != "key"},
    }
    report = ev.build_report(evaluations, data=arrays, meta=meta, policy=policy_info)
    paths = ev.write_report(report, output)
    if as_json:
        click.echo(dumps_json(report, indent=2, ensure_ascii=True))  # strict JSON, as report.json
    else:
        _print_table(report)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}")
    for warning in report["warnings"]:  # last, where they are seen
        click.echo(warning, err=True)


def _refuse_unused(all_models: bool, baseline: str | None, among_many: bool) -> None:
    """Refuse the flags the chosen kind of evaluation cannot use, in one line."""
    if all_models:
        mode = (
            "this router's saved policy routes among N models: it is judged on every model's outcome and cost "
            "(--weak-model/--strong-model judge its w on a pair)"
            if among_many
            else "--all-models judges every model with the cost-aware policy"
        )
        refuse_unused(mode, "weak_model", "strong_model")
    if baseline is not None:
        refuse_unused(
            f"--router {baseline} is a baseline that loads no router",
            "score_batch_size",
            "no_cache",
            "policy_name",
            "policy_sets",
            "trust_remote_code",
            *LAUNCH_PARAMS,
        )


def _evaluate_pair(
    router: str,
    baseline: str | None,
    arrays: Any,
    records: Any,
    output: Path,
    ranks: Any,
    no_cache: bool,
    score_batch_size: int | None,
    policy_name: str | None,
    policy_sets: tuple[str, ...],
    trust_remote_code: bool,
) -> tuple[list[Any], dict[str, Any] | None, dict[str, Any]]:
    """(evaluations: the router's then the baselines, where its saved policy lands, scoring info)."""
    base = ev.baselines(arrays)
    evaluations = []
    policy_info = None
    scoring: dict[str, Any] = {}
    if baseline is None:
        loaded = load_router(
            router, trust_remote_code, score_batch_size, policy_name, policy_sets, load_scorer=not ranks.parallel
        )  # launched ranks load their own
        cache = None if no_cache else ev.score_cache_dir(output / ".score-cache")
        scores, scoring = ev.score_prompts(
            loaded.scorer,
            [r.prompt for r in records],
            router_id=ev.router_hash(Path(router)) if cache else None,
            cache_dir=cache,
            description=f"scoring {len(records)} prompts" + (f" ({ranks.describe()})" if ranks.parallel else ""),
            launch=ranks,
            router_dir=Path(router),
        )
        name = Path(router).name or str(router)
        costs = dict(weak_cost=arrays.weak_cost, strong_cost=arrays.strong_cost)
        evaluations.append(ev.evaluate_scores(scores.w, arrays.weak, arrays.strong, name=name, **costs))
        policy_info = _policy_point(loaded.policy_spec, scores, arrays)
    evaluations += [base.oracle, base.random] if baseline == "oracle" else [base.random, base.oracle]
    return evaluations, policy_info, scoring


def _warn_if_trained_on(manifest: Any, records: Any) -> None:
    """Warn when the router was trained on a sizeable share of these prompts (its manifest's sketch)."""
    note = overlap_warning(manifest or {}, [r.prompt for r in records]) if manifest else None
    if note:
        click.echo(note, err=True)


def _pair_check(manifest: Any, weak: str, strong: str) -> dict[str, Any]:
    """Say in one line when the router is judged on a model pair it was not trained on (a warning,
    not a refusal: the metrics replay this data's own outcomes, so they stay true); for the report."""
    if not manifest:
        return {}
    note = pair_note(manifest, weak, strong)
    if note:
        click.echo(note, err=True)
    return {"trained_pairs": [list(p) for p in trained_pairs(manifest)], **({"pair_note": note} if note else {})}


def _lock_output(output: Path, force: bool) -> None:
    """Hold ``output`` until the command ends (another eval into it is refused, naming its pid);
    then check again that the report may be written, now that no one else can write it."""
    click.get_current_context().with_resource(output_lock(output))
    for name in ev.REPORT_FILES:
        check_can_write(output / name, force)
        remove_stale_temp_files(output / name)  # a killed eval's half-written file


def _eval_all_models(
    load: tuple[Any, ...],
    baseline: str | None,
    manifest: Any,
    data: Path,
    output: Path,
    source_name: str,
    protocol: str | None,
    as_json: bool,
    force: bool,
    ranks: Any,
    no_cache: bool,
) -> None:
    """The N-model report (:mod:`tela_core.eval.nmodel`, :mod:`tela_core.eval.nmodel_router`):
    the cost-aware hull and AIQ, and where the router's own N-model policy lands. Each model's
    predicted quality goes through the score cache, on ``ranks`` when launched."""
    from ..eval import nmodel  # start-up: `tela --help` need not load eval.nmodel (~3 ms)
    from ..eval.nmodel_router import evaluate_router_nmodel

    if baseline is not None:
        raise TelaError(
            "--all-models judges a router's per-model predictions; pass a router directory, "
            "not a baseline (the report includes the oracle and every single model)"
        )
    for name in nmodel.NMODEL_FILES:
        check_can_write(output / name, force)
    click.get_current_context().with_resource(output_lock(output))  # one writer of this report
    for name in nmodel.NMODEL_FILES:
        remove_stale_temp_files(output / name)  # a killed eval's half-written file
    path, trust, batch, policy_name, policy_sets = load
    # launched ranks load their own
    loaded = load_router(path, trust, batch, policy_name, policy_sets, load_scorer=not ranks.parallel)
    records, source, info = read_records(data, source_name, None, None, protocol, complete="every")
    cache = None if no_cache else ev.score_cache_dir(output / ".score-cache")
    scores, scoring = ev.score_prompts(
        loaded.scorer,
        [r.prompt for r in records],
        router_id=ev.router_hash(Path(load[0])) if cache else None,
        cache_dir=cache,
        description=f"scoring {len(records)} prompts" + (f" ({ranks.describe()})" if ranks.parallel else ""),
        launch=ranks,
        router_dir=Path(load[0]),
        quality=True,
    )
    result, _point = evaluate_router_nmodel(loaded, records, data, scores)
    meta = {"router_dir": str(load[0]), "scorer": manifest.get("scorer"), "data": str(data), "source": source.name}
    meta.update(protocol=protocol, **info, scoring={k: v for k, v in scoring.items() if k != "key"})
    paths = nmodel.write_nmodel_report(result, output, meta)
    if as_json:
        click.echo(dumps_json({**meta, **result.to_dict()}, indent=2, ensure_ascii=True))
        return
    from rich.console import Console
    from rich.markdown import Markdown

    text = (output / "nmodel.md").read_text()
    if tables.stdout_is_terminal():
        Console().print(Markdown(text))
    else:  # piped: the Markdown itself, every table row whole
        click.echo(text.rstrip("\n"))
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")


def _policy_point(spec: dict[str, Any], scores: Any, arrays: Any) -> dict[str, Any] | None:
    """Where the router's saved policy lands on this data (two-model policies only)."""
    models = list(spec.get("models") or ["weak", "strong"])
    info = {"name": spec.get("name"), "options": spec.get("options") or {}, "models": models}
    try:
        policy = get_registry().create("policy", spec.get("name", "threshold"), spec.get("options") or {})
        if len(models) != 2:
            info["note"] = f"{len(models)}-model policy: no point on the two-model curve"
            return info
        chosen = policy.choose(scores, models)
    except TelaError as e:  # e.g. a calibrated policy not calibrated yet
        info["note"] = str(e)
        return info
    import numpy as np

    info["point"] = ev.policy_point(np.array([c == models[-1] for c in chosen]), arrays)
    return info


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(soft_wrap=not tables.stdout_is_terminal())  # piped: whole lines, not 80 columns
    has_cost = any(r.get("cost") for r in report["routers"])
    title = (
        f"{report['n']} prompts from {report['data']}"
        + (f" ({report['protocol']})" if report.get("protocol") else "")
        + f"; weak {report['weak_model']} {report['q_weak']:.4f}, strong {report['strong_model']} "
        f"{report['q_strong']:.4f}"
    )
    click.echo(title)
    t = Table()
    for col in ("router", "APGR", "CPT(50%)", "CPT(80%)", "AUC"):
        t.add_column(col, justify="left" if col == "router" else "right")
    for r in report["routers"]:
        t.add_row(r["name"], f"{r['apgr']:.3f}", f"{r['cpt50']:.2f}", f"{r['cpt80']:.2f}", f"{r['auc']:.4f}")
    tables.print_table(t, con)

    note = oracle_note(report)
    if note:
        con.print(f"({note})", markup=False)
    g = Table(
        title="PGR" + (" and cost ($ per 1,000 queries)" if has_cost else "") + " at strong-call share p",
        title_justify="left",
    )
    g.add_column("p", justify="right")
    for r in report["routers"]:
        g.add_column(f"{r['name']} PGR", justify="right")
        if has_cost and r.get("cost"):
            g.add_column(f"{r['name']} $", justify="right")
    for i, p in enumerate(report["routers"][0]["p"]):
        row = [f"{p:.1f}"]
        for r in report["routers"]:
            row.append(f"{r['pgr_grid'][i]:.3f}")
            if has_cost and r.get("cost"):
                row.append(f"{1000 * r['cost'][i]:.4g}")
        g.add_row(*row)
    tables.print_table(g, con)
    pol = report.get("policy")
    if pol:
        line = policy_line(pol)
        if line:
            con.print(line, markup=False)
        elif pol.get("note"):
            con.print(f"saved policy {pol['name']}: {pol['note']}", markup=False)
    sc = report.get("scoring") or {}
    if sc:
        con.print(
            "scores: " + ("from cache" if sc.get("cached") else f"computed in {sc.get('seconds', 0):.1f} s"),
            markup=False,
        )
