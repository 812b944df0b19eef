"""Where DeepSpeed keeps the ops it compiles on first use, and the guard that keeps a killed build
from hanging every later run.

DeepSpeed builds some ops (on a CPU: ``deepspeed_shm_comm``) the first time a rank starts, through
``torch.utils.cpp_extension``, which marks a build in progress with an empty ``lock`` file in the
op's folder and makes every other process wait, forever, until that file is gone. A build killed
by SIGTERM or SIGKILL (a Ctrl-C of ``tela run`` stops its ranks with SIGTERM) leaves the file
behind, and from then on every run on the machine hangs at "building DeepSpeed's op" with nothing
in its log.

:func:`hold_extensions` makes such a file recognisable: every tela process that may build an op
holds a shared ``flock`` on ``TORCH_EXTENSIONS_DIR/.tela-users`` while it runs (the kernel lets go
of it when the process dies, however it dies). A process that can take that lock exclusively knows
no tela process is alive to be building, so any ``lock`` file left is stale and is removed before
the ranks start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["build_locks", "extensions_dir", "hold_extensions", "stale_build_locks"]

#: the file whose ``flock`` says a tela process that may build an op is alive
USERS_FILE = ".tela-users"


def extensions_dir(env: Mapping[str, str] | None = None) -> Path:
    """``TORCH_EXTENSIONS_DIR`` of ``env`` (default: this process's), else a folder of
    ``$TELA_CACHE/torch_extensions`` for this Python environment (``venv-<hash of sys.prefix>``):
    a build names its environment's own paths, so two venvs sharing one folder rebuilt the op
    (~20 s, minutes on a busy machine, every rank waiting) each time the other had built it."""
    env = os.environ if env is None else env
    if env.get("TORCH_EXTENSIONS_DIR"):
        return Path(env["TORCH_EXTENSIONS_DIR"])
    import hashlib

    venv = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    return Path(env.get("TELA_CACHE") or Path.home() / ".cache" / "tela") / "torch_extensions" / f"venv-{venv}"


def build_locks(root: Path) -> list[Path]:
    """The ``lock`` files torch's extension builder holds in ``root`` (one folder per op, or per
    op under a Python/torch-version folder)."""
    try:
        return [*root.glob("*/lock"), *root.glob("*/*/lock")]
    except OSError:
        return []


def stale_build_locks(root: Path) -> list[Path]:
    """Remove the build ``lock`` files under ``root`` when no tela process holds it (none can be
    building); returns those removed. Nothing is removed while another tela process holds it."""
    fd = _open_users(root)
    if fd is None:
        return []
    try:
        return _clear_if_alone(fd, root)
    finally:
        os.close(fd)


def hold_extensions(env: Mapping[str, str] | None = None) -> int | None:
    """Clear build locks left by killed runs (:func:`stale_build_locks`), then hold a shared lock
    on the extensions folder of ``env``; returns the open descriptor, to pass to the ranks' launcher
    (``pass_fds``) or keep open for the life of an in-process build. None where ``flock`` is not
    available or the folder cannot be written (nothing is guarded then, as before)."""
    root = extensions_dir(env)
    fd = _open_users(root)
    if fd is None:
        return None
    import fcntl

    try:
        removed = _clear_if_alone(fd, root)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    if removed:
        names = ", ".join(sorted(p.parent.name for p in removed))
        print(f"tela: removed the build lock of DeepSpeed's {names} op, left by a run that was killed", file=sys.stderr)
    return fd


def _open_users(root: Path) -> int | None:
    if not hasattr(os, "O_CLOEXEC"):
        return None
    try:
        import fcntl  # noqa: F401 (POSIX only)
    except ImportError:
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
        return os.open(root / USERS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


def _clear_if_alone(fd: int, root: Path) -> list[Path]:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return []  # another tela process is alive: a lock file may be its build in progress
    removed = []
    for lock in build_locks(root):
        try:
            lock.unlink()
            removed.append(lock)
        except OSError:
            pass
    return removed
