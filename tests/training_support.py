"""Score-token routers trained by ``tela run`` (real DeepSpeed on the kit's tiny Llama), shared by the
tests that only read them: each costs a launcher and a rank or two (seconds each), so the session
trains each kind once (tests/conftest.py: ``trained_router``, ``two_rank_router``). A test that
changes such a router copies it first."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tela_core.data import sample_path

TELA = str(Path(sys.executable).with_name("tela"))

#: what a scheduler sets; a test's own ``tela run`` starts without any of it
SCHEDULER_VARS = ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT", "PET_RDZV_ENDPOINT",
                  "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NODEID", "SLURM_JOB_NODELIST", "SLURM_NODELIST",
                  "SLURM_JOB_ID", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK",
                  "LOCAL_RANK")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCHEDULER_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def one_rank_args(model: Path, out: Path, sample: int = 48) -> list[str]:
    """One CPU rank, trained long enough (2 epochs at 3e-3) to move the score distribution."""
    return [TELA, "run", "--data", str(sample_path()), "--formatter", "role-prefix", "--backend", "deepspeed-z3",
            "--model", str(model), "--output", str(out), "--processes", "1", "--sample", str(sample), "--epochs", "2",
            "--batch-size", "8", "--max-length", "2048", "--learning-rate", "3e-3", "--save-steps", "0"]


def multi_rank_args(model: Path, out: Path, processes: int) -> list[str]:
    """The multi-node comparison's run (all records train, seed 7): one node's ``processes`` ranks."""
    return [TELA, "run", "--data", str(sample_path()), "--backend", "deepspeed-z3", "--model", str(model),
            "--output", str(out), "--processes", str(processes), "--sample", "24", "--eval-fraction", "0",
            "--epochs", "1", "--batch-size", "4", "--max-length", "2048", "--learning-rate", "1e-3",
            "--save-steps", "0", "--seed", "7", "--quiet"]


@dataclass(frozen=True)
class TrainedRun:
    """A finished ``tela run``: its output folder, the command (``args``) and what it printed."""

    path: Path
    args: list[str]
    result: subprocess.CompletedProcess[str]


def train(args: list[str], env: dict[str, str] | None = None) -> TrainedRun:
    res = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env or dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    return TrainedRun(Path(args[args.index("--output") + 1]), args, res)
