"""``tela plugins list`` and ``tela plugins show``: what is installed, what it provides, what is broken."""

from __future__ import annotations

from typing import Any, get_args

import click

from tela_core.infra.deprecation import REMOVED_IN
from tela_core.infra.errors import UnknownComponentError
from tela_core.infra.io import dumps_json
from tela_core.plugins.discovery import get_registry

from ..components import KIND_ALIASES, REGISTERED
from . import tables
from .options import json_option

#: what ``KIND`` and ``--kind`` accept: every kind a register hook fills (components, then datasets),
#: CLI commands added by plugins, and the kinds' former names (``scorer``, now ``family``)
LIST_KINDS: tuple[str, ...] = (*(k.kind for k in REGISTERED), "command", *KIND_ALIASES)


def _kind(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The kind the user named: a former name (``scorer``) is today's (``family``), with a note."""
    if value in KIND_ALIASES:
        new = KIND_ALIASES[value]
        click.echo(f"note: the kind {value!r} is called {new!r} now ({value!r} goes in tela {REMOVED_IN})", err=True)
        return new
    return value


def register(cli: click.Group) -> None:
    cli.add_command(plugins)


@click.group()
def plugins() -> None:
    """Inspect installed plugins and the components they provide."""


def _type_name(ann: Any) -> str:
    """``str``, ``int | None``, ``Optional[str]``, ``list[str]``: an annotation as a user reads it."""
    if isinstance(ann, type) and not get_args(ann):
        return ann.__name__
    return str(ann).replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")


def _command_help(name: str) -> str:
    root = click.get_current_context().find_root().command
    cmd = getattr(root, "commands", {}).get(name)
    return cmd.get_short_help_str(limit=60) if cmd is not None else ""


@plugins.command("list")
@json_option
@click.option(
    "--kind",
    type=click.Choice(LIST_KINDS),
    callback=_kind,
    help="Only plugins that provide this kind.",
)
def list_plugins(as_json: bool, kind: str | None) -> None:
    """List plugins: distribution, version, components by kind and name, hooks.

    A plugin that failed to load is listed as BROKEN with its error; the others still work. Piped,
    it prints one tab-separated line per component (plugin, distribution, version, kind, name,
    description), so `tela plugins list | grep NAME` finds any name.
    """
    reg = get_registry()
    infos = [p for p in reg.plugins.values() if kind is None or any(k == kind for k, _ in p.components)]
    if as_json:
        out = []
        for p in infos:
            obj = p.to_json()
            if kind is not None:
                obj["components"] = {k: v for k, v in obj["components"].items() if k == kind}
                old = {new: old for old, new in KIND_ALIASES.items()}.get(kind, kind)  # provides: 0.1's names
                obj["provides"] = {k: v for k, v in obj["provides"].items() if k == old}
            out.append(obj)
        click.echo(dumps_json(out, indent=2, ensure_ascii=True))
        return
    if not tables.stdout_is_terminal():  # piped: one full line per component, for grep and cut
        rows = []
        for p in infos:
            dist, version = p.dist or "-", p.version or "-"
            if p.error:
                rows.append((p.name, dist, version, "BROKEN", "-", p.error))
            shown = [(k, n) for k, n in p.components if kind in (None, k)]
            for k, n in shown:
                rows.append((p.name, dist, version, k, n, _description(reg, k, n)))
            if not shown and not p.error:
                rows.append((p.name, dist, version, "-", "-", "-"))
        tables.print_rows(("plugin", "distribution", "version", "kind", "name", "description"), rows)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    wide = console.width >= 120  # room for each component's description
    table = Table(title="tela plugins", show_lines=True)
    table.add_column("plugin", style="bold", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("provides", ratio=1)
    table.add_column("hooks", no_wrap=True)
    for p in infos:
        lines = []
        for k, n in p.components:
            if kind not in (None, k):
                continue
            line = f"{k}: [cyan]{escape(n)}[/cyan]"
            if wide:
                line += f" — {escape(_description(reg, k, n))}"
            lines.append(line)
        provides = "\n".join(lines)
        if p.error:
            provides = f"[red]BROKEN: {escape(p.error)}[/red]" + (("\n" + provides) if provides else "")
        hooks = "\n".join(h.removeprefix("tela_register_") for h in sorted(p.hooks))
        table.add_row(escape(p.name), p.dist or "-", p.version or "-", provides or "-", hooks or "-")
    console.print(table)
    if not wide:
        console.print("Descriptions and options: tela plugins show KIND NAME")


def _description(reg: Any, kind: str, name: str) -> str:
    """One line saying what component ``kind name`` does (a command's first help line)."""
    if kind == "command":
        return _command_help(name)
    if kind == "dataset":
        return str(reg.datasets[name][0].description) if name in reg.datasets else ""
    entry = reg.entries.get(kind, {}).get(name)
    return entry.description if entry is not None else ""


@plugins.command("show")
@click.argument("kind", type=click.Choice(LIST_KINDS), callback=_kind)
@click.argument("name")
@json_option
def show_component(kind: str, name: str, as_json: bool) -> None:
    """Show one component: its plugin, description and options (name, type, default; --json:
    the options' JSON schema).

    An unknown NAME is an error that lists the registered names of KIND (`tela plugins show
    family embedding-knn`).
    """
    if kind == "command":
        _show_command(name, as_json)
        return
    if kind == "dataset":
        _show_dataset(name, as_json)
        return
    entry = get_registry().entry(kind, name)
    schema = entry.options_schema()
    if as_json:
        click.echo(
            dumps_json(
                {
                    "kind": kind,
                    "name": name,
                    "plugin": entry.plugin,
                    "description": entry.description,
                    "options": schema,
                },
                indent=2,
                ensure_ascii=True,
            )
        )
        return
    click.echo(f"{kind} {name} (plugin {entry.plugin}): {entry.description}")
    fields: dict[str, Any] = entry.cls.Options.model_fields
    if not fields:
        click.echo("options: none")
        return
    click.echo("options:")
    for fname, f in fields.items():
        default = "required" if f.is_required() else f"default {f.get_default(call_default_factory=True)!r}"
        ann = _type_name(f.annotation)
        doc = f" — {f.description}" if f.description else ""
        click.echo(f"  {fname}: {ann} ({default}){doc}")


def _show_dataset(name: str, as_json: bool) -> None:
    """``tela plugins show dataset NAME``: a catalogue entry (``tela data get NAME`` fetches it)."""
    import dataclasses

    datasets = get_registry().datasets
    if name not in datasets:
        raise UnknownComponentError("dataset", name, datasets)
    entry, plugin = datasets[name]
    fields = (
        dataclasses.asdict(entry)
        if dataclasses.is_dataclass(entry) and not isinstance(entry, type)
        else dict(vars(entry))
    )
    if as_json:
        click.echo(
            dumps_json(
                {"kind": "dataset", "name": name, "plugin": plugin, **fields}, indent=2, default=str, ensure_ascii=True
            )
        )
        return
    click.echo(f"dataset {name} (plugin {plugin}): {fields.get('description', '')}")
    for key in ("origin", "license", "revision", "source"):
        if fields.get(key):
            click.echo(f"  {key}: {fields[key]}")
    click.echo(f"fetch it with: tela data get {name}")


def _show_command(name: str, as_json: bool) -> None:
    """``tela plugins show command NAME``: which plugin added the command (or tela) and its help."""
    ctx = click.get_current_context()
    root = ctx.find_root().command
    commands = getattr(root, "commands", {})
    if name not in commands:
        raise UnknownComponentError("command", name, commands)
    cmd = commands[name]
    plugin = next((p.name for p in get_registry().plugins.values() if ("command", name) in p.components), "tela")
    if as_json:
        click.echo(
            dumps_json(
                {"kind": "command", "name": name, "plugin": plugin, "description": cmd.get_short_help_str(limit=200)},
                indent=2,
                ensure_ascii=True,
            )
        )
        return
    click.echo(f"command {name} (plugin {plugin}): {cmd.get_short_help_str(limit=200)}\n")
    with click.Context(cmd, info_name=name, parent=ctx.find_root()) as sub:
        click.echo(cmd.get_help(sub))
