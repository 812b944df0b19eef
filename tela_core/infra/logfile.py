"""Append-only JSONL logs (``tela serve``'s decision and shadow logs): the writer, which follows a
log that was rotated away (:class:`AppendLog`), and the reader, with one rule for a line a killed
server left half-written, so every reader skips exactly that line and nothing else. Here in
``infra`` (moved from ``serve`` in 0.2) because readers in every layer use it: ``collect
--from-log``, ``calibrate --traffic`` (routing) and the server itself."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tela_core.infra.errors import InputError

__all__ = ["AppendLog", "read_log"]

log = logging.getLogger("tela.serve")  # the server writes these logs: its logger says so


class AppendLog:
    """A file opened for appending, written with one ``os.write`` per call (whole lines from
    several processes never interleave), that follows rotation as logrotate-friendly servers do.

    Before each write it checks that the path still names the open file (same device and inode):
    a log that was moved away (``logrotate``'s default, ``mv``) or deleted (``rm``) is opened again
    at its path, created if need be, so no line after a rotation is lost. :meth:`reopen` does the
    same on demand (``tela serve`` calls it on SIGHUP). ``copytruncate`` needs nothing: appends go
    to the file's new end. A failed write raises :class:`OSError`; the caller counts the lines lost.
    A write cut short (a full disk takes part of a line, then refuses the rest), or a file found
    ending without a newline (a crashed writer's), leaves a torn line: the next write starts with a
    newline, so the torn part stays a line of its own, which :func:`read_log` skips, and the next
    line is whole.
    """

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._spath = os.fspath(self.path)
        self._lock = threading.Lock()
        self._id = (0, 0)  # (device, inode) of the open file
        self._torn = False  # the file ends in a torn line: start the next write with a newline
        self._fd = self._open()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._spath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(fd)
        self._id = (st.st_dev, st.st_ino)
        self._torn = st.st_size > 0 and not _ends_with_newline(self._spath, st.st_size)
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
            if self._torn:
                data = b"\n" + data
            view = memoryview(data)
            try:
                while view:  # more than one write is rare (a signal, a nearly full disk)
                    view = view[os.write(self._fd, view) :]
            finally:
                if len(view) < len(data):  # something went out: whether it was all decides
                    self._torn = len(view) > 0

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


def _ends_with_newline(path: str, size: int) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) == b"\n"
    except OSError:
        return True


def _cut_off(raw: bytes) -> bool:
    """Whether ``raw`` (not JSON) is the start of a JSON object cut off: the text ran out before
    the object ended, as when a full disk or a kill tore the line being written."""
    text = raw.rstrip()
    if not text.startswith(b"{"):
        return False
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.end < len(text) - 3:
            return False  # bad bytes before the end: damaged, not cut
        s = text[: e.start].decode("utf-8", "replace")
    try:
        json.loads(s)
    except json.JSONDecodeError as e:
        rest = s[e.pos :]
        return (
            e.msg.startswith("Unterminated string")
            or not rest.strip()
            or any(word.startswith(rest) for word in ("true", "false", "null", "NaN", "Infinity", "-Infinity"))
        )
    return False


def read_log(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of the ``what`` log (e.g. "decision log") at ``path``.
    A line that is not a JSON object raises :class:`InputError` naming the file and line, except
    the last line when a killed server cut it off (no newline after it, or no closing brace), and a
    line a failed write tore (a JSON object cut off: a full disk), which is skipped wherever it is."""
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
        except RecursionError:
            raise InputError(p, lineno, "not a JSON object: nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as e:
            if lineno == last and (lineno == len(lines) or not raw.rstrip().endswith(b"}")):
                return  # the half-written last line of a killed server
            if _cut_off(raw):
                continue  # a line a full disk tore (the writer started the next one on a line of its own)
            raise InputError(p, lineno, f"not a JSON object: {e}") from None
        if not isinstance(rec, dict):
            raise InputError(p, lineno, "not a JSON object")
        yield lineno, rec
