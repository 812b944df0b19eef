"""The JSONL logs ``tela serve`` appends (decision log, shadow log): the writer, which follows a
log that was rotated away (:class:`AppendLog`), and the reader, with one rule for a line a killed
server left half-written, so every reader skips exactly that line and nothing else."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from tela_core.infra.errors import InputError

__all__ = ["AppendLog", "read_log"]

log = logging.getLogger("tela.serve")


class AppendLog:
    """A file opened for appending, written with one ``os.write`` per call (whole lines from
    several processes never interleave), that follows rotation as logrotate-friendly servers do.

    Before each write it checks that the path still names the open file (same device and inode):
    a log that was moved away (``logrotate``'s default, ``mv``) or deleted (``rm``) is opened again
    at its path, created if need be, so no line after a rotation is lost. :meth:`reopen` does the
    same on demand (``tela serve`` calls it on SIGHUP). ``copytruncate`` needs nothing: appends go
    to the file's new end. A failed write raises :class:`OSError`; the caller counts the lines lost.
    """

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._spath = os.fspath(self.path)
        self._lock = threading.Lock()
        self._id = (0, 0)  # (device, inode) of the open file
        self._fd = self._open()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._spath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(fd)
        self._id = (st.st_dev, st.st_ino)
        return fd

    def _moved(self) -> bool:
        """Whether the path no longer names the open file (moved away, deleted, replaced)."""
        try:
            st = os.stat(self._spath)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._id

    def _swap(self, why: str) -> None:
        old, old_id = self._fd, self._id
        try:
            fd = self._open()
        except OSError:
            self._id = old_id
            raise
        if old >= 0:
            os.close(old)
        self._fd = fd
        log.info("%s %s: %s", self.what, self.path, why)

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) to the file the path names now."""
        with self._lock:
            if self._fd < 0:
                raise OSError(f"{self.what} {self.path} is closed")
            if self._moved():
                self._swap("moved or deleted, opened again at its path")
            n = os.write(self._fd, data)
            if n < len(data):  # rare (a signal, a nearly full disk): write the rest
                view = memoryview(data)[n:]
                while view:
                    view = view[os.write(self._fd, view):]

    def reopen(self) -> None:
        """Open the path again (SIGHUP), whether or not the file was rotated."""
        with self._lock:
            if self._fd >= 0:
                self._swap("opened again (SIGHUP)")

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_log(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of the ``what`` log (e.g. "decision log") at ``path``.
    A line that is not a JSON object raises :class:`InputError` naming the file and line, except
    the last line when a killed server cut it off (no newline after it, or no closing brace)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, f"{what} not found")
    with open(p, "rb") as fh:
        lines = fh.read().split(b"\n")
    last = len(lines)
    while last > 0 and not lines[last - 1].strip():
        last -= 1
    for lineno, raw in enumerate(lines[:last], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            if lineno == last and (lineno == len(lines) or not raw.rstrip().endswith(b"}")):
                return  # the half-written last line of a killed server
            raise InputError(p, lineno, f"not a JSON object: {e}") from None
        if not isinstance(rec, dict):
            raise InputError(p, lineno, "not a JSON object")
        yield lineno, rec
