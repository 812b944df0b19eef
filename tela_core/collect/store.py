"""Where paid work is kept so that a kill costs nothing that was paid for.

A resumable command (``tela collect``, ``tela judge``) writes into an output folder that it holds
locked (:func:`tela_core.infra.locks.output_lock`: a second run into it stops at once, naming the
first). Each finished piece of work (an answer, a verdict) is appended to a journal in the folder
the moment it is known, as one ``write`` of whole JSON lines, so a SIGKILL loses only calls that
were still in flight; a torn last line (a kill in the middle of that write) is skipped on reading.
When the run ends (done, budget spent, interrupted, or an authentication failure) the final file is
written atomically from the earlier final file and the journal, and the journal is removed. A
rerun reads both and skips what is there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tela_core.infra.errors import InputError, TelaError

__all__ = ["Journal", "OutputDir", "JOURNAL_NAME", "SUMMARY_NAME"]

#: the journal's file name inside an output folder
JOURNAL_NAME = ".journal.jsonl"
#: the run summary's name in the output folder (collect and judge)
SUMMARY_NAME = "summary.json"


def _dumps(obj: Any) -> str:
    """One journal line: strict JSON (a NaN/Infinity, e.g. a cost past a double's range, is null:
    a paid answer is never lost to it), one line for every reader (:func:`~tela_core.infra.io.json_line`)."""
    from tela_core.infra.io import json_line

    return json_line(obj, nonfinite="null")


class Journal:
    """An append-only JSONL file of finished work (one ``os.write`` per append)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = -1

    def read(self) -> list[dict[str, Any]]:
        """Every complete line; a torn last line is dropped, a bad line elsewhere is an error."""
        if not self.path.is_file():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        torn = lines.pop() if lines else b""  # after the last newline: empty, or a torn write
        out: list[dict[str, Any]] = []
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                raise InputError(self.path, lineno, "damaged journal line; rerun with --force to start over") from None
            if isinstance(obj, dict):
                out.append(obj)
        del torn
        return out

    def append(self, objs: Iterable[dict[str, Any]]) -> None:
        """Append ``objs`` as JSON lines in one write."""
        data = "".join(_dumps(o) + "\n" for o in objs).encode("utf-8")
        if not data:
            return
        if self._fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            # a torn line left by a killed writer must not swallow the next line
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        os.write(self._fd, b"\n")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


#: each resumable command's main final file, which marks a folder as that command's output
_FINAL_FILES = {"answers.jsonl": "tela collect", "judgements.jsonl": "tela judge"}


class OutputDir:
    """The locked output folder of a resumable command: its final file(s) and its journal.

    Use as a context manager: it checks the folder can be written, takes the lock, and with
    ``force`` removes the earlier run's files (``names`` and the journal) first. The folder itself
    is made by the first write, so a run that fails its checks leaves nothing behind.
    """

    def __init__(self, folder: str | Path, names: Iterable[str], force: bool = False) -> None:
        self.folder = Path(folder)
        self.names = list(names)
        self.force = force
        self.journal = Journal(self.folder / JOURNAL_NAME)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> OutputDir:
        from tela_core.infra.io import check_dir_writable
        from tela_core.infra.locks import output_lock

        if self.folder.exists() and not self.folder.is_dir():
            raise TelaError(f"{self.folder} is a file; -o/--output names a folder")
        check_dir_writable(self.folder.parent if not self.folder.exists() else self.folder, self.folder)
        for other, command in _FINAL_FILES.items():  # one folder, two commands: one journal and summary for both
            if other not in self.names and (self.folder / other).exists():
                raise TelaError(
                    f"{self.folder} holds {command}'s {other}: the two commands would share its journal and "
                    f"summary.json (a run would take the other's unfinished work as its own); choose another -o"
                )
        self._stack.enter_context(output_lock(self.folder))
        try:
            if self.force and self.folder.exists():
                for name in [*self.names, JOURNAL_NAME]:
                    p = self.folder / name
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.journal.close()
        self._stack.close()

    def path(self, name: str) -> Path:
        return self.folder / name

    def read_final(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line, object) of an earlier run's final file ``name``, if there is one."""
        from tela_core.data.records import iter_jsonl

        p = self.folder / name
        if not p.is_file():
            return
        for lineno, obj in iter_jsonl(p):
            if not isinstance(obj, dict):
                raise InputError(p, lineno, "expected a JSON object; rerun with --force to start over")
            yield lineno, obj

    def write_final(self, name: str, rows: Iterable[dict[str, Any]]) -> int:
        """Write the final file ``name`` atomically; the journal stays until :meth:`done`."""
        from tela_core.infra.io import write_jsonl

        return write_jsonl(self.folder / name, rows, nonfinite="null")

    def done(self) -> None:
        """The final files hold everything the journal did: remove it."""
        self.journal.remove()
