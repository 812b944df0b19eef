"""One registry of named components, filled by calling every plugin's register hooks.

The registry is keyed by (kind, name). Registration records which plugin provided each component,
so duplicate names name both plugins, and an unknown name lists the registered ones.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping

import pluggy

from tela_core.components import KINDS, Component
from tela_core.infra.errors import DuplicateComponentError, PluginLoadError, TelaError, UnknownComponentError

__all__ = ["Entry", "PluginInfo", "Registry", "HOOK_KINDS"]

#: hook name -> component kind it registers
HOOK_KINDS: dict[str, str] = {
    "tela_register_sources": "source",
    "tela_register_formatters": "formatter",
    "tela_register_backends": "backend",
    "tela_register_scorers": "scorer",
    "tela_register_policies": "policy",
    "tela_register_upstreams": "upstream",
    "tela_register_judges": "judge",
    "tela_register_embedders": "embedder",
}


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
        provides: dict[str, list[str]] = {}
        for kind, name in self.components:
            provides.setdefault(kind, []).append(name)
        return {
            "name": self.name,
            "distribution": self.dist,
            "version": self.version,
            "hooks": sorted(self.hooks),
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
        self.errors: list[TelaError] = []
        #: (kind, name) registered by more than one plugin; asking for one raises its error
        self.duplicates: dict[tuple[str, str], DuplicateComponentError] = {}
        for hook_name, kind in HOOK_KINDS.items():
            caller = getattr(pm.hook, hook_name)
            for impl in caller.get_hookimpls():  # registration order (pluggy calls them reversed)
                self._collect(impl, kind)
        #: name -> (DatasetEntry, plugin), from ``tela_register_datasets`` (``tela data list``)
        self.datasets: dict[str, tuple[Any, str]] = {}
        for impl in pm.hook.tela_register_datasets.get_hookimpls():
            self._collect_datasets(impl)

    def _collect_datasets(self, impl: Any) -> None:
        """Call one plugin's ``tela_register_datasets``; a bad entry marks that plugin broken."""
        from tela_core.data.catalogue import validate_entry

        plugin = impl.plugin_name
        info = self.plugins.setdefault(plugin, PluginInfo(name=plugin))

        def register(entry: Any) -> None:
            validate_entry(entry)
            if entry.name in self.datasets:
                err = DuplicateComponentError("dataset", entry.name, self.datasets[entry.name][1], plugin)
                self.errors.append(err)
                info.error = info.error or str(err)
                return
            self.datasets[entry.name] = (entry, plugin)
            info.components.append(("dataset", entry.name))

        try:
            impl.function(register)
        except Exception as e:
            err = PluginLoadError(plugin, info.dist, e)
            self.errors.append(err)
            info.error = str(err)

    def dataset(self, name: str) -> Any:
        """The catalogued :class:`~tela_core.data.catalogue.DatasetEntry` called ``name``; an unknown name
        lists the registered ones."""
        try:
            return self.datasets[name][0]
        except KeyError:
            raise UnknownComponentError("dataset", name, self.datasets) from None

    def _collect(self, impl: Any, kind: str) -> None:
        plugin = impl.plugin_name
        info = self.plugins.setdefault(plugin, PluginInfo(name=plugin))

        def register(cls: type[Component]) -> None:
            if not (inspect.isclass(cls) and issubclass(cls, Component)):
                raise TypeError(f"register() expects a tela Component class, got {cls!r}")
            if not cls.name:
                raise TypeError(f"{cls.__qualname__} has no name")
            if cls.kind != kind:
                raise TypeError(f"{cls.__qualname__} is a {cls.kind or 'component'}, registered as a {kind}")
            existing = self.entries[kind].get(cls.name)
            if existing is not None:
                err = DuplicateComponentError(kind, cls.name, existing.plugin, plugin)
                self.errors.append(err)
                self.duplicates.setdefault((kind, cls.name), err)
                info.error = info.error or str(err)
                return
            # the docstring's first paragraph, on one line (its first line alone can stop mid-sentence)
            desc = cls.description or " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
            self.entries[kind][cls.name] = Entry(kind, cls.name, desc, cls, plugin)
            info.components.append((kind, cls.name))

        try:
            impl.function(register)
        except Exception as e:  # a broken plugin is named, and does not take the others down
            err = PluginLoadError(plugin, info.dist, e)
            self.errors.append(err)
            info.error = str(err)

    # -- lookup ------------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self.entries[kind])

    def entry(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; :class:`UnknownComponentError` lists the known names if absent,
        :class:`DuplicateComponentError` names both plugins if two registered it.

        If a plugin failed to load, the error says so: the name may be one it would have provided.
        """
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
        return self.entry(kind, name).cls

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Instantiate ``name`` with ``options`` validated by its options model."""
        cls = self.get(kind, name)
        from pydantic import ValidationError

        try:
            return cls(cls.Options(**dict(options or {})))
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or 'options'}: {_problem(err, cls.Options)}" for err in e.errors()
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
