"""``tela run --add-to ROUTER``: the run's data read as for training, then a new model added to
a trained router (:mod:`tela_core.routing.add_model`) instead of a router trained.

The router's family fits the new model, so the options that choose or train a family do not apply
and are refused in one line, as is a router folder given as its own output. ROUTER may be a router
folder or a versions folder (:mod:`tela_core.routing.versions`): its current version is extended
(the result routes among one more model, so it is served from a folder of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from tela_core.infra.errors import TelaError
from tela_core.routing.add_model import add_model
from tela_core.routing.versions import is_versions_dir
from tela_core.routing.versions import resolve as resolve_version

from .config import RunConfig
from .data import read_records

__all__ = ["run_add_model", "APPLIES"]

#: the ``tela run`` settings that mean something with ``--add-to`` (the others choose or train a family)
APPLIES = frozenset({"source", "data", "weight", "protocol", "output", "seed", "sample"})


def run_add_model(
    router: Path,
    cfg: RunConfig,
    given: Iterable[str],
    *,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Add the new model of ``cfg``'s data to ``router`` into ``cfg.output``; ``given`` names the
    settings the user gave (flags and config file), checked against :data:`APPLIES`."""
    extra = sorted(k for k in given if k not in APPLIES)
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise TelaError(
            f"{flags}: not with --add-to (the router's own family fits the new model from --data); "
            f"with --add-to, tela run takes --data, --source, --output and --force"
        )
    src = Path(router)
    if is_versions_dir(src):
        src, version = resolve_version(src)
        echo(f"extending {router}'s current version {version} ({src})")
    records = read_records(cfg)
    return add_model(src, records, cfg.output, data_label=cfg.data_label(), force=force, echo=echo)
