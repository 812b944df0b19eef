"""Resume: kill ``tela run`` after its first checkpoint, rerun the same command, and it continues
from that checkpoint instead of starting over (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train_deepspeed import check_artifact

from tela_core.data import sample_path
from tela_core.testkit.helpers import run_cli
from tela_core.train.worker import last_complete_checkpoint

pytestmark = pytest.mark.slow

#: steps in all: the kill lands at the first checkpoint (step 2); the rerun saves every 2 steps to the end
STEPS = 12


def test_resume_after_kill(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumable"
    cmd = [
        str(Path(sys.executable).with_name("tela")),
        "run",
        "--data",
        str(sample_path()),
        "--model",
        str(tiny_model),
        "--output",
        str(out),
        "--sample",
        "40",
        "--batch-size",
        "2",
        "--max-steps",
        str(STEPS),
        "--save-steps",
        "2",
        "--max-length",
        "2048",
        "--quiet",
    ]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    ckpts = out / ".tela" / "checkpoints"
    deadline = time.time() + 300
    try:
        while last_complete_checkpoint(ckpts) is None:
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the CLI, the launcher and every rank
        first.wait()
    killed_at = last_complete_checkpoint(ckpts)
    assert killed_at is not None and not (out / "tela.json").exists()
    step = int(killed_at.name.split("-")[1])
    assert step < STEPS, "the run finished before it could be killed; make it longer"

    second = run_cli(*cmd[1:])  # the same command, through tela's CLI in this process: it launches the ranks
    assert second.exit_code == 0, second.output[-3000:]
    assert "resuming" in second.output
    attempt = json.loads((out / ".tela" / "attempts.jsonl").read_text().splitlines()[-1])
    assert attempt["resumed_from"] == killed_at.name
    assert attempt["global_step"] == STEPS
    progress = [json.loads(line) for line in (out / ".tela" / "progress.jsonl").read_text().splitlines()]
    begins = [p for p in progress if p["event"] == "begin"]
    assert begins[-1]["step"] == step  # the second attempt started at the checkpoint's step, not 0
    check_artifact(out, 1)
