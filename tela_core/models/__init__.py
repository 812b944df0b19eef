"""Models tela runs: base models resolved to a local folder (``resolve``) and sentence embeddings
(``embeddings``). Heavy libraries (torch, transformers) load only when a function needs them.

``tela_core.models`` was one module before 0.2; its names still resolve here, with a
:class:`~tela_core.infra.deprecation.TelaDeprecationWarning` naming ``tela_core.models.resolve``.
"""

from __future__ import annotations

import importlib
from typing import Any

from tela_core.infra.deprecation import warn_deprecated


def __getattr__(name: str) -> Any:
    resolve = importlib.import_module("tela_core.models.resolve")
    if name in resolve.__all__:
        warn_deprecated(f"tela_core.models.{name}", f"tela_core.models.resolve.{name}")
        return getattr(resolve, name)
    raise AttributeError(f"module 'tela_core.models' has no attribute {name!r}")
