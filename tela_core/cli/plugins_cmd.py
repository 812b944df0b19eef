"""``tela plugins list``: what is installed, what it provides, and what is broken."""

from __future__ import annotations

import json

import click

from ..components import KINDS


def register(cli: click.Group) -> None:
    cli.add_command(plugins)


@click.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
@click.option("--kind", type=click.Choice(KINDS), help="Only plugins that provide this kind.")
def list_plugins(as_json: bool, kind: str | None) -> None:
    """List plugins: distribution, version, components by kind and name, hooks."""
    from ..plugins import get_registry

    reg = get_registry()
    infos = [p for p in reg.plugins.values() if kind is None or any(k == kind for k, _ in p.components)]
    if as_json:
        click.echo(json.dumps([p.to_json() for p in infos], indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="tela plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("distribution")
    table.add_column("version")
    table.add_column("provides")
    table.add_column("hooks")
    for p in infos:
        provides = "\n".join(
            escape(f"{k}: {n} — {reg.entries[k][n].description}") for k, n in p.components if kind in (None, k)
        )
        if p.error:
            provides = f"[red]BROKEN: {escape(p.error)}[/red]" + (("\n" + provides) if provides else "")
        hooks = "\n".join(h.removeprefix("tela_") for h in sorted(p.hooks))
        table.add_row(p.name, p.dist or "-", p.version or "-", provides or "-", hooks or "-")
    Console().print(table)
