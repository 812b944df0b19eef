"""Readiness of ``tela serve --workers N``: ``GET /ready`` answers 200 only once all N workers are up.

The kernel hands each new connection to whichever worker accepts it first, so a probe that reached
one ready worker says nothing of the others. Each worker therefore registers in a directory the
main process shares with them (``$TELA_SERVE_READY_DIR``, created by ``tela serve``): a file named
after its pid, written once its routers are loaded and just before it takes connections, removed
when it stops. A worker's ``/ready`` counts the registered workers that are still alive (a worker
killed with SIGKILL leaves its file, but not its process) and answers 503 while fewer than N are.
During a rolling restart (SIGHUP) uvicorn starts each new worker before it stops an old one, so the
count never drops below N and ``/ready`` stays 200.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["READY_DIR_ENV", "register", "unregister", "ready_workers"]

#: Environment variable naming the directory where the workers of one server register.
READY_DIR_ENV = "TELA_SERVE_READY_DIR"


def _dir() -> Path | None:
    raw = os.environ.get(READY_DIR_ENV)
    return Path(raw) if raw else None


def register() -> None:
    """Say this worker is up (its routers loaded): ``DIR/PID``, written whole (a rename)."""
    d = _dir()
    if d is None:
        return
    tmp = d / f".{os.getpid()}.tmp"
    try:
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, d / str(os.getpid()))
    except OSError as e:  # the directory was removed under the server: /ready then says 503
        logging.getLogger("tela.serve").error("worker %d could not register as ready in %s: %s", os.getpid(), d, e)


def unregister() -> None:
    """Say this worker is stopping."""
    d = _dir()
    if d is not None:
        try:
            (d / str(os.getpid())).unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process with this pid
        return True
    try:  # a killed worker its parent has not reaped yet is a zombie: not up
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def ready_workers() -> list[int] | None:
    """The pids of the registered workers still alive, or None when this process is no worker of
    ``tela serve --workers N`` (no registration directory)."""
    d = _dir()
    if d is None:
        return None
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and _alive(int(n)))
