"""One data-parallel scoring rank: ``python -m tela_core.eval.score_worker JOB_DIR``.

Started by the launcher (torchrun, or deepspeed with a hostfile) for :func:`tela_core.eval.parallel.score_in_ranks`.
It reads ``JOB_DIR/job.json`` and ``prompts.jsonl``, scores its block of the score cache's chunks
(:func:`tela_core.eval.parallel.shard_chunks`) that are not already in the chunk folder, writing
each as it finishes, then sends its scores to rank 0 over gloo; rank 0 writes them, in input
order, to the cache entry. The router is loaded only if a chunk is missing. ``rank-R.json`` says
how far the rank is (``starting``, ``scoring``, ``done``; ``failed`` with the error in one line;
``stopped`` when the launcher stopped it because another rank died).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tela_core.components import Scores
from tela_core.eval.chunks import chunk_path, read_scores, save_chunk, save_scores, score_chunk
from tela_core.eval.parallel import shard_chunks
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.plugins.discovery import add_plugin
from tela_core.routing.router import Router

__all__ = ["main"]


class _Status:
    """This rank's ``rank-R.json``, rewritten atomically as the rank goes."""

    def __init__(self, work: Path, rank: int, world: int, attempt: str) -> None:
        self.path = work / f"rank-{rank}.json"
        self.state: dict[str, Any] = {
            "rank": rank,
            "world": world,
            "attempt": attempt,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "status": "starting",
            "shard": 0,
            "done": 0,
            "resumed": 0,
            "scored": 0,
        }
        self.write()

    def write(self, **changes: Any) -> None:
        self.state.update(changes)
        try:
            atomic_write_json(self.path, self.state)
        except OSError:
            pass  # progress is for show; the scores are in the chunks


def _add_plugins(refs: list[dict[str, Any]]) -> None:
    """Register the plugins the launching process had added in-process
    (:func:`tela_core.eval.parallel._plugin_refs`)."""
    import importlib

    for ref in refs:
        obj: Any = importlib.import_module(ref["module"])
        for part in (ref.get("attr") or "").split(".") if ref.get("attr") else []:
            obj = getattr(obj, part)
        add_plugin(obj() if ref.get("instance") else obj, ref["name"])


def _scorer(spec: dict[str, Any], local_rank: int) -> Any:
    """The router's scorer, loaded as the launching command loaded it; on a GPU, this rank's."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass

    _add_plugins(spec.get("plugins") or [])
    r = Router.load(
        spec["router"],
        trust_remote_code=bool(spec.get("trust_remote_code")),
        score_batch_size=spec.get("score_batch_size"),
    )
    return r.scorer


def _score_shard(
    spec: dict[str, Any], work: Path, rank: int, world: int, local_rank: int, status: _Status
) -> list[Any]:
    """Score this rank's chunks (reusing finished ones); return ``[(start, w, probs, quality,
    models), ...]`` (``quality``/``models`` None for a family that does not predict each model's)."""
    import numpy as np

    n, size = int(spec["n"]), int(spec["chunk_size"])
    mine = shard_chunks(n, size, world, rank)
    status.write(status="scoring", shard=sum(e - s for s, e in mine))
    if not mine:
        return []
    lo, hi = mine[0][0], mine[-1][1]  # a contiguous block: read only its lines
    prompts: list[str] = []
    with open(work / "prompts.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= hi:
                break
            if i >= lo:
                prompts.append(json.loads(line))
    if len(prompts) != hi - lo:
        raise TelaError(f"{work / 'prompts.jsonl'}: {lo + len(prompts)} prompts, the job says {n}")
    parts = Path(spec["chunks"])
    want = bool(spec.get("quality"))  # each model's predicted quality (an N-model policy's scoring)
    whole = read_scores(
        Path(spec["result"]), n, quiet=True, need_quality=want
    )  # a multi-node rerun: the entry is there
    scorer = None
    out = []
    done = resumed = scored = 0
    for start, end in mine:
        part = chunk_path(parts, start, end)
        s: Scores | None
        if whole is not None:
            s = Scores(
                w=np.asarray(whole.w)[start:end],
                probs=None if whole.probs is None else whole.probs[start:end],
                quality=None if whole.quality is None else whole.quality[start:end],
                models=whole.models,
            )
        else:
            s = read_scores(part, end - start, quiet=True, need_quality=want)
        if s is None:
            if scorer is None:
                t_load = time.perf_counter()
                scorer = _scorer(spec, local_rank)
                status.write(load_seconds=round(time.perf_counter() - t_load, 3))
            s = score_chunk(scorer, prompts[start - lo : end - lo], want)
            got = np.asarray(s.w).reshape(-1).shape[0]
            if got != end - start:
                raise TelaError(f"scorer {scorer.name!r} returned {got} scores for {end - start} prompts")
            save_chunk(part, s)
            scored += end - start
        else:
            resumed += end - start
        done += end - start
        probs = None if s.probs is None else np.asarray(s.probs, dtype=float)
        quality = None if s.quality is None or s.models is None else np.asarray(s.quality, dtype=float)
        models = None if quality is None else tuple(s.models or ())
        out.append((start, np.asarray(s.w, dtype=float).reshape(-1), probs, quality, models))
        status.write(done=done, resumed=resumed, scored=scored)
    return out


def _gather(mine: list[Any], rank: int, world: int) -> list[Any] | None:
    """Every rank's chunks at rank 0 (None elsewhere). The group is made here, once this rank's
    shard is done, with a long timeout: a rank that finishes early waits for the slowest."""
    if world == 1:
        return mine
    from datetime import timedelta

    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=timedelta(hours=float(os.environ.get("TELA_SCORE_TIMEOUT_H", "24"))))
    try:
        got: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(mine, got, dst=0)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if got is None:
        return None
    return [c for part in got for c in (part or [])]


def _write_result(chunks: list[Any], spec: dict[str, Any]) -> None:
    """Rank 0: the chunks in input order, checked to cover every prompt once, to the cache entry."""
    import numpy as np

    chunks = sorted(chunks, key=lambda c: c[0])
    at = 0
    for start, w, *_rest in chunks:
        if start != at:
            raise TelaError(f"scores of prompts {at}..{start - 1} are missing after the gather")
        at += len(w)
    if at != int(spec["n"]):
        raise TelaError(f"gathered {at} scores for {spec['n']} prompts")
    w_all = np.concatenate([c[1] for c in chunks])
    has_probs = all(c[2] is not None for c in chunks)
    probs = np.concatenate([c[2] for c in chunks]) if has_probs else None
    columns = {c[4] for c in chunks}  # one family: the same models in every chunk
    has_quality = len(columns) == 1 and None not in columns
    quality = np.concatenate([c[3] for c in chunks]) if has_quality else None
    models = next(iter(columns)) if has_quality else None
    Path(spec["result"]).parent.mkdir(parents=True, exist_ok=True)
    save_scores(Path(spec["result"]), w_all, probs, quality, models)


def main(argv: list[str] | None = None) -> int:
    """Run one rank; exit 0 when its part is done, 1 after writing its error to ``rank-R.json``."""
    args = sys.argv[1:] if argv is None else argv
    work = Path(args[0])
    spec = json.loads((work / "job.json").read_text(encoding="utf-8"))
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    attempt = os.environ.get("TELA_SCORE_ATTEMPT") or spec["attempt"]
    status = _Status(work, rank, world, attempt)

    def _stopped(signum: int, frame: Any) -> None:  # the launcher stops the others when one rank dies
        status.write(status="stopped")
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, _stopped)
    t0 = time.perf_counter()
    try:
        mine = _score_shard(spec, work, rank, world, local_rank, status)
        status.write(status="gathering", score_seconds=round(time.perf_counter() - t0, 3))
        # The gather blocks in C, where a Python handler would never run: let SIGTERM end it at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        everything = _gather(mine, rank, world)
        if everything is not None:
            _write_result(everything, spec)
        status.write(status="done", seconds=round(time.perf_counter() - t0, 3))
        return 0
    except Exception as e:  # noqa: BLE001 - reported in one line by the launching command
        traceback.print_exc()  # to the job's log, not the user's terminal
        said = " ".join(str(e).split()) or type(e).__name__
        status.write(
            status="failed", error=said[:500] if isinstance(e, _tela_error()) else f"{type(e).__name__}: {said[:400]}"
        )
        return 1


def _tela_error() -> type:
    return TelaError


if __name__ == "__main__":
    sys.exit(main())
