"""The score cache's files: a cache entry ``KEY.npz`` and the finished chunks of a pass still
running, ``KEY.chunks/START-END.npz``. One module that both the cache (:mod:`.score_cache`) and the
data-parallel ranks (:mod:`.parallel`, :mod:`.score_worker`) read and write, so neither imports the
other's internals. Every write is atomic: a kill leaves a file whole or absent."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from tela_core.infra.io import atomic_open

from ..components import Scores

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..components import Scores

__all__ = ["CHUNK_SIZE", "chunks_dir", "chunk_path", "read_scores", "save_chunk", "save_scores"]

#: prompts per cached chunk: the unit a kill loses and a rerun (or another rank) picks up
CHUNK_SIZE = 128


def chunks_dir(entry: Path) -> Path:
    """Where the finished chunks of cache entry ``entry`` (``KEY.npz``) wait: ``KEY.chunks/``."""
    return entry.with_name(entry.stem + ".chunks")


def chunk_path(parts: Path, start: int, end: int) -> Path:
    """The file of the chunk holding prompts ``start``..``end - 1``."""
    return parts / f"{start:09d}-{end:09d}.npz"


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def read_scores(path: Path, n: int, quiet: bool = False) -> Scores | None:
    """The cached scores in ``path`` when it holds ``n`` of them; None when absent or damaged (a
    damaged entry is dropped and computed again)."""
    import numpy as np

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            w = z["w"]
            probs = z["probs"] if "probs" in z.files else None
        if len(w) == n and (probs is None or len(probs) == n):
            return Scores(w=w, probs=probs)
    except Exception:  # truncated, garbage or foreign: BadZipFile, EOFError, KeyError, ValueError, OSError
        pass
    if not quiet:
        _warn(f"damaged score cache entry {path}; scoring again")
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def save_chunk(part: Path, s: Scores) -> None:
    """One finished chunk, written atomically so a kill leaves it whole or absent."""
    import numpy as np

    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        probs = None if s.probs is None else np.asarray(s.probs, dtype=float)
        save_scores(part, np.asarray(s.w, dtype=float).reshape(-1), probs)
    except OSError:
        pass  # a chunk that cannot be kept is only a lost resume point


def save_scores(path: Path, w: np.ndarray, probs: np.ndarray | None) -> None:
    """Write ``w`` (and ``probs``) to ``path`` atomically: a kill leaves the file whole or absent."""
    import numpy as np

    arrays = {"w": w} if probs is None else {"w": w, "probs": probs}
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # a binary file object
