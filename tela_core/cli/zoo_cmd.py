"""``tela zoo``: train several router families on one dataset and compare them in one report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .router_options import trust_option


def _parse_options(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--set FAMILY.KEY=VALUE`` (the syntax of ``tela run --set``) -> {family: {key: value}}."""
    from ..train import parse_assignment

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        fam, opt, value = parse_assignment(item, "--set", "embedding-knn.k=100", "FAMILY.KEY=VALUE")
        out.setdefault(fam, {})[opt] = value
    return out


@click.command("zoo")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="outcome data (file or folder)")
@click.option("--source", default="detect", show_default=True, help="data source name (default: detect from the path)")
@click.option("--families", default="", help="comma-separated router families, e.g. length,embedding-knn,ensemble")
@click.option("--output", "-o", "output", required=True, type=click.Path(path_type=Path), help="report directory")
@click.option("--protocol", default=None, help="named train/eval split, e.g. mmlu-heldout (default: a seeded random 10% eval split)")
@click.option("--set", "--option", "options", multiple=True, metavar="FAMILY.KEY=VALUE",
              help="a family option, e.g. --set embedding-knn.k=100 (repeatable; --option is the old spelling)")
@click.option("--router", "routers", multiple=True, metavar="NAME=DIR",
              help="also evaluate an already-trained router artifact, e.g. score-token=runs/mmlu (repeatable)")
@click.option("--weak-model", default=None, help="weak model name in the outcomes (inferred for two models)")
@click.option("--strong-model", default=None, help="strong model name in the outcomes (inferred for two models)")
@click.option("--force", is_flag=True, help="replace an existing report directory's results")
@trust_option
def zoo(
    data: Path,
    source: str,
    families: str,
    output: Path,
    protocol: str | None,
    options: tuple[str, ...],
    routers: tuple[str, ...],
    weak_model: str | None,
    strong_model: str | None,
    force: bool,
    trust_remote_code: bool,
) -> None:
    """Train each family, evaluate it on the same held-out prompts, write one comparison.

    Writes OUTPUT/report.md, OUTPUT/results.json, OUTPUT/curves.png (every family's quality curve with
    random and oracle) and one router artifact per family under OUTPUT/routers/. Routers that a
    backend trains (score-token, via `tela run`) join the same comparison with --router NAME=DIR.
    """
    from rich.console import Console
    from rich.table import Table

    from ..detect import open_source
    from ..duplicates import find_duplicates
    from ..errors import TelaError
    from ..io import remove_stale_partials, staged_dir
    from ..locks import output_lock
    from ..plugins import get_registry
    from ..zoo import HEADER, _table_rows, run_zoo

    fams = [f.strip() for f in families.split(",") if f.strip()]
    added: dict[str, Path] = {}
    for item in routers:
        name, sep, where = item.partition("=")
        if not sep or not name.strip() or not where.strip():
            raise TelaError(f"--router {item!r}: expected NAME=DIR, e.g. --router score-token=runs/mmlu")
        if name.strip() in added:
            raise TelaError(f"--router {name.strip()!r} is given twice")
        added[name.strip()] = Path(where.strip())
    if not fams and not added:
        raise TelaError("--families: name at least one family (see `tela plugins list`) or add a --router")
    reg = get_registry()
    for f in fams:
        reg.get("scorer", f)
    if len(set(fams)) != len(fams):
        raise TelaError("--families: a family is named twice")
    opts = _parse_options(options)
    for f in opts:
        if f not in fams:
            raise TelaError(f"--set for {f!r}, which is not in --families")
    for f in fams:
        reg.create("scorer", f, opts.get(f, {}))  # a bad option fails before any family trains
    _check_output(output, force)
    src = open_source(data, source, {"weak_model": weak_model, "strong_model": strong_model})
    records = list(src.records(data))
    if not records:
        raise TelaError(f"{data}: no records")
    console = Console(stderr=True)
    dups = find_duplicates(records).warning()
    if dups:
        console.print(dups, markup=False, highlight=False)
    # The report is built in a hidden dir beside OUTPUT and replaces it whole at the end: a
    # failed or killed zoo leaves the old report (or none), never old routers beside a new report.
    with output_lock(output), console.status("training the zoo") as status:
        _check_output(output, force)  # again, now that no other writer can change it
        remove_stale_partials(output)
        with staged_dir(output) as stage:
            result = run_zoo(
                records,
                fams,
                stage,
            protocol=protocol,
            options=opts,
            weak=weak_model,
            strong=strong_model,
            routers=added,
                trust_remote_code=trust_remote_code,
                on_event=lambda m: _log_and_show(console, status, m),
            )
    table = Table(title=f"router zoo: {result.protocol}, {result.n_eval} eval prompts")
    for h in HEADER:
        table.add_column(h, justify="left" if h == "family" else "right")
    for row in _table_rows(result):
        table.add_row(*row)
    Console().print(table)
    click.echo(f"report: {output / 'report.md'}")


def _check_output(output: Path, force: bool) -> None:
    """OUTPUT must be absent, empty, or (with --force) a zoo report: never an unrelated dir."""
    from ..errors import TelaError
    from ..io import check_dir_writable

    if output.exists() and not output.is_dir():
        raise TelaError(f"{output} exists and is not a directory; choose another --output")
    if output.is_dir() and any(output.iterdir()):
        if not (output / "results.json").exists() and not (output / "routers").is_dir():
            raise TelaError(f"{output} exists and is not a zoo report; choose another --output or remove it")
        if not force:
            raise TelaError(f"{output} already holds a zoo report; pass --force to replace it")
    check_dir_writable(output.parent, output)


def _log_and_show(console: Any, status: Any, message: str) -> None:
    console.log(message)
    status.update(message)


def register(cli: click.Group) -> None:
    """Attach ``tela zoo`` to ``cli``."""
    cli.add_command(zoo)
