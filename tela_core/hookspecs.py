"""The hooks a tela plugin can implement.

Every hook receives a ``register`` callback (the simonw/llm shape): call it once per component
class the plugin provides. All hooks are "call every implementation"; none stops at the first
result. A plugin implements only the hooks it needs. Documented one by one in ``docs/plugins.md``.

The register hooks (``tela_register_sources``, ``tela_register_scorers``, ...) are made here from
:data:`tela_core.components.REGISTERED`, one per kind, each with the row's docstring: a new kind is
one row there, not a spec here, a key in the registry and an entry in a list of kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from tela_core.components import REGISTERED, KindSpec

hookspec = pluggy.HookspecMarker("tela")

#: What a ``register`` callback accepts: a component class (see :mod:`tela_core.components`).
Register = Callable[[type], None]

# ------------------------------------------------------------------------------------------------
# Registering components (and datasets): one hook per row of components.REGISTERED
# ------------------------------------------------------------------------------------------------


def _register_hook(kind: KindSpec) -> Callable[[Register], None]:
    """The spec of ``kind``'s hook: ``kind.hook(register)``, documented by the row."""

    def spec(register: Register) -> None:
        pass

    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = (
        f"{kind.doc}\n\n    :param register: call ``register({kind.registers})`` once per {kind.kind}.\n"
        f"    :since: {kind.since}\n    "
    )
    return hookspec(spec)


for _kind in REGISTERED:
    globals()[_kind.hook] = _register_hook(_kind)
del _kind


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_commands(cli: Any) -> None:
    """Add commands to the ``tela`` command line.

    :param cli: the root :class:`click.Group`; use ``@cli.command()`` or ``cli.add_command``.
    :since: 0.1
    """
