"""The plugin system: discovery through the ``tela`` entry-point group and in-process plugins
(``discovery``) and the one registry of named components they fill (``registry``).

``from tela_core.plugins import hookimpl, get_registry`` is the documented import for plugin authors.
"""

from __future__ import annotations

from tela_core.plugins.discovery import (
    BUILTIN_DIST,
    ENTRY_POINT_GROUP,
    add_plugin,
    get_registry,
    hookimpl,
    make_plugin_manager,
    remove_plugin,
    reset,
)

__all__ = [
    "hookimpl",
    "ENTRY_POINT_GROUP",
    "BUILTIN_DIST",
    "make_plugin_manager",
    "get_registry",
    "reset",
    "add_plugin",
    "remove_plugin",
]
