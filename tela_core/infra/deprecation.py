"""Deprecation: how a public name that moved or was renamed keeps working for a release.

tela's promise to plugin authors (``docs/plugins.md``, "Public API"): a public module or name that
is renamed or removed keeps a shim for at least one minor release. Using the shim works and warns
with :class:`TelaDeprecationWarning`, naming the replacement and the release that removes it.

Two kinds of shim live here:

- :data:`MOVED_MODULES`: whole modules that moved (``tela_core.records`` is now
  ``tela_core.data.records``). An import hook makes ``import tela_core.records`` return the new
  module object itself, so ``from tela_core.records import Record`` and ``monkeypatch`` on either
  name act on the same module.
- :func:`deprecated_alias`: one function kept under its old name (``artifact.load_router``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType
from typing import Any, TypeVar

__all__ = [
    "TelaDeprecationWarning",
    "MOVED_MODULES",
    "REMOVED_IN",
    "warn_deprecated",
    "deprecated_alias",
    "install_module_aliases",
]

#: the release that removes the shims of the 0.2 layout move
REMOVED_IN = "0.3"


class TelaDeprecationWarning(DeprecationWarning):
    """A public tela name that still works but will be removed; the message names the replacement."""


#: old module -> new module (tela 0.2 grouped tela_core's root modules by concern)
MOVED_MODULES: dict[str, str] = {
    "tela_core.records": "tela_core.data.records",
    "tela_core.detect": "tela_core.data.detect",
    "tela_core.sampling": "tela_core.data.sampling",
    "tela_core.catalogue": "tela_core.data.catalogue",
    "tela_core.download": "tela_core.data.download",
    "tela_core.labels": "tela_core.data.labels",
    "tela_core.duplicates": "tela_core.data.duplicates",
    "tela_core.fingerprint": "tela_core.data.fingerprint",
    "tela_core.prompt_lines": "tela_core.data.prompt_lines",
    "tela_core.prompts": "tela_core.data.prompts",
    "tela_core.protocols": "tela_core.data.protocols",
    "tela_core.embeddings": "tela_core.models.vector_cache",
    "tela_core.router": "tela_core.routing.router",
    "tela_core.family": "tela_core.routing.family",
    "tela_core.probe": "tela_core.routing.probe",
    "tela_core.targets": "tela_core.routing.targets",
    "tela_core.artifact": "tela_core.routing.artifact",
    "tela_core.io": "tela_core.infra.io",
    "tela_core.locks": "tela_core.infra.locks",
    "tela_core.errors": "tela_core.infra.errors",
    "tela_core.progress": "tela_core.infra.progress",
    "tela_core.registry": "tela_core.plugins.registry",
    "tela_core.metrics": "tela_core.eval.metrics",
    "tela_core.testing": "tela_core.testkit",
    "tela_core.pytest_plugin": "tela_core.testkit.pytest_plugin",
    # moved during 0.1's development without a shim; a plugin written against those docs still imports
    "tela_core.pipeline": "tela_core.train",
    "tela_core.evaluation": "tela_core.eval",
    "tela_core.zoo": "tela_core.eval.zoo",
    "tela_core.nmodel": "tela_core.eval.nmodel",
    # renamed in 0.2 for what it holds (the vector cache), beside models.embedders (the Embedder kind)
    "tela_core.models.embeddings": "tela_core.models.vector_cache",
    # moved to infra in 0.2: routing (calibrate --traffic) and collect read these logs too
    "tela_core.serve.logfile": "tela_core.infra.logfile",
}


def _user_frame() -> FrameType | None:
    """The first frame outside this module, the import machinery and tela's shim ``__getattr__``s:
    the line of the plugin's code that used the old name, which is where the warning should point."""
    f: FrameType | None = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not (name == __file__ or "importlib" in name or f.f_code.co_name == "__getattr__"):
            return f
        f = f.f_back
    return None


def warn_deprecated(old: str, new: str, *, removed_in: str = REMOVED_IN, stacklevel: int | None = None) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` and goes in ``removed_in``, attributed to
    the user's line that used ``old`` (so Python's default filters show it when that is ``__main__``):
    the first frame outside the shim machinery, or ``stacklevel`` frames above the caller's."""
    message = f"{old} is deprecated: use {new} instead ({old} will be removed in tela {removed_in})"
    if stacklevel is not None:
        warnings.warn(message, TelaDeprecationWarning, stacklevel=stacklevel + 1)
        return
    frame = _user_frame()
    if frame is None:
        warnings.warn(message, TelaDeprecationWarning, stacklevel=2)
        return
    g = frame.f_globals
    warnings.warn_explicit(
        message,
        TelaDeprecationWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=g.get("__name__", "<unknown>"),
        registry=g.setdefault("__warningregistry__", {}),
    )


F = TypeVar("F", bound=Callable[..., Any])


def deprecated_alias(func: F, old: str, new: str, *, removed_in: str = REMOVED_IN) -> F:
    """``func`` under an old name: calling it warns once per call site, then calls ``func``."""

    @functools.wraps(func)
    def shim(*args: Any, **kwargs: Any) -> Any:
        warn_deprecated(old, new, removed_in=removed_in)
        return func(*args, **kwargs)

    shim.__doc__ = f"Deprecated: use {new} (removed in tela {removed_in}).\n\n{func.__doc__ or ''}"
    return shim  # type: ignore[return-value]


class _AliasLoader(importlib.abc.Loader):
    """Loads an old module name as the new module object (one module, two names)."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_deprecated(self.old, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        # the new module is already executed; the import system re-files it under the old name
        return None


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED_MODULES` (and their submodules)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, new), is_package=False)


_installed = False


def install_module_aliases() -> None:
    """Put the moved-module finder on ``sys.meta_path`` (idempotent; ``tela_core`` calls it)."""
    global _installed
    if not _installed:
        sys.meta_path.append(_MovedModuleFinder())
        _installed = True


def package_getattr(package: str, moved: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: attribute ``name`` of an old module path resolves
    to the module it moved to, with a warning (``tela_core.records`` after ``import tela_core``)."""

    def __getattr__(name: str) -> Any:
        old = f"{package}.{name}"
        if old in moved:
            return importlib.import_module(old)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
