"""Score-token routers trained by ``tela run`` (real DeepSpeed on the kit's tiny Llama), shared by the
tests that only read them: each costs a launcher and a rank or two (seconds each), so the session
trains each kind once (tests/conftest.py: ``trained_router``, ``two_rank_router``). A test that
changes such a router copies it first."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tela_core.data import sample_path
from tela_core.testkit.helpers import run_cli

TELA = str(Path(sys.executable).with_name("tela"))

#: what a scheduler sets; a test's own ``tela run`` starts without any of it
SCHEDULER_VARS = (
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_RDZV_ENDPOINT",
    "SLURM_NNODES",
    "SLURM_JOB_NUM_NODES",
    "SLURM_NODEID",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_JOB_ID",
    "NNODES",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCHEDULER_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def one_rank_args(model: Path, out: Path, sample: int = 48) -> list[str]:
    """One CPU rank, trained long enough (2 epochs at 3e-3, 12 steps) to move the score
    distribution, with a checkpoint every 3 steps (tests/test_kill.py kills this run and compares
    it with the session's uninterrupted one)."""
    return [
        TELA,
        "run",
        "--data",
        str(sample_path()),
        "--formatter",
        "role-prefix",
        "--backend",
        "deepspeed-z3",
        "--model",
        str(model),
        "--output",
        str(out),
        "--processes",
        "1",
        "--sample",
        str(sample),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "2048",
        "--learning-rate",
        "3e-3",
        "--save-steps",
        "3",
    ]


def multi_rank_args(model: Path, out: Path, processes: int) -> list[str]:
    """The multi-node comparison's run (all records train, seed 7): one node's ``processes`` ranks."""
    return [
        TELA,
        "run",
        "--data",
        str(sample_path()),
        "--backend",
        "deepspeed-z3",
        "--model",
        str(model),
        "--output",
        str(out),
        "--processes",
        str(processes),
        "--sample",
        "24",
        "--eval-fraction",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "2048",
        "--learning-rate",
        "1e-3",
        "--save-steps",
        "0",
        "--seed",
        "7",
        "--quiet",
    ]


@dataclass(frozen=True)
class TrainedRun:
    """A finished ``tela run``: its output folder, the command (``args``) and its click result
    (``stdout``, ``output``), and how long it took."""

    path: Path
    args: list[str]
    result: Any
    seconds: float = 0.0


def train(args: list[str], env: dict[str, str | None]) -> TrainedRun:
    """``tela ARGS`` through tela's CLI in this process (the launcher and its ranks are processes
    of their own, as always), with ``env`` set (a None value unsets the variable) for the call."""
    t0 = time.monotonic()
    res = run_cli(*args[1:], env=env)
    assert res.exit_code == 0, res.output[-3000:]
    return TrainedRun(Path(args[args.index("--output") + 1]), args, res, time.monotonic() - t0)
