"""The ``tela`` entry point: the root click group, core commands, and plugin commands.

Every :class:`~tela_core.infra.errors.TelaError` becomes ``Error: <message>`` on stderr with exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from tela_core.infra.errors import TelaError

#: core command modules, each with ``register(cli: click.Group) -> None``
CORE_COMMAND_MODULES = (
    "plugins_cmd",
    "data_cmd",
    "run_cmd",
    "demo_cmd",
    "route_cmd",
    "calibrate_cmd",
    "eval_cmd",
    "zoo_cmd",
    "serve_cmd",
    "collect_cmd",
    "judge_cmd",
    "promote_cmd",
    "feedback_cmd",
)


#: exit code of a command stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it
INTERRUPTED = 130


class BadInput(click.ClickException):
    """``Error: <message>`` on stderr and exit code 2: tela's contract for bad input (a plain
    :class:`click.ClickException` exits with 1)."""

    exit_code = 2


class TelaGroup(click.Group):
    """A click group that reports :class:`TelaError` as a clean message with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        from tela_core.eval.parallel import NodePartDone

        try:
            return super().invoke(ctx)
        except NodePartDone as e:  # a multi-node scoring run: the node holding rank 0 writes the output
            click.echo(str(e), err=True)
            return None
        except KeyboardInterrupt:  # Ctrl-C: the shell's 128 + SIGINT, as `cmd && next` scripts expect (click says 1)
            click.echo("Interrupted.", err=True)
            ctx.exit(INTERRUPTED)
        except TelaError as e:
            raise BadInput(str(e)) from None
        except OSError as e:  # last resort for a path no check caught (disk full, a mount gone read-only)
            where = f"{e.filename}: " if e.filename else ""
            raise BadInput(f"{where}{e.strerror or e}") from None


@click.group(cls=TelaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tela", prog_name="tela")
def cli() -> None:
    """tela: train, evaluate and serve LLM routers.

    A router reads a prompt and decides whether a cheap model is good enough or the strong one
    is needed. Every data source, formatter, trainer backend, router family and policy is a
    plugin: see `tela plugins list`.
    """


_core_added = False
_built_for: Any = None  # the registry whose plugin commands are attached to ``cli``
_plugin_commands: dict[str, str] = {}  # command name -> plugin that added it


def _add_plugin_commands(reg: Any) -> None:
    """Call every plugin's ``tela_register_commands`` one by one, so that a broken plugin is named
    and the others still add theirs. A command that would replace an existing one is refused."""
    from tela_core.infra.errors import DuplicateComponentError, PluginLoadError

    for name in _plugin_commands:
        cli.commands.pop(name, None)
    _plugin_commands.clear()
    for impl in reg.pm.hook.tela_register_commands.get_hookimpls():
        plugin = impl.plugin_name
        info = reg.plugins.get(plugin)
        before = dict(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as e:  # a broken plugin must not take the CLI down
            err = PluginLoadError(plugin, info.dist if info else None, e)
            reg.errors.append(err)
            if info is not None:
                info.error = info.error or str(err)
            click.echo(f"warning: {err}", err=True)
        for name, cmd in list(cli.commands.items()):
            if name not in before:
                _plugin_commands[name] = plugin
                if info is not None:
                    info.components.append(("command", name))
            elif cmd is not before[name]:
                cli.commands[name] = before[name]
                owner = _plugin_commands.get(name, "tela")
                dup = DuplicateComponentError("command", name, owner, plugin)
                reg.errors.append(dup)
                if info is not None:
                    info.error = info.error or str(dup)
                click.echo(f"warning: {dup}", err=True)


def get_cli() -> click.Group:
    """The root group with the core commands and every plugin's commands attached.

    Plugin commands are re-attached when the registry changes (tests add and remove in-process
    plugins with :func:`tela_core.plugins.discovery.add_plugin`).
    """
    global _core_added, _built_for
    if not _core_added:
        for mod in CORE_COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{mod}").register(cli)
        _core_added = True
    from tela_core.plugins.discovery import get_registry

    reg = get_registry()
    if reg is not _built_for:
        _add_plugin_commands(reg)
        _built_for = reg
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    get_cli().main(args=argv, prog_name="tela")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
