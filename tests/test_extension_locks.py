"""A DeepSpeed op build killed half-way leaves torch's ``lock`` file in the op's folder, and every
later run waited on it forever (seen in CI: a kill test hit the first build; the rerun hung for
10 minutes at "building DeepSpeed's op"). tela clears such a file when no tela process is alive to
be building, and never while one is."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tela_core.train.extensions import USERS_FILE, hold_extensions, stale_build_locks
from tela_core.train.launch import spawn_launcher


def _stale(root: Path, op: str = "deepspeed_shm_comm") -> Path:
    lock = root / op / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(b"")
    return lock


def _holder(root: Path) -> subprocess.Popen:
    """Another tela process alive with the folder held (as a launcher holds it while its ranks run)."""
    code = (
        "import sys, time; from tela_core.train.extensions import hold_extensions; "
        f"fd = hold_extensions({{'TORCH_EXTENSIONS_DIR': {str(root)!r}}}); print('held', fd is not None, flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held True"
    return proc


def test_a_lock_left_by_a_killed_build_is_removed_when_no_tela_process_is_alive(tmp_path: Path) -> None:
    lock = _stale(tmp_path)
    fd = hold_extensions({"TORCH_EXTENSIONS_DIR": str(tmp_path)})
    try:
        assert fd is not None and not lock.exists()
    finally:
        if fd is not None:
            os.close(fd)


def test_a_lock_is_kept_while_another_tela_process_may_be_building(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        lock = _stale(tmp_path)
        fd = hold_extensions({"TORCH_EXTENSIONS_DIR": str(tmp_path)})
        assert fd is not None
        os.close(fd)
        assert lock.exists() and stale_build_locks(tmp_path) == [] and lock.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed, as a run is): its lock, if it was building, is stale now
    assert stale_build_locks(tmp_path) == [lock] and not lock.exists()


def test_the_launcher_clears_a_stale_lock_and_holds_the_folder_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ext"
    lock = _stale(root)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    with open(tmp_path / "log", "wb") as log:
        proc = spawn_launcher([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, 1, None, log)
    try:
        assert not lock.exists()
        fd = os.open(root / USERS_FILE, os.O_RDWR)
        try:
            with pytest.raises(OSError):  # the launcher holds it: no one may take it as free
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 10
            while True:  # the kernel lets go of a killed process's lock
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()
