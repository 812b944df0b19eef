"""The output dir guard: what ``tela run`` may do with ``--output`` before it writes there.

:func:`check_output_path` refuses an output that cannot be a directory tela writes;
:func:`check_output` refuses a different config on an existing run unless ``--force``, and tells a
resumable run (same config, not finished) from a finished one (``tela.json`` present).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tela_core.infra.errors import TelaError
from tela_core.infra.io import check_dir_writable

from .config import LAUNCH_FIELDS, RUN_SUBDIR

__all__ = ["check_output", "check_output_path"]


def check_output(output: Path, fingerprint: str, force: bool, config: Mapping[str, Any] | None = None) -> str:
    """Decide what to do with ``output``: ``"new"``, ``"resume"`` or ``"done"``.

    A different config on an existing run is refused unless ``force`` (which clears the old run);
    a non-empty directory that is not a tela run is never cleared.
    """
    out = Path(output)
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise TelaError(f"{out} exists and is not a directory")
    state_file = out / RUN_SUBDIR / "run.json"
    if not state_file.is_file():
        if any(out.iterdir()):
            raise TelaError(f"{out} exists and is not a tela run; choose another --output or remove it")
        return "new"
    try:
        previous = json.loads(state_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        previous = {}
    same = previous.get("fingerprint") == fingerprint
    if not same or force:
        if not force:
            changed = _changed_keys(previous.get("config") or {}, config or {})
            raise TelaError(
                f"{out} holds a run with a different config"
                + (f" (differs in: {', '.join(changed)})" if changed else "")
                + "; pass --force to replace it, or choose another --output"
            )
        shutil.rmtree(out)
        return "new"
    return "done" if (out / "tela.json").is_file() else "resume"


def _changed_keys(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    return sorted(
        k
        for k in set(previous) | set(current)
        if k not in ("output", "hostfile", *LAUNCH_FIELDS) and previous.get(k) != current.get(k)
    )


def check_output_path(out: Path) -> None:
    """One-line errors for an output that cannot be a directory tela writes: a file, a path under a
    file, a read-only dir or mount. Writes nothing."""
    if out.exists() and not out.is_dir():
        raise TelaError(f"{out} exists and is not a directory; choose another --output")
    check_dir_writable(out if out.is_dir() else out.parent, out)
