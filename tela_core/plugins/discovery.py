"""Plugin discovery: entry points in group ``tela`` (builtins included) and env-var controls.

- ``TELA_LOAD_PLUGINS=dist1,dist2``: load third-party plugins only from these distributions (or
  entry-point names); tela's own builtins always load. Set it empty to load builtins only.
- ``TELA_DISABLE_PLUGINS=name1,name2``: skip these entry-point names or distributions, builtins
  included. A builtin's name from before 0.2 (:data:`RENAMED_BUILTINS`) still names it, with a
  :class:`~tela_core.infra.deprecation.TelaDeprecationWarning`.

A plugin that fails to import, or implements a hook that does not exist, is recorded as broken
with its error; the others still load.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from tela_core import hookspecs
from tela_core.infra.deprecation import warn_deprecated
from tela_core.infra.errors import PluginLoadError
from tela_core.plugins.registry import PluginInfo, Registry

__all__ = ["hookimpl", "ENTRY_POINT_GROUP", "BUILTIN_DIST", "make_plugin_manager", "get_registry", "reset"]

hookimpl = pluggy.HookimplMarker("tela")
ENTRY_POINT_GROUP = "tela"
BUILTIN_DIST = "tela"

#: builtin plugins renamed in 0.2 so that each entry-point name is the folder's and says what it
#: holds: old entry-point name -> new (the old one works in TELA_DISABLE_PLUGINS until tela 0.3)
RENAMED_BUILTINS = {"role-prefix": "formatters", "embedding": "embedding-families", "lmprobe": "lm-probe"}

_registry: Registry | None = None
_extra_plugins: list[tuple[Any, str]] = []


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _norm(name: str | None) -> str:
    return (name or "").lower().replace("_", "-")


def make_plugin_manager(extra: Iterable[tuple[Any, str]] = ()) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """A plugin manager with tela's hook specs and every permitted entry-point plugin loaded.

    ``extra`` is (plugin object, name) pairs registered after the entry points (used by tests
    and by programs that embed tela).
    """
    pm = pluggy.PluginManager("tela")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    only = _env_list("TELA_LOAD_PLUGINS")
    disabled = _with_new_names({_norm(x) for x in (_env_list("TELA_DISABLE_PLUGINS") or set())}, "TELA_DISABLE_PLUGINS")
    only_n = {_norm(x) for x in only} if only is not None else None

    seen: set[tuple[str, str]] = set()
    # Builtins first, then third parties by distribution: a stable order, so that when two plugins
    # register the same component name the builtin is the one named first.
    eps = sorted(
        md.entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (_dist_name(ep) != BUILTIN_DIST, _norm(_dist_name(ep)), ep.name),
    )
    for ep in eps:
        dist = _dist_name(ep)
        version = ep.dist.version if ep.dist else None
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        if _norm(ep.name) in disabled or _norm(dist) in disabled:
            continue
        if only_n is not None and _norm(dist) != BUILTIN_DIST and not ({_norm(dist), _norm(ep.name)} & only_n):
            continue
        name = _unique_name(ep.name, dist, infos)
        info = PluginInfo(name=name, dist=dist, version=version)
        infos[name] = info
        try:
            plugin = ep.load()
            _register(pm, plugin, name, info)
        except Exception as e:
            info.error = str(PluginLoadError(name, dist, e))
    for plugin, extra_name in extra:
        name = _unique_name(extra_name, None, infos)
        info = infos[name] = PluginInfo(name=name)
        try:
            _register(pm, plugin, name, info)
        except Exception as e:
            info.error = str(PluginLoadError(name, None, e))
    return pm, infos


def _with_new_names(names: set[str], var: str) -> set[str]:
    """``names`` plus the new name of each renamed builtin named by its old one (with a warning)."""
    out = set(names)
    for old, new in RENAMED_BUILTINS.items():
        if old in names:
            warn_deprecated(f"{var} name {old!r}", f"{new!r}")
            out.add(new)
    return out


def _dist_name(ep: md.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist else None


def _unique_name(name: str, dist: str | None, taken: dict[str, PluginInfo]) -> str:
    """``name``, or ``dist:name`` when another distribution already uses that entry-point name."""
    if name not in taken:
        return name
    qualified = f"{dist or 'in-process'}:{name}"
    n = 2
    while qualified in taken:
        qualified = f"{dist or 'in-process'}:{name}#{n}"
        n += 1
    return qualified


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, info: PluginInfo) -> None:
    if pm.is_registered(plugin):
        raise ValueError(f"the module is already registered as plugin {pm.get_name(plugin)!r}")
    pm.register(plugin, name=name)
    callers = pm.get_hookcallers(plugin) or []
    unknown = [c.name for c in callers if not c.has_spec()]
    if unknown:
        pm.unregister(plugin)
        known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("tela_")))
        raise AttributeError(f"implements unknown hook(s): {', '.join(unknown)}; tela's hooks are: {known}")
    hooked = {c.name for c in callers}
    unmarked = sorted(
        n
        for n in dir(plugin)
        if n.startswith("tela_") and n not in hooked and inspect.isfunction(inspect.getattr_static(plugin, n, None))
    )
    if unmarked:
        pm.unregister(plugin)
        raise AttributeError(f"defines {', '.join(unmarked)} without @hookimpl, so tela would never call it")
    info.hooks = sorted(hooked)


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        pm, infos = make_plugin_manager(_extra_plugins)
        _registry = Registry(pm, infos)
    return _registry


def add_plugin(plugin: Any, name: str) -> None:
    """Register an in-process plugin (a module or object with hookimpls) and rebuild the registry."""
    _extra_plugins.append((plugin, name))
    reset()


def added_plugins() -> list[tuple[Any, str]]:
    """The (plugin, name) pairs :func:`add_plugin` registered in this process, oldest first (what a
    process that starts others, e.g. data-parallel scoring's ranks, passes on to them)."""
    return list(_extra_plugins)


def remove_plugin(name: str) -> None:
    """Undo :func:`add_plugin`."""
    _extra_plugins[:] = [(p, n) for p, n in _extra_plugins if n != name]
    reset()


def reset() -> None:
    """Forget the built registry (tests, or after changing the env vars)."""
    global _registry
    _registry = None
