"""Models tela runs: base models resolved to a local folder (``resolve``), the embedder a router
uses, recorded and checked (``embedders``), and sentence vectors computed once and cached
(``vector_cache``). Heavy libraries (torch, transformers) load only when a function needs them.

``tela_core.models`` was one module before 0.2; its names still resolve here, with a
:class:`~tela_core.infra.deprecation.TelaDeprecationWarning` naming ``tela_core.models.resolve``.
``tela_core.models.embeddings`` is ``vector_cache`` under its old name, with a warning, until 0.3.
"""

from __future__ import annotations

import importlib
from typing import Any

from tela_core.infra.deprecation import MOVED_MODULES, warn_deprecated


def __getattr__(name: str) -> Any:
    if f"tela_core.models.{name}" in MOVED_MODULES:  # a renamed submodule: the import hook warns
        return importlib.import_module(f"tela_core.models.{name}")
    resolve = importlib.import_module("tela_core.models.resolve")
    if name in resolve.__all__:
        warn_deprecated(f"tela_core.models.{name}", f"tela_core.models.resolve.{name}")
        return getattr(resolve, name)
    raise AttributeError(f"module 'tela_core.models' has no attribute {name!r}")
