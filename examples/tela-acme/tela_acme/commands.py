"""``tela acme summary ROUTER``: what a router folder is, without loading its model.

Reads ``tela.json`` and ``policy.json`` only (no weights, no torch), so it is instant on any router,
including one whose family's plugin is not installed here (it says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tela_core import UnknownComponentError
from tela_core.routing.artifact import read_manifest, read_policy


def router_summary(directory: Path) -> dict[str, Any]:
    """Family, its options and plugin, the pair, the saved policy and the folder's size."""
    from tela_core.plugins import get_registry

    manifest = read_manifest(directory)
    policy = read_policy(directory) if (directory / "policy.json").exists() else None
    scorer = manifest["scorer"]
    try:
        installed: Any = get_registry().entry("scorer", scorer).plugin
    except UnknownComponentError:
        installed = None
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {
        "router": str(directory),
        "family": scorer,
        "family_plugin": installed,
        "family_options": manifest.get("scorer_options"),
        "weak": manifest.get("weak"),
        "strong": manifest.get("strong"),
        "formatter": manifest.get("formatter"),
        "policy": policy,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }


def register(cli: click.Group) -> None:
    @cli.group()
    def acme() -> None:
        """tela-acme's tools for router folders."""

    @acme.command()
    @click.argument("router", type=click.Path(path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def summary(router: Path, as_json: bool) -> None:
        """Summarise the router folder ROUTER: family, options, pair, policy, size (loads no model)."""
        info = router_summary(router)
        if as_json:
            click.echo(json.dumps(info, indent=2, sort_keys=True))
            return
        plugin = info["family_plugin"] or "NOT INSTALLED here"
        click.echo(f"{info['router']}: family {info['family']} (plugin {plugin})")
        if info["family_options"]:
            click.echo("  options: " + ", ".join(f"{k}={v!r}" for k, v in sorted(info["family_options"].items())))
        click.echo(f"  pair: weak {info['weak']}, strong {info['strong']}")
        pol = info["policy"]
        if pol:
            click.echo(f"  policy: {json.dumps(pol, sort_keys=True)}")
        else:
            click.echo("  policy: none saved")
        click.echo(f"  {info['files']} files, {info['bytes']:,} bytes")
