"""Data-parallel scoring: one router's prompts sharded over ranks that the training launcher starts.

``tela eval``, ``zoo``, ``calibrate`` and ``route`` take ``tela run``'s launch options
(``--processes N`` on one node, ``--hostfile`` across nodes over ssh, or one command per node under
a scheduler: :mod:`tela_core.train.multinode`). With more than one rank, :func:`score_in_ranks`:

1. writes the job (router, prompts, where the chunks go) into ``KEY.job/`` beside the score
   cache's entry and starts the ranks with :func:`tela_core.train.launch.launcher_command` on
   :mod:`tela_core.eval.score_worker`;
2. each rank takes a contiguous block of the score cache's 128-prompt chunks
   (:func:`shard_chunks`: the chunk grid does not depend on the number of ranks), scores those
   it does not find in ``KEY.chunks/`` and writes each one as it finishes;
3. rank 0 gathers every rank's scores over gloo, puts them in input order and writes the cache
   entry; this process reads it.

A killed rank loses only its unfinished chunk: the command fails with one line naming the rank
(:class:`RankFailed`), and a rerun, with any number of ranks, scores only the chunks that are
missing. Scores are those of one process: the chunks (and so the scorer's batches) are the same.
Progress: one bar summing the ranks' ``rank-R.json`` files (on a multi-node run without a shared
cache folder, this node's ranks).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.components import Scores
from tela_core.eval.chunks import chunks_dir, read_scores
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_open, atomic_write_json, json_line
from tela_core.infra.progress import make_progress
from tela_core.plugins.discovery import added_plugins
from tela_core.train.launch import launcher_command, spawn_launcher
from tela_core.train.multinode import NodeLaunch, resolve_nodes

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Scores

__all__ = [
    "ScoreLaunch",
    "RankFailed",
    "NodePartDone",
    "score_launch",
    "shard_chunks",
    "score_in_ranks",
    "WORKER_MODULE",
    "ATTEMPT_ENV",
]

#: the module every rank runs (``python -m tela_core.eval.score_worker JOB_DIR``)
WORKER_MODULE = "tela_core.eval.score_worker"
#: names this command's attempt, so that it reads only its own ranks' status files
ATTEMPT_ENV = "TELA_SCORE_ATTEMPT"


class RankFailed(TelaError):
    """A scoring rank died or failed; the message names it. The chunks the ranks finished are kept."""


class NodePartDone(Exception):
    """Not an error: on a node of a multi-node run that does not hold rank 0, this node's ranks are
    done; the node holding rank 0 merges the scores and writes the command's output."""


@dataclass(frozen=True)
class ScoreLaunch:
    """Where scoring runs: ``processes`` ranks on this node; ``hostfile``: on every host it lists
    (``deepspeed --hostfile``); ``nodes``: this node's place in a scheduler-launched run."""

    processes: int = 1
    hostfile: Path | None = None
    nodes: NodeLaunch = field(default_factory=NodeLaunch)

    @property
    def parallel(self) -> bool:
        """True when the prompts go to launched ranks rather than this process."""
        return self.processes > 1 or self.hostfile is not None or self.nodes.multi

    def describe(self) -> str:
        """``"2 ranks"``, ``"2 ranks per host of hosts.txt"``, ``"2 ranks on node 0 of 2"``: for a progress line."""
        ranks = f"{self.processes} rank{'s' if self.processes != 1 else ''}"
        if self.hostfile is not None:
            return f"{ranks} per host of {self.hostfile}"
        if self.nodes.multi:
            return f"{ranks} on {self.nodes.describe()}"
        return ranks


def score_launch(
    processes: int | None = None,
    hostfile: Path | None = None,
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
    rdzv_endpoint: str | None = None,
) -> ScoreLaunch:
    """The :class:`ScoreLaunch` of a scoring command's launch options (None: not given).

    Without any of them the command scores in its own process, whatever a scheduler's variables
    say; with one given, the scheduler's variables place the node as they do for ``tela run``.
    """
    if processes is not None and processes < 1:
        raise TelaError(f"--processes must be at least 1, got {processes}")
    node_flags = (nnodes, node_rank, master_addr, master_port, rdzv_endpoint)
    if hostfile is not None:
        if any(v is not None for v in node_flags):
            raise TelaError(
                "--hostfile starts every node itself (deepspeed over ssh); drop --nnodes/--node-rank/"
                "--master-addr/--master-port/--rdzv-endpoint, or drop --hostfile and run the command on each node"
            )
        if not Path(hostfile).is_file():
            raise TelaError(f"{hostfile}: hostfile not found")
        return ScoreLaunch(processes or 1, Path(hostfile), NodeLaunch(master_addr=master_addr, master_port=master_port))
    if processes is None and all(v is None for v in node_flags):
        return ScoreLaunch()
    return ScoreLaunch(processes or 1, None, resolve_nodes(nnodes, node_rank, master_addr, master_port, rdzv_endpoint))


def shard_chunks(n: int, chunk_size: int, world: int, rank: int) -> list[tuple[int, int]]:
    """The chunks (``(start, end)`` prompt ranges) rank ``rank`` of ``world`` scores: a contiguous
    block of the grid ``0, chunk_size, 2 * chunk_size, …`` (the score cache's), the first
    ``len % world`` ranks taking one chunk more."""
    grid = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    per, extra = divmod(len(grid), world)
    first = rank * per + min(rank, extra)
    return grid[first : first + per + (1 if rank < extra else 0)]


def _plugin_refs() -> list[dict[str, Any]]:
    """The plugins added in this process (:func:`tela_core.plugins.discovery.add_plugin`) that the
    ranks can import again: modules, top-level classes, and instances of top-level classes built
    without arguments. Others are named in a warning (the ranks would not know their families)."""
    import inspect
    import sys

    refs: list[dict[str, Any]] = []
    for plugin, name in added_plugins():
        if inspect.ismodule(plugin):
            refs.append({"name": name, "module": plugin.__name__})
            continue
        cls = plugin if inspect.isclass(plugin) else type(plugin)
        module, qual = getattr(cls, "__module__", ""), getattr(cls, "__qualname__", "")
        if module and module != "__main__" and "<locals>" not in qual:
            refs.append({"name": name, "module": module, "attr": qual, "instance": not inspect.isclass(plugin)})
        else:
            print(
                f"warning: plugin {name!r} was added in this process and cannot be passed to the scoring ranks "
                "(define it at the top level of an importable module)",
                file=sys.stderr,
            )
    return refs


def _write_job(work: Path, spec: dict[str, Any], prompts: Sequence[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with atomic_open(work / "prompts.jsonl", "w") as fh:
        for p in prompts:
            fh.write(json_line(p) + "\n")
    atomic_write_json(work / "job.json", spec)


def _rank_states(work: Path, attempt: str) -> dict[int, dict[str, Any]]:
    """rank -> its status file (``rank-R.json``), for the ranks of this attempt."""
    out: dict[int, dict[str, Any]] = {}
    for p in work.glob("rank-*.json"):
        try:
            st = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now
        if isinstance(st, dict) and st.get("attempt") == attempt and isinstance(st.get("rank"), int):
            out[st["rank"]] = st
    return out


def score_in_ranks(
    router_dir: Path,
    prompts: Sequence[str],
    launch: ScoreLaunch,
    *,
    key: str | None,
    entry: Path | None,
    chunk_size: int = 128,
    progress: bool = True,
    description: str = "scoring",
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
    quality: bool = False,
) -> tuple[Scores, dict[str, Any]]:
    """Score ``prompts`` with the router in ``router_dir`` on the ranks ``launch`` describes
    (with ``quality``, each model's predicted quality too, for a family that predicts it).

    ``entry`` is the score cache's entry for them (``KEY.npz``; its chunks in ``KEY.chunks/``); with
    None, the work goes to a temporary folder removed afterwards (nothing is resumed then).
    Each rank loads the router with ``trust_remote_code`` and ``score_batch_size``
    (:meth:`tela_core.routing.router.Router.load`). Raises :class:`RankFailed` naming a rank that died,
    :class:`NodePartDone` on a node whose ranks are done but which does not hold rank 0.
    """
    if not prompts:
        import numpy as np

        return Scores(w=np.zeros(0)), {"cached": False, "seconds": 0.0, "key": key, "processes": launch.processes}
    if entry is None and launch.hostfile is not None:
        raise TelaError(
            "--hostfile scoring needs the score cache on a folder every host sees: drop --no-cache "
            "(and set TELA_CACHE to a shared folder)"
        )
    temp = entry is None
    work = Path(tempfile.mkdtemp(prefix="tela-score-")) if entry is None else entry.with_name(entry.stem + ".job")
    parts = work / "chunks" if entry is None else chunks_dir(entry)
    result = work / "scores.npz" if entry is None else entry
    attempt = uuid.uuid4().hex
    spec = {
        "router": str(Path(router_dir).resolve()),
        "n": len(prompts),
        "chunk_size": chunk_size,
        "chunks": str(parts.resolve()),
        "result": str(result.resolve()),
        "trust_remote_code": bool(trust_remote_code),
        "score_batch_size": score_batch_size,
        "plugins": _plugin_refs(),
        "attempt": attempt,
        "key": key,
        "quality": bool(quality),
    }
    _write_job(work, spec, prompts)
    if not launch.nodes.multi:
        for stale in work.glob("rank-*.json"):
            stale.unlink(missing_ok=True)
    log_path = work / ("score.log" if not launch.nodes.multi else f"score-{socket.gethostname()}-{os.getpid()}.log")
    had = len(list(parts.glob("*.npz"))) if parts.is_dir() else 0
    t0 = time.perf_counter()
    try:
        _run_ranks(work, launch, attempt, log_path, len(prompts), progress, description)
        states = _rank_states(work, attempt)
        if launch.nodes.multi and states.get(0, {}).get("status") != "done":
            raise NodePartDone(
                f"this node's part of the scoring is done ({time.perf_counter() - t0:.0f} s); "
                "the node holding rank 0 writes the result"
            )
        scores = read_scores(result, len(prompts), quiet=True, need_quality=quality)
        if scores is None:
            raise TelaError(f"the scoring ranks exited without writing {result}; see {log_path}")
    except BaseException:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    resumed = sum(int(st.get("resumed", 0)) for st in states.values())
    world = max((int(st.get("world", 0)) for st in states.values()), default=launch.processes)
    shutil.rmtree(work, ignore_errors=True)  # the entry is written: the job and its chunks are spent
    if not temp:
        shutil.rmtree(parts, ignore_errors=True)
    per_rank = [
        {
            "rank": r,
            "host": st.get("host"),
            "scored": st.get("scored", 0),
            "resumed": st.get("resumed", 0),
            "load_seconds": st.get("load_seconds"),
            "score_seconds": st.get("score_seconds"),
        }
        for r, st in sorted(states.items())
    ]
    return scores, {
        "cached": False,
        "seconds": seconds,
        "key": key,
        "resumed": resumed,
        "processes": world,
        "chunks_found": had,
        "ranks": per_rank,
    }


def _run_ranks(
    work: Path, launch: ScoreLaunch, attempt: str, log_path: Path, n: int, progress: bool, description: str
) -> None:
    """Start the ranks, show their summed progress until the launcher exits; a failure raises
    :class:`RankFailed` naming the rank."""
    import subprocess

    cmd = launcher_command(WORKER_MODULE, work, launch.processes, launch.hostfile, launch.nodes)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = spawn_launcher(cmd, work, launch.processes, launch.hostfile, log, {ATTEMPT_ENV: attempt})
        previous = {}
        try:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread
            pass
        try:
            with make_progress(progress) as bar:
                task = bar.add_task(description, total=n if not launch.nodes.multi else None)
                while True:
                    done = proc.poll() is not None
                    states = _rank_states(work, attempt)
                    if states:
                        total = n if not launch.nodes.multi else sum(int(s.get("shard", 0)) for s in states.values())
                        bar.update(task, total=total, completed=sum(int(s.get("done", 0)) for s in states.values()))
                    if done:
                        break
                    time.sleep(0.3)
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise TelaError(
                "scoring interrupted; the finished chunks are kept: rerun the same command to score only "
                "what is missing"
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if proc.returncode != 0:
        raise RankFailed(_failure_line(work, attempt, log_path, launch, proc.returncode))


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


#: torchrun's report of the first rank that failed ("Root Cause (first observed failure)")
_ROOT_CAUSE = re.compile(
    r"Root Cause.*?host\s*:\s*(?P<host>\S+)\s*rank\s*:\s*(?P<rank>\d+).*?exitcode\s*:\s*(?P<code>-?\d+)"
    r"(?:\s*\(pid:\s*(?P<pid>\d+)\))?",
    re.S,
)


def _why(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _failure_line(work: Path, attempt: str, log_path: Path, launch: ScoreLaunch, returncode: int) -> str:
    """One line naming the rank that failed first and why, from the ranks' status files and the
    launcher's report."""
    states = _rank_states(work, attempt)
    tail = f"; the finished chunks are kept: rerun the same command to score only what is missing (log: {log_path})"
    failed = sorted(r for r, s in states.items() if s.get("status") == "failed")
    if failed:
        st = states[failed[0]]
        others = (
            f" (and rank{'s' if len(failed) > 2 else ''} {', '.join(map(str, failed[1:]))})" if len(failed) > 1 else ""
        )
        return f"scoring failed: rank {failed[0]}{others} on {st.get('host')}: {st.get('error')}" + tail
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        text = ""
    causes = list(_ROOT_CAUSE.finditer(text))
    if causes:
        m = causes[-1]
        pid = f", pid {m['pid']}" if m["pid"] else ""
        return f"scoring failed: rank {m['rank']} ({m['host']}{pid}) died: {_why(int(m['code']))}" + tail
    # Another launcher (deepspeed over ssh): a rank that started and never finished or stopped.
    lost = sorted(r for r, s in states.items() if s.get("status") in ("starting", "scoring"))
    if not lost and not launch.nodes.multi and launch.hostfile is None:
        lost = [r for r in range(launch.processes) if r not in states]
    if lost:
        st = states.get(lost[0], {})
        where = f" ({st.get('host')}, pid {st.get('pid')})" if st else ""
        return f"scoring failed: rank {lost[0]}{where} died without a word" + tail
    return f"scoring failed: the launcher exited with {_why(returncode)}" + tail
