"""One registry of named components, filled by calling every plugin's register hooks.

The registry is keyed by (kind, name). Registration records which plugin provided each component,
so duplicate names name both plugins, and an unknown name lists the registered ones. A kind's former
name (``scorer`` for ``family``) still works, with a ``TelaDeprecationWarning`` at the caller's line.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from tela_core.components import KIND_ALIASES, KINDS, REGISTERED, Component, KindSpec
from tela_core.infra.deprecation import warn_deprecated
from tela_core.infra.errors import DuplicateComponentError, PluginLoadError, TelaError, UnknownComponentError
from tela_core.schema.datasets import validate_entry

__all__ = ["Entry", "PluginInfo", "Registry", "HOOK_KINDS", "kind_named"]

#: hook name -> the kind it registers (from :data:`tela_core.components.REGISTERED`)
HOOK_KINDS: dict[str, str] = {k.hook: k.kind for k in REGISTERED}

#: 0.1's JSON name of each kind renamed since (``family`` -> ``scorer``): what ``provides`` in
#: :meth:`PluginInfo.to_json` keeps until tela 0.3 for tools written against 0.1
_LEGACY_JSON_KIND: dict[str, str] = {new: old for old, new in KIND_ALIASES.items()}


def kind_named(kind: str) -> str:
    """The kind ``kind`` names: itself, or, for a former name (``scorer``), today's (``family``).

    A former name warns (:class:`~tela_core.infra.deprecation.TelaDeprecationWarning`, at the
    line that called the registry), except from tela's own modules, which move to the new name
    file by file and must not make a plugin's ``-W error::TelaDeprecationWarning`` run fail."""
    new = KIND_ALIASES.get(kind)
    if new is None:
        return kind
    frame, depth = sys._getframe(1), 2  # warn_deprecated's stacklevel: 1 is this function, 2 its caller
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, depth = frame.f_back, depth + 1
    if not str(frame.f_globals.get("__name__", "")).startswith(("tela_core.", "tela_plugins.")):
        warn_deprecated(f"the component kind {kind!r}", f"{new!r}", stacklevel=depth)
    return new


@dataclass
class Entry:
    """A registered component: its class and the plugin that provided it."""

    kind: str
    name: str
    description: str
    cls: type[Component]
    plugin: str

    def options_schema(self) -> dict[str, Any]:
        """JSON schema of the component's options model."""
        return self.cls.Options.model_json_schema()


@dataclass
class PluginInfo:
    """What ``tela plugins list`` shows for one plugin."""

    name: str
    dist: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``components``: names by kind. ``provides``: the same under 0.1's kind names (``scorer``
        for ``family``), for tools written against 0.1; deprecated, removed in tela 0.3."""
        components: dict[str, list[str]] = {}
        provides: dict[str, list[str]] = {}
        for kind, name in self.components:
            components.setdefault(kind, []).append(name)
            provides.setdefault(_LEGACY_JSON_KIND.get(kind, kind), []).append(name)
        return {
            "name": self.name,
            "distribution": self.dist,
            "version": self.version,
            "hooks": sorted(self.hooks),
            "components": components,
            "provides": provides,
            "broken": self.error is not None,
            "error": self.error,
        }


class Registry:
    """Components by kind and name, built from a pluggy plugin manager."""

    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        #: name -> (DatasetEntry, plugin), from ``tela_register_datasets`` (``tela data list``)
        self.datasets: dict[str, tuple[Any, str]] = {}
        self.errors: list[TelaError] = []
        #: (kind, name) registered by more than one plugin; asking for one raises its error
        self.duplicates: dict[tuple[str, str], DuplicateComponentError] = {}
        self._owners: dict[tuple[str, str], str] = {}  # (kind, name) -> the plugin that registered it first
        for kind in REGISTERED:
            for impl in getattr(pm.hook, kind.hook).get_hookimpls():  # registration order (pluggy calls them reversed)
                self._collect(impl, kind)

    def dataset(self, name: str) -> Any:
        """The catalogued :class:`~tela_core.data.catalogue.DatasetEntry` called ``name``; an unknown name
        lists the registered ones; one that two plugins register names both, as :meth:`entry` does."""
        if ("dataset", name) in self.duplicates:
            raise self.duplicates[("dataset", name)]
        try:
            return self.datasets[name][0]
        except KeyError:
            raise UnknownComponentError("dataset", name, self.datasets) from None

    def _collect(self, impl: Any, kind: KindSpec) -> None:
        """Call one plugin's register hook for ``kind``; a bad registration marks that plugin broken
        (and leaves the others working), a name registered twice names both plugins."""
        plugin = impl.plugin_name
        info = self.plugins.setdefault(plugin, PluginInfo(name=plugin))
        table: dict[str, Any] = self.entries[kind.kind] if kind.base is not None else self.datasets

        def register(obj: Any) -> None:
            name, value = self._checked(kind, obj, plugin)
            if name in table:
                err = DuplicateComponentError(kind.kind, name, self._owners[(kind.kind, name)], plugin)
                self.errors.append(err)
                self.duplicates.setdefault((kind.kind, name), err)
                info.error = info.error or str(err)
                return
            table[name] = value
            self._owners[(kind.kind, name)] = plugin
            info.components.append((kind.kind, name))

        try:
            impl.function(register)
        except Exception as e:  # a broken plugin is named, and does not take the others down
            err = PluginLoadError(plugin, info.dist, e)
            self.errors.append(err)
            info.error = str(err)

    @staticmethod
    def _checked(kind: KindSpec, obj: Any, plugin: str) -> tuple[str, Any]:
        """(name, what to store) for what a plugin passed to ``register``; raises if it is not a
        ``kind``: a component class of that kind with a name, or a valid dataset entry."""
        if kind.base is None:
            validate_entry(obj)
            return obj.name, (obj, plugin)
        if not (inspect.isclass(obj) and issubclass(obj, Component)):
            raise TypeError(f"register() expects a tela Component class, got {obj!r}")
        if not obj.name:
            raise TypeError(f"{obj.__qualname__} has no name")
        if KIND_ALIASES.get(obj.kind, obj.kind) != kind.kind:  # a 0.1 class may say kind = "scorer"
            raise TypeError(f"{obj.__qualname__} is a {obj.kind or 'component'}, registered as a {kind.kind}")
        missing = sorted(getattr(obj, "__abstractmethods__", ()))
        if missing:  # refused now, not when tela first calls the method
            methods = ", ".join(f"{m}()" for m in missing)
            raise TypeError(f"{obj.__qualname__} does not implement {methods}, which every {kind.kind} must have")
        # the docstring's first paragraph, on one line (its first line alone can stop mid-sentence)
        desc = obj.description or " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
        return obj.name, Entry(kind.kind, obj.name, desc, obj, plugin)

    # -- lookup ------------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self.entries[kind_named(kind)])

    def entry(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; :class:`UnknownComponentError` lists the known names if absent,
        :class:`DuplicateComponentError` names both plugins if two registered it.

        If a plugin failed to load, the error says so: the name may be one it would have provided.
        """
        kind = kind_named(kind)
        if kind not in self.entries:
            raise TelaError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        if (kind, name) in self.duplicates:
            raise self.duplicates[(kind, name)]
        try:
            return self.entries[kind][name]
        except KeyError:
            err = UnknownComponentError(kind, name, self.entries[kind])
            broken = [p.name for p in self.plugins.values() if p.error]
            if broken:
                err.args = (f"{err.args[0]} (broken plugins not loaded: {', '.join(broken)})",)
            raise err from None

    def get(self, kind: str, name: str) -> type[Component]:
        """The component class registered as ``name``."""
        return self.entry(kind_named(kind), name).cls

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Instantiate ``name`` with ``options`` validated by its options model."""
        kind = kind_named(kind)
        cls = self.get(kind, name)
        from pydantic import ValidationError

        try:
            return cls(cls.Options(**dict(options or {})))
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or 'options'}: {_problem(err, cls.Options)}"
                for err in e.errors()
            )
            raise TelaError(f"bad options for {kind} {name!r}: {problems}") from None


def _problem(err: Mapping[str, Any], options_model: Any) -> str:
    """pydantic's message, except for an unknown option (``extra_forbidden``: "Extra inputs are
    not permitted"): that one names the nearest option and lists them all."""
    if err.get("type") != "extra_forbidden":
        return str(err["msg"])
    import difflib

    known = sorted(getattr(options_model, "model_fields", {}) or {})
    if not known:
        return "unknown option: this component takes no options"
    close = difflib.get_close_matches(str(err["loc"][-1]) if err.get("loc") else "", known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown option ({hint}options: {', '.join(known)})"
