"""Safe output: atomic writes (files and whole dirs), and no silent overwrite of an earlier run's results."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from tela_core.infra.errors import TelaError

__all__ = [
    "atomic_open", "atomic_write_text", "atomic_write_json", "write_jsonl", "check_can_write", "check_dir_writable",
    "partial_dir", "remove_stale_partials", "replace_dir", "staged_dir",
]


def read_utf8(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark dropped). Undecodable bytes
    or an unreadable file raise :class:`~tela_core.infra.errors.InputError` naming the file, and the
    line where the bad byte is: every reader of a whole file reports it the same way."""
    from tela_core.infra.errors import InputError

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(p, None, f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(p, line, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def check_can_write(path: str | Path, force: bool) -> Path:
    """Refuse to replace an existing file unless ``force``, and refuse, with one line naming the
    path, what no ``--force`` can fix: a directory where the file should go, a parent that is a
    file, a read-only dir or mount. Return the path as a :class:`Path`. Writes nothing."""
    p = Path(path)
    if p.is_dir():
        raise TelaError(f"{p} is a directory; give the path of a file to write")
    if p.exists() and not force:
        raise TelaError(f"{p} already exists; pass --force to overwrite it")
    check_dir_writable(p.parent, p)
    return p


def check_dir_writable(folder: str | Path, target: str | Path | None = None) -> None:
    """Raise a one-line :class:`TelaError` (naming ``target``, default ``folder``) unless files can
    be created in ``folder`` (or, when it does not exist yet, in its nearest existing parent, which
    must be a directory). Leaves nothing."""
    d = Path(folder) if str(folder) else Path(".")
    name = target if target is not None else d
    probe_in = d
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise TelaError(f"{name}: cannot write there: {probe_in} is a file, not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tela-write-test-", dir=probe_in)
    except OSError as e:
        raise TelaError(f"{name}: cannot write there: {e.strerror or e} ({probe_in})") from None
    os.close(fd)
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    A reader never sees a half-written file, and an exception leaves the old file (or none).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal file's mode
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: str | Path, objects: Iterable[Any]) -> int:
    """Write one JSON object per line to ``path`` atomically; return how many were written."""
    n = 0
    with atomic_open(path) as fh:
        for obj in objects:
            line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate in a key tela does not read: keep it escaped
                line = json.dumps(obj, allow_nan=False)
            fh.write(line + "\n")
            n += 1
    return n


def partial_dir(final: str | Path) -> Path:
    """A fresh hidden staging path beside ``final``: ``.NAME.partial-XXXXXXXX``."""
    import uuid

    p = Path(final)
    return p.parent / f".{p.name}.partial-{uuid.uuid4().hex[:8]}"


def remove_stale_partials(final: str | Path) -> None:
    """Delete the ``.NAME.partial-*`` (and ``.NAME.old-*``) dirs a killed writer left beside
    ``final``. Call it holding ``final``'s lock (:mod:`tela_core.infra.locks`): then no live writer owns them."""
    import shutil

    p = Path(final)
    for pattern in (f".{p.name}.partial-*", f".{p.name}.old-*"):
        for stale in p.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def replace_dir(stage: str | Path, final: str | Path) -> None:
    """Put the finished dir ``stage`` in the place of ``final`` (which may exist): the old one is
    renamed aside first and deleted last, so ``final`` is at every moment the old or the new dir,
    never a mix of both."""
    import shutil
    import uuid

    s, f = Path(stage), Path(final)
    old = None
    if f.exists():
        old = f.parent / f".{f.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(f, old)
    os.replace(s, f)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Write a whole directory out of sight: yields a hidden staging dir beside ``final``; when the
    block succeeds it replaces ``final`` (:func:`replace_dir`), when it fails it is deleted."""
    import shutil

    stage = partial_dir(final)
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    replace_dir(stage, final)
