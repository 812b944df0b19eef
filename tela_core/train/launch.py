"""The worker launcher: start one training worker per rank and follow rank 0's progress.

:func:`run_worker` trains a :class:`~tela_core.TrainJob` with tela's own worker (what both builtin
backends call). :func:`launch_workers` writes any worker's spec, starts the launcher (``torchrun`` on one node or
one per node, ``deepspeed --hostfile`` across nodes over ssh; :func:`launcher_command`) on a
worker module (normally :data:`tela_core.train.spec.WORKER_MODULE`), streams rank 0's progress into
a rich progress bar and turns a failure into a :class:`TelaError` with the log's tail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json, atomic_write_text, split_jsonl

from ..components import TrainJob
from .config import RunConfig
from .extensions import build_locks, extensions_dir, hold_extensions
from .multinode import NodeLaunch, resolve_nodes
from .spec import WORKER_MODULE, LoraSettings, WorkerSpec

if TYPE_CHECKING:
    from .multinode import NodeLaunch

__all__ = ["node_launch", "launcher_command", "worker_env", "spawn_launcher", "launch_workers", "run_worker"]


def node_launch(cfg: RunConfig) -> NodeLaunch:
    """This node's place in the run: ``cfg``'s multi-node options, else the scheduler's environment
    variables (:func:`tela_core.train.multinode.resolve_nodes`)."""
    if cfg.hostfile is not None and any(getattr(cfg, k) is not None for k in ("nnodes", "node_rank", "rdzv_endpoint")):
        raise TelaError(
            "--hostfile starts every node itself (deepspeed over ssh); drop --nnodes/--node-rank/--rdzv-endpoint, "
            "or drop --hostfile and start one `tela run` per node"
        )
    if cfg.hostfile is not None:
        return NodeLaunch(master_addr=cfg.master_addr, master_port=cfg.master_port)
    return resolve_nodes(cfg.nnodes, cfg.node_rank, cfg.master_addr, cfg.master_port, cfg.rdzv_endpoint)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher_command(
    module: str, run_dir: Path, processes: int, hostfile: Path | None, nodes: NodeLaunch | None = None
) -> list[str]:
    """The command that starts ``processes`` workers of ``python -m module run_dir`` on this node.

    - ``hostfile``: ``deepspeed --hostfile`` (it reaches the other hosts itself, over pdsh/ssh);
      ``nodes.master_addr``/``master_port`` are passed on when set.
    - ``nodes`` with more than one node: one ``torchrun`` per node, as a scheduler starts them:
      a static rendezvous (``--node_rank`` at ``--master_addr:--master_port``), or torchrun's
      elastic c10d rendezvous at ``nodes.rdzv_endpoint``.
    - otherwise: ``torchrun`` on this node alone, on a free loopback port.
    """
    if hostfile is not None:
        exe = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
        # --no_local_rank: the worker takes the run dir as its only argument (ranks read LOCAL_RANK)
        cmd = [exe, "--hostfile", str(hostfile), "--num_gpus", str(processes), "--no_local_rank"]
        if nodes is not None and nodes.master_addr:
            cmd += ["--master_addr", nodes.master_addr]
        if nodes is not None and nodes.master_port:
            cmd += ["--master_port", str(nodes.master_port)]
        return cmd + ["--module", module, str(run_dir)]
    head = [sys.executable, "-m", "torch.distributed.run"]
    if nodes is not None and nodes.multi:
        if nodes.rdzv_endpoint:
            where = ["--rdzv_backend", "c10d", "--rdzv_endpoint", nodes.rdzv_endpoint, "--rdzv_id", str(nodes.rdzv_id)]
        else:
            where = [
                "--node_rank",
                str(nodes.node_rank),
                "--master_addr",
                str(nodes.master_addr),
                "--master_port",
                str(nodes.master_port),
            ]
        return head + [
            "--nnodes",
            str(nodes.nnodes),
            "--nproc_per_node",
            str(processes),
            *where,
            "--module",
            module,
            str(run_dir),
        ]
    return head + [
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "--module",
        module,
        str(run_dir),
    ]


def worker_env(processes: int) -> dict[str, str]:
    """Environment for the workers: offline, quiet, and threads split between local ranks."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    # A scheduler's per-node variables describe the launcher's place, not the workers': torchrun
    # sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* for each worker, and stale ones must not leak past it.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK"):
        env.pop(name, None)
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir()))
    return env


#: Variables the workers on *other* hosts need too; ``deepspeed --hostfile`` forwards only its own
#: prefixes (PYTHON*, NCCL*, ...) over pdsh, plus what ``DS_ENV_FILE`` lists.
_FORWARDED = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "OMP_NUM_THREADS",
    "TELA_CACHE",
    "TORCH_EXTENSIONS_DIR",
    "HF_HOME",
)


def _deepspeed_env_file(run_dir: Path, env: Mapping[str, str]) -> Path:
    """Write the ``KEY=VALUE`` file DeepSpeed exports on every host (``DS_ENV_FILE``): tela's worker
    settings only, never the whole environment (it may hold secrets)."""
    path = run_dir / "deepspeed_env"
    atomic_write_text(path, "".join(f"{k}={env[k]}\n" for k in _FORWARDED if env.get(k) and "\n" not in env[k]))
    return path


def _term_with_parent() -> None:
    """In the launcher's child process (Linux): SIGTERM it when ``tela run`` dies, so it stops its ranks."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn_launcher(
    cmd: list[str],
    run_dir: Path,
    processes: int,
    hostfile: Path | None,
    log: Any,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``cmd`` (a :func:`launcher_command`) with :func:`worker_env` plus ``extra_env``, its
    output and every rank's into the open binary file ``log``. With ``hostfile``, tela's worker
    settings reach the other hosts through ``run_dir/deepspeed_env``. On Linux the launcher gets
    SIGTERM if this process dies, so it never outlives the command that started it."""
    env = worker_env(processes)
    env.update(extra_env or {})
    if hostfile is not None:
        env["DS_ENV_FILE"] = str(_deepspeed_env_file(run_dir, env))
    held = hold_extensions(env)  # a build lock a killed run left would hang the ranks forever
    try:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_term_with_parent if sys.platform.startswith("linux") else None,
            pass_fds=(held,) if held is not None else (),
        )
    finally:
        if held is not None:
            os.close(held)  # the launcher holds it now, for as long as it runs


def run_worker(
    job: TrainJob,
    *,
    deepspeed: Mapping[str, Any] | None = None,
    lora: LoraSettings | None = None,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """Train ``job`` with tela's worker (:data:`WORKER_MODULE`) on every rank: a full fine-tune, or
    ``lora`` adapters; under ``deepspeed`` (a DeepSpeed config) or not. Returns what
    :func:`launch_workers` returns. The run dir is ``job.run_dir``."""
    spec = WorkerSpec.for_job(job, deepspeed, lora, gradient_checkpointing)
    assert job.run_dir is not None  # TrainJob sets it
    return launch_workers(
        job.run_dir, WORKER_MODULE, spec, job.processes, job.hostfile, quiet=job.quiet, nodes=job.nodes
    )


def launch_workers(
    run_dir: Path,
    module: str,
    spec: WorkerSpec | Mapping[str, Any],
    processes: int = 1,
    hostfile: Path | None = None,
    quiet: bool = False,
    nodes: NodeLaunch | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``spec`` (a :class:`WorkerSpec` for tela's worker) to ``run_dir/worker.json``, run the
    workers, stream progress; return the last attempt's record (``attempts.jsonl``). Output of every
    rank goes to ``run_dir/train.log``.

    ``nodes`` (a :class:`~tela_core.train.multinode.NodeLaunch` or its ``as_dict``) places this node in a
    multi-node run. Only the node holding global rank 0 gets a record; every other node returns
    ``{"rank0": False, ...}`` once its ranks exit cleanly (the router is written on node 0).
    """
    if not isinstance(nodes, NodeLaunch):
        nodes = NodeLaunch.from_dict(nodes)
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = run_dir / "trained.json"
    if trained.is_file():  # the workers finished before; only post-processing was interrupted
        return json.loads(trained.read_text(encoding="utf-8"))
    if isinstance(spec, WorkerSpec):
        spec.write(run_dir)
    else:  # another worker module's own spec
        atomic_write_json(run_dir / WorkerSpec.FILE, dict(spec))
    progress_file = run_dir / "progress.jsonl"
    attempts = run_dir / "attempts.jsonl"
    n_attempts = len(split_jsonl(attempts.read_text(encoding="utf-8"))) if attempts.exists() else 0
    offset = progress_file.stat().st_size if progress_file.exists() else 0
    cmd = launcher_command(module, run_dir, processes, hostfile, nodes)
    log_path = run_dir / "train.log"
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = spawn_launcher(cmd, run_dir, processes, hostfile, log)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM,)}

        def _stop(signum: int, frame: Any) -> None:
            proc.terminate()
            raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGTERM, _stop)
        except ValueError:  # not the main thread
            previous = {}
        try:
            _stream(proc, progress_file, offset, quiet, log_path)
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise TelaError(
                f"training interrupted; rerun the same command to resume ({run_dir / 'checkpoints'})"
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise TelaError(f"training failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    lines = split_jsonl(attempts.read_text(encoding="utf-8")) if attempts.exists() else []
    if len(lines) <= n_attempts and nodes.multi:  # rank 0 lives on another node and wrote there
        return {"rank0": False, "nnodes": nodes.nnodes, "node_rank": nodes.node_rank}
    if len(lines) <= n_attempts:
        raise TelaError(f"training exited without recording a result; see {log_path}")
    return json.loads(lines[-1])


#: what the workers' log says while nothing trains yet: DeepSpeed compiling or loading an op
_LOG_PHASES = (
    (
        re.compile(
            r"Building extension module (\w+)|TORCH_EXTENSION_NAME=(\w+)"
        ),  # torch's line, or ninja's compile lines
        "building DeepSpeed's {0} op (once: it is kept in TORCH_EXTENSIONS_DIR, {dir}; a few minutes on a CPU)",
    ),
    (re.compile(r"Loading extension module (\w+)"), "loading DeepSpeed's {0} op"),
    (re.compile(r"Time to load (\w+) op: ([0-9.]+) seconds"), "DeepSpeed's {0} op ready"),
    (re.compile(r"Loading checkpoint|loading (?:the )?model", re.I), "loading the model"),
)


def _op_being_built() -> str | None:
    """The DeepSpeed op being compiled now, if any: torch holds a ``lock`` file in the op's build
    folder while it builds (DeepSpeed often builds quietly, so the log may say nothing)."""
    for lock in build_locks(extensions_dir()):
        return lock.parent.name
    return None


def _log_phase(text: str) -> str | None:
    """The last phase :data:`_LOG_PHASES` finds in new ``train.log`` text, worded for the console."""
    found = None
    for line in text.splitlines():
        for pattern, words in _LOG_PHASES:
            m = pattern.search(line)
            if m:
                found = words.format(*[g for g in m.groups() if g], dir=extensions_dir())
    return found


def _stream(
    proc: subprocess.Popen, progress_file: Path, offset: int, quiet: bool, log_path: Path | None = None
) -> None:
    """Follow rank 0's progress lines until the launcher exits, and what the workers' log says
    before training starts (a DeepSpeed op being compiled takes minutes). On a terminal a live bar;
    elsewhere (a pipe, CI, ``&`` with output to a file) a line per phase and a loss line at most
    every 10 s, so the console is never silent for minutes."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, quiet=quiet)
    plain = not console.is_terminal
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    log_pos = log_path.stat().st_size if log_path is not None and log_path.exists() else 0
    said: dict[str, Any] = {"text": "", "at": 0.0}

    def say(text: str, every: float = 0.0) -> None:
        if plain and text and text != said["text"] and time.monotonic() - said["at"] >= every:
            console.print(f"training: {text}", highlight=False, soft_wrap=True)
            said.update(text=text, at=time.monotonic())

    with Progress(*columns, console=console, transient=False, disable=plain) as bar:
        task = bar.add_task("train", total=None, info="starting workers…")
        say("starting workers")
        pos = offset
        started = False
        last = ""
        while True:
            done = proc.poll() is not None
            if not started and log_path is not None and log_path.exists():
                with open(log_path, "rb") as log_fh:
                    log_fh.seek(log_pos)
                    raw = log_fh.read()
                log_pos += len(raw)
                phase = _log_phase(raw.decode("utf-8", "replace"))
                building = _op_being_built()
                if building:
                    phase = _LOG_PHASES[0][1].format(building, dir=extensions_dir())
                elif said.get("building"):
                    phase = phase or f"DeepSpeed's {said['building']} op ready"
                said["building"] = building
                if phase:
                    bar.update(task, info=phase)
                    say(phase)
            if progress_file.exists():
                with open(progress_file, encoding="utf-8") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    # only consume complete lines
                    cut = chunk.rfind("\n") + 1
                    pos += len(chunk[:cut].encode())
                for line in split_jsonl(chunk[:cut]):
                    try:
                        ev = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    started = True
                    total = ev.get("max_steps") or None
                    info = "resumed" if ev.get("event") == "begin" and ev.get("step") else ""
                    if ev.get("loss") is not None:
                        info = f"loss {ev['loss']:.4f}  epoch {ev.get('epoch') or 0:.2f}"
                    bar.update(task, total=total, completed=ev.get("step", 0), info=info)
                    step = f"step {ev.get('step', 0)}" + (f"/{total}" if total else "")
                    last = f"{step}{', ' + info if info else ''}"
                    say(last, every=0.0 if ev.get("event") == "begin" else 10.0)
            if done:
                say(last)  # where training ended, even when the last line came under 10 s after the one before
                return
            time.sleep(0.5)
