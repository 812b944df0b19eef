"""Scoring prompts through any router, cached: a second eval of the same router and data does not
run the model again.

:func:`score_prompts` scores in chunks with a progress bar and keeps the result under a key of the
router's files (:func:`router_hash`, ``policy.json`` left out), the scorer's options (speed-only
ones left out) and the prompts. One writer per entry (a file lock); a damaged entry is dropped
and scored again; a cache that cannot be written is a warning, not a failure.

Long scoring passes survive a kill: each finished chunk is written (atomically) under
``KEY.chunks/`` as it completes, and a rerun of the same router on the same prompts scores only
the chunks that are missing. The chunk folder is removed once the whole entry is written.

With a ``launch`` that asks for several ranks (``--processes N``, ``--hostfile``, a scheduler's
nodes), :func:`score_prompts` hands the same chunks to ranks started by the training launcher
(:mod:`tela_core.eval.parallel`): each rank scores its block of chunks into the same ``KEY.chunks/``
folder, so one process and N ranks share their finished work and give the same scores.

An entry keeps what the family returns: ``w``, ``probs`` and, for families that predict every
model's quality, ``quality`` and ``models``. ``quality=True`` (an N-model policy's scoring) asks for
the latter: an entry written without them (before the cache kept them) is scored again, not misread.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.infra.locks import cache_lock
from tela_core.infra.progress import make_progress
from tela_core.routing.artifact import POLICY

from ..components import LoadContext, Scores
from .chunks import CHUNK_SIZE, _warn, chunk_path, chunks_dir, read_scores, save_chunk, save_scores, score_chunk
from .parallel import score_in_ranks

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..components import Scorer, Scores
    from .parallel import ScoreLaunch

__all__ = [
    "score_prompts",
    "router_hash",
    "score_cache_dir",
    "cache_key",
    "chunk_path",
    "chunks_dir",
    "read_scores",
    "save_chunk",
    "save_scores",
    "CHUNK_SIZE",
]


def router_hash(artifact_dir: Path) -> str:
    """SHA-256 over a router dir's files (names and bytes), leaving out ``policy.json``: the policy
    does not change the scores, so calibrating a router keeps its cached scores valid."""
    h = hashlib.sha256()
    root = Path(artifact_dir)
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == POLICY or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def score_cache_dir(fallback: Path | None = None) -> Path | None:
    """``$TELA_CACHE/scores`` when ``TELA_CACHE`` is set, else ``fallback`` (may be None: no cache)."""
    root = os.environ.get("TELA_CACHE")
    if root:
        return Path(root).expanduser() / "scores"
    return fallback


def cache_key(router_id: str, scorer: Scorer, prompts: Sequence[str]) -> str:
    """The cache entry's name: the router's files, the scorer's name and options (speed-only ones
    left out) and the prompts, in order."""
    h = hashlib.sha256()
    opts: Any = getattr(scorer, "options", None)
    settings = opts.model_dump(mode="json") if hasattr(opts, "model_dump") else {}
    for speed_only in ("batch_size", "max_batch_tokens", "prefix_cache"):  # how fast, not what is scored
        settings.pop(speed_only, None)
    opts_json = json.dumps(settings, sort_keys=True, default=str)
    h.update(f"{scorer.name}\0{router_id}\0{opts_json}\0{len(prompts)}\0".encode())
    for p in prompts:
        h.update(hashlib.sha256(p.encode("utf-8", "surrogatepass")).digest())
    return h.hexdigest()[:32]


def score_prompts(
    scorer: Scorer,
    prompts: Sequence[str],
    *,
    router_id: str | None = None,
    cache_dir: Path | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
    description: str = "scoring",
    launch: ScoreLaunch | None = None,
    router_dir: Path | None = None,
    context: LoadContext | None = None,
    quality: bool = False,
) -> tuple[Scores, dict[str, Any]]:
    """Score ``prompts`` with ``scorer`` in chunks (a rich progress bar on stderr), reusing a cached
    result when ``router_id`` (e.g. :func:`router_hash`) and ``cache_dir`` are given.

    With a ``launch`` of several ranks (:attr:`~tela_core.eval.parallel.ScoreLaunch.parallel`), the
    ranks load the router in ``router_dir`` and score the chunks (:func:`tela_core.eval.parallel.score_in_ranks`);
    ``scorer`` then only names the cache entry, so it may be one whose model is not loaded
    (``Router.load(..., load_scorer=False)``), and ``context`` is how the ranks load it: the
    caller's :class:`~tela_core.components.LoadContext` (trust remote code, a batch size), as given
    to ``Router.load`` (None: what ``Router.load`` was told for ``scorer``, and its ``batch_size``
    option). On a node of a multi-node run that does not hold rank 0,
    :class:`~tela_core.eval.parallel.NodePartDone` is raised once this node's ranks are done.

    With ``quality``, the scores carry each model's predicted quality (``Scores.quality`` and
    ``models``) for a family that predicts it, as :meth:`Router.scores` with ``quality=True``; a
    cache entry without it is scored again.

    Returns the scores and info ``{"cached": bool, "seconds": float, "key": str | None}``
    (``"resumed"``: prompts found already scored; ``"processes"``: ranks, when launched).
    """
    ranks = launch is not None and launch.parallel
    if ranks and router_dir is None:
        raise ValueError("scoring on several ranks needs router_dir: the ranks load the router themselves")
    key = cache_key(router_id, scorer, prompts) if router_id and cache_dir else None
    if not key:
        if ranks:
            return _in_ranks(
                scorer, context, launch, router_dir, prompts, None, None, chunk_size, progress, description, quality
            )
        return _score_uncached(scorer, prompts, key, None, chunk_size, progress, description, quality)
    path = Path(cache_dir) / f"{key}.npz"  # type: ignore[arg-type]
    if ranks and launch.nodes.multi:  # type: ignore[union-attr]
        # One command per node: every node launches, even where the entry exists (the ranks then
        # read it), or the other nodes would wait for it at the rendezvous; rank 0 writes the entry.
        # No lock: the other nodes' commands must not wait on node 0's.
        return _in_ranks(
            scorer, context, launch, router_dir, prompts, key, path, chunk_size, progress, description, quality
        )
    hit = read_scores(path, len(prompts), need_quality=quality)
    if hit is not None:
        return hit, {"cached": True, "seconds": 0.0, "key": key}

    # One writer per entry: a second eval of the same router and prompts waits, then reads.
    with cache_lock(path, on_wait=lambda who: _warn(f"waiting for {who}, which is scoring the same prompts")) as held:
        if held is None:
            _warn(f"cannot write the score cache in {path.parent}; continuing without it")
        hit = read_scores(path, len(prompts), need_quality=quality) if held is not None else None
        if hit is not None:
            return hit, {"cached": True, "seconds": 0.0, "key": key}
        if ranks:
            return _in_ranks(
                scorer,
                context,
                launch,
                router_dir,
                prompts,
                key,
                path if held is not None else None,
                chunk_size,
                progress,
                description,
                quality,
            )
        return _score_uncached(
            scorer, prompts, key, path if held is not None else None, chunk_size, progress, description, quality
        )


def _in_ranks(
    scorer: Scorer,
    context: LoadContext | None,
    launch: Any,
    router_dir: Any,
    prompts: Sequence[str],
    key: str | None,
    entry: Path | None,
    chunk_size: int,
    progress: bool,
    description: str,
    quality: bool = False,
) -> tuple[Scores, dict[str, Any]]:
    """Score on launched ranks, which load the router with ``context`` (None: as ``scorer`` was)."""
    if context is None:  # a caller that does not say: what Router.load recorded for the scorer
        legacy = getattr(scorer, "_legacy_context", None)
        context = legacy() if legacy is not None else LoadContext()
    batch_size = context.batch_size
    if batch_size is None:
        batch_size = getattr(getattr(scorer, "options", None), "batch_size", None)
    return score_in_ranks(
        Path(router_dir),
        prompts,
        launch,
        key=key,
        entry=entry,
        chunk_size=chunk_size,
        progress=progress,
        description=description,
        trust_remote_code=context.trust_remote_code,
        score_batch_size=batch_size,
        quality=quality,
    )


def _score_uncached(
    scorer: Scorer,
    prompts: Sequence[str],
    key: str | None,
    path: Path | None,
    chunk_size: int,
    progress: bool,
    description: str,
    quality: bool = False,
) -> tuple[Scores, dict[str, Any]]:
    import numpy as np

    t0 = time.perf_counter()
    ws: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    qs: list[np.ndarray] = []
    models: tuple[str, ...] | None = None
    has_probs = has_quality = True
    starts = range(0, len(prompts), chunk_size)
    parts = chunks_dir(path) if path is not None else None
    resumed = 0
    bar = _progress(progress)
    with bar:
        task = bar.add_task(description, total=len(prompts))
        for start in starts:
            chunk = prompts[start : start + chunk_size]
            part = chunk_path(parts, start, start + len(chunk)) if parts is not None else None
            s = read_scores(part, len(chunk), quiet=True, need_quality=quality) if part is not None else None
            if s is not None:
                resumed += len(chunk)
            else:
                s = score_chunk(scorer, list(chunk), quality)
                got = np.asarray(s.w).reshape(-1).shape[0]
                if got != len(chunk):
                    raise TelaError(f"scorer {scorer.name!r} returned {got} scores for {len(chunk)} prompts")
                if part is not None:
                    save_chunk(part, s)
            w = np.asarray(s.w, dtype=float).reshape(-1)
            ws.append(w)
            if s.probs is None:
                has_probs = False
            else:
                ps.append(np.asarray(s.probs, dtype=float))
            if s.quality is None or s.models is None or (models is not None and tuple(s.models) != models):
                has_quality = False
            else:
                models = tuple(s.models)
                qs.append(np.asarray(s.quality, dtype=float))
            bar.advance(task, len(chunk))
    w_all = np.concatenate(ws) if ws else np.zeros(0)
    probs_all = np.concatenate(ps) if has_probs and ps else None
    quality_all = np.concatenate(qs) if has_quality and qs else None
    models_all = models if quality_all is not None else None
    seconds = time.perf_counter() - t0
    if path is not None:
        try:
            save_scores(path, w_all, probs_all, quality_all, models_all)
        except OSError as e:
            _warn(f"cannot write the score cache in {path.parent} ({e.strerror or e}); continuing without it")
        else:
            if parts is not None:
                import shutil

                shutil.rmtree(parts, ignore_errors=True)
    scores = Scores(w=w_all, probs=probs_all, quality=quality_all, models=models_all)
    return scores, {"cached": False, "seconds": seconds, "key": key, "resumed": resumed}


def _progress(enabled: bool) -> Any:
    return make_progress(enabled)
