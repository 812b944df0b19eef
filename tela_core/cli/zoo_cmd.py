"""``tela zoo``: train several router families on one dataset and compare them in one report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tela_core.data.detect import open_source
from tela_core.data.duplicates import find_duplicates
from tela_core.infra.errors import NoRecordsError, TelaError
from tela_core.infra.io import check_dir_writable, remove_stale_partials, staged_dir
from tela_core.infra.locks import output_lock
from tela_core.plugins.discovery import get_registry

from ..train import parse_assignment
from . import tables
from .options import (
    force_option,
    launch_options,
    named_routers_option,
    output_option,
    pair_options,
    parse_named_routers,
    protocol_option,
    refuse_unused,
    score_launch_of,
    set_option,
    source_option,
    trust_option,
)


def _parse_options(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--set FAMILY.KEY=VALUE`` (the syntax of ``tela run --set``) -> {family: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        fam, opt, value = parse_assignment(item, "--set", "embedding-knn.k=100", "FAMILY.KEY=VALUE")
        out.setdefault(fam, {})[opt] = value
    return out


def _old_option_spelling(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--option`` (hidden): the old spelling of ``--set``, still read with a note until 0.3."""
    if value:
        click.echo("note: --option is now --set (as in tela run, eval and route)", err=True)
    return value


@click.command("zoo")
@click.option(
    "--data", "data", required=True, type=click.Path(path_type=Path), help="Outcome data: a file or a folder."
)
@source_option()
@click.option(
    "--families",
    default="",
    metavar="NAME,...",
    help="Comma-separated router families, e.g. length,embedding-knn,ensemble (see `tela plugins list --kind family`).",
)
@output_option(required=True)
@protocol_option
@set_option("options", "FAMILY.KEY=VALUE")
@click.option("--option", "old_options", multiple=True, hidden=True, callback=_old_option_spelling)
@named_routers_option
@pair_options
@force_option
@trust_option
@launch_options
def zoo(
    data: Path,
    source_name: str,
    families: str,
    output: Path,
    protocol: str | None,
    options: tuple[str, ...],
    old_options: tuple[str, ...],
    routers: tuple[str, ...],
    weak_model: str | None,
    strong_model: str | None,
    force: bool,
    trust_remote_code: bool,
    **launch: Any,
) -> None:
    """Train each family, evaluate it on the same held-out prompts, write one comparison.

    Writes OUTPUT/report.md, OUTPUT/results.json, OUTPUT/curves.png (every family's quality curve with
    random and oracle) and one router artifact per family under OUTPUT/routers/. Without --protocol
    the held-out prompts are a seeded random 10%. Routers that a backend trains (score-token, via
    `tela run`) join the same comparison with --router DIR (or NAME=DIR to name them in the report).
    --processes N (or --hostfile) scores the eval prompts of each router on N ranks; the families
    still train in this process.
    """
    from rich.console import Console
    from rich.table import Table

    from ..eval.zoo import HEADER, run_zoo, table_rows  # start-up: `tela --help` need not load eval.zoo (~3 ms)

    ranks = score_launch_of(launch)
    if ranks.nodes.multi:
        raise TelaError(
            "tela zoo trains every family on the node it runs on: shard its scoring with --processes or "
            "--hostfile; across scheduler-launched nodes, score each router with `tela eval` on every node"
        )
    fams = [f.strip() for f in families.split(",") if f.strip()]
    options = options + old_options
    added = parse_named_routers(routers)
    if not fams:
        refuse_unused("without --families no family is trained", "options", "old_options")
    if not added:  # families never run a model's own code; only --router artifacts may ask to
        refuse_unused("without --router no router artifact is loaded", "trust_remote_code")
    if not fams and not added:
        raise TelaError("--families: name at least one family (see `tela plugins list`) or add a --router")
    reg = get_registry()
    for f in fams:
        reg.get("family", f)
    if len(set(fams)) != len(fams):
        raise TelaError("--families: a family is named twice")
    opts = _parse_options(options)
    for f in opts:
        if f not in fams:
            raise TelaError(f"--set for {f!r}, which is not in --families")
    for f in fams:
        reg.create("family", f, opts.get(f, {}))  # a bad option fails before any family trains
    _check_output(output, force)
    src = open_source(data, source_name, {"weak_model": weak_model, "strong_model": strong_model})
    records = list(src.records(data))
    if not records:
        raise NoRecordsError(data)
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
                launch=ranks,
                on_event=lambda m: _log_and_show(console, status, m),
            )
    table = Table(title=f"router zoo: {result.protocol}, {result.n_eval} eval prompts")
    for h in HEADER:
        table.add_column(h, justify="left" if h == "family" else "right")
    for row in table_rows(result):
        table.add_row(*row)
    tables.print_table(table)
    click.echo(f"report: {output / 'report.md'}")


def _check_output(output: Path, force: bool) -> None:
    """OUTPUT must be absent, empty, or (with --force) a zoo report: never an unrelated dir."""
    if output.exists() and not output.is_dir():
        raise TelaError(f"{output} exists and is not a directory; choose another --output")
    if output.is_dir() and any(output.iterdir()):
        if not (output / "results.json").exists() and not (output / "routers").is_dir():
            raise TelaError(f"{output} exists and is not a zoo report; choose another --output or remove it")
        if not force:
            raise TelaError(f"{output} already holds a zoo report; pass --force to replace it")
    check_dir_writable(output.parent, output)


def _log_and_show(console: Any, status: Any, message: str) -> None:
    # print, not console.log: a log line carried "zoo_cmd.py:176" and was cut at 80 columns in a pipe
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    status.update(message)


def register(cli: click.Group) -> None:
    """Attach ``tela zoo`` to ``cli``."""
    cli.add_command(zoo)
