"""One lock mechanism for everything tela writes: output dirs and cache entries.

Two ``tela run`` into one output dir would otherwise interleave their files and leave a router
whose manifest and weights come from different configs. Every writer therefore holds an exclusive
lock for as long as it writes:

- :func:`output_lock` (``tela run``, ``tela zoo``, ``tela eval``, ...) fails at once when another
  process holds the dir: ``OUT is in use by pid N (...)``, exit code 2.
- :func:`cache_lock` (the embedding and score caches) waits for the other writer instead, since it
  computes what this one would; the caller then reads what it wrote.

The lock is an ``fcntl.flock`` on a small file *beside* the locked path (``.NAME.lock`` in the same
parent), holding the holder's pid and command. The kernel drops the lock when its holder exits or is
killed (SIGKILL included), so a stale file never blocks anyone; the file is removed on a clean exit.
Beside, not inside: ``--force`` may delete and recreate the locked dir while the lock is held.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tela_core.infra.errors import TelaError

__all__ = ["LockBusy", "lock_path", "output_lock", "cache_lock"]


class LockBusy(TelaError):
    """Another live process holds the lock; the message names its pid."""

    def __init__(self, target: Path, holder: str) -> None:
        self.target = target
        self.holder = holder
        super().__init__(f"{target} is in use by {holder}; wait for it to finish or choose another output")


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` in the same directory."""
    p = Path(os.path.abspath(target))
    return p.parent / f".{p.name}.lock"


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _try_flock(fd: int, blocking: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _acquire(target: Path, blocking: bool, on_wait: Callable[[str], None] | None = None) -> tuple[int, Path]:
    """Open and lock ``target``'s lock file; (fd, lock path). Raises :class:`LockBusy` when not
    ``blocking`` and held, :class:`TelaError` when the lock file cannot be created."""
    lp = lock_path(target)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TelaError(f"{target}: cannot create its directory: {e.strerror or e}") from None
    while True:
        try:
            fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise TelaError(f"{target}: cannot write here (lock file {lp.name}): {e.strerror or e}") from None
        if not _try_flock(fd, blocking=False):
            holder = _read_holder(fd)
            if not blocking:
                os.close(fd)
                raise LockBusy(target, holder)
            if on_wait is not None:
                on_wait(holder)
                on_wait = None
            _try_flock(fd, blocking=True)
        # The previous holder may have unlinked the file between our open and our lock: then we
        # hold a lock on a file nobody else sees. Start over on the current file.
        try:
            same = os.fstat(fd).st_ino == os.stat(lp).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        cmd = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:6]) if sys.argv else "python"
        os.write(fd, f"pid {os.getpid()} ({cmd})\n".encode("utf-8", "replace"))
    except OSError:
        pass
    return fd, lp


def _release(fd: int, lp: Path) -> None:
    # Unlink while still holding the lock, so a waiter that opened this file retries on a new one.
    with contextlib.suppress(OSError):
        os.unlink(lp)
    os.close(fd)


@contextlib.contextmanager
def output_lock(target: str | Path) -> Iterator[Path]:
    """Hold ``target`` (an output dir or file) for this process; :class:`LockBusy` (exit 2, naming
    the holder's pid) at once if another process holds it."""
    fd, lp = _acquire(Path(target), blocking=False)
    try:
        yield lp
    finally:
        _release(fd, lp)


@contextlib.contextmanager
def cache_lock(
    target: str | Path,
    on_wait: Callable[[str], None] | None = None,
    wait: bool = True,
    on_busy: Callable[[str], None] | None = None,
) -> Iterator[Path | None]:
    """Hold cache entry ``target`` while writing it, waiting while another process holds it
    (``on_wait(holder)`` is called once before waiting). With ``wait=False`` a held entry yields
    None at once, after ``on_busy(holder)``. A cache that cannot be written yields None instead of
    failing. On None the caller computes without caching."""
    try:
        fd, lp = _acquire(Path(target), blocking=wait, on_wait=on_wait)
    except LockBusy as e:
        if on_busy is not None:
            on_busy(getattr(e, "holder", "another process"))
        yield None
        return
    except TelaError:
        yield None
        return
    try:
        yield lp
    finally:
        _release(fd, lp)
