"""The score cache's files: a cache entry ``KEY.npz`` and the finished chunks of a pass still
running, ``KEY.chunks/START-END.npz``. One module that both the cache (:mod:`.score_cache`) and the
data-parallel ranks (:mod:`.parallel`, :mod:`.score_worker`) read and write, so neither imports the
other's internals. Every write is atomic: a kill leaves a file whole or absent.

A file holds ``w``, and ``probs`` for score families; for families that predict every model's
quality also ``quality`` ((n, M)) and ``models`` (its M column names). A file written before tela
kept ``quality`` (or by a scoring pass that did not ask for it) is still read; a caller that needs
each model's quality (:func:`read_scores` with ``need_quality``) finds it missing and scores again."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.io import atomic_open

from ..components import Scores

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..components import Scores

__all__ = ["CHUNK_SIZE", "chunks_dir", "chunk_path", "read_scores", "save_chunk", "save_scores", "score_chunk"]

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


def read_scores(path: Path, n: int, quiet: bool = False, need_quality: bool = False) -> Scores | None:
    """The cached scores in ``path`` when it holds ``n`` of them; None when absent or damaged (a
    damaged entry is dropped and computed again). With ``need_quality``, an entry without each
    model's predicted quality (one written before the cache kept it) is None too, but kept and not
    called damaged: the caller scores again and overwrites it."""
    import numpy as np

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            w = z["w"]
            probs = z["probs"] if "probs" in z.files else None
            quality = z["quality"] if "quality" in z.files else None
            models = tuple(str(m) for m in z["models"]) if "models" in z.files else None
        whole = len(w) == n and (probs is None or len(probs) == n)
        if quality is not None and (models is None or quality.shape != (n, len(models))):
            whole = False
        if whole:
            if need_quality and quality is None:
                return None  # written without it: score again, not damaged
            return Scores(w=w, probs=probs, quality=quality, models=models)
    except Exception:  # truncated, garbage or foreign: BadZipFile, EOFError, KeyError, ValueError, OSError
        pass
    if not quiet:
        _warn(f"damaged score cache entry {path}; scoring again")
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def score_chunk(scorer: Any, prompts: list[str], quality: bool = False) -> Scores:
    """``scorer.score(prompts)``; with ``quality``, each model's predicted quality as well, from
    the family's ``predict_models`` when its ``score`` does not fill it (as :meth:`Router.scores`)."""
    s = scorer.score(prompts)
    if quality and s.quality is None and hasattr(scorer, "predict_models"):
        from tela_core.routing.router import _with_quality

        s = _with_quality(s, scorer, prompts)
    return s


def save_chunk(part: Path, s: Scores) -> None:
    """One finished chunk, written atomically so a kill leaves it whole or absent."""
    import numpy as np

    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        probs = None if s.probs is None else np.asarray(s.probs, dtype=float)
        quality = None if s.quality is None else np.asarray(s.quality, dtype=float)
        save_scores(part, np.asarray(s.w, dtype=float).reshape(-1), probs, quality, s.models)
    except OSError:
        pass  # a chunk that cannot be kept is only a lost resume point


def save_scores(
    path: Path,
    w: np.ndarray,
    probs: np.ndarray | None,
    quality: np.ndarray | None = None,
    models: Sequence[str] | None = None,
) -> None:
    """Write ``w`` (and ``probs``; ``quality`` with its column names ``models``) to ``path``
    atomically: a kill leaves the file whole or absent."""
    import numpy as np

    arrays: dict[str, Any] = {"w": w}
    if probs is not None:
        arrays["probs"] = probs
    if quality is not None and models is not None:
        arrays["quality"] = np.asarray(quality, dtype=float)
        arrays["models"] = np.array([str(m) for m in models], dtype=str)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # a binary file object
