"""The ``tela`` entry point: the root click group, core commands, and plugin commands.

Every :class:`~tela_core.errors.TelaError` becomes ``Error: <message>`` on stderr with exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ..errors import TelaError

#: core command modules, each with ``register(cli: click.Group) -> None``
CORE_COMMAND_MODULES = ("plugins_cmd", "data_cmd", "run_cmd", "route_cmd", "eval_cmd", "zoo_cmd")


class TelaGroup(click.Group):
    """A click group that reports :class:`TelaError` as a clean message with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TelaError as e:
            raise click.ClickException(str(e)) from None


# ClickException exits with 1; tela's contract is 2 for bad input.
click.ClickException.exit_code = 2


@click.group(cls=TelaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tela", prog_name="tela")
def cli() -> None:
    """tela: train, evaluate and serve LLM routers.

    A router reads a prompt and decides whether a cheap model is good enough or the strong one
    is needed. Every data source, formatter, trainer backend, router family and policy is a
    plugin: see `tela plugins list`.
    """


def _build() -> click.Group:
    for mod in CORE_COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{mod}").register(cli)
    from ..plugins import get_registry

    try:
        reg = get_registry()
        reg.pm.hook.tela_register_commands(cli=cli)
    except Exception as e:  # a broken plugin must not take the CLI down
        click.echo(f"warning: a plugin failed to add commands: {e}", err=True)
    return cli


_built = False


def get_cli() -> click.Group:
    """The root group with every command attached (built once)."""
    global _built
    if not _built:
        _build()
        _built = True
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    get_cli().main(args=argv, prog_name="tela")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
