"""Names of tela 0.1's routing API kept, with a :class:`~tela_core.TelaDeprecationWarning`, until
tela 0.3 (the deprecation policy: ``docs/plugins.md``). Remove this module with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tela_core.infra.deprecation import deprecated_alias
from tela_core.routing.router import Router

__all__ = ["load_router"]


def _load_router(artifact_dir: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The loaded scorer of the router in ``artifact_dir`` (what ``load_router`` returned in 0.1)."""
    return Router.load(artifact_dir, trust_remote_code=trust_remote_code).scorer


#: Deprecated since 0.2: ``Router.load(dir).scorer`` (or the ``Router`` itself) replaces it. Reached as
#: ``tela_core.routing.artifact.load_router`` (and ``tela_core.artifact.load_router``), its 0.1 name.
load_router = deprecated_alias(_load_router, "tela_core.artifact.load_router", "tela_core.Router.load(dir).scorer")
