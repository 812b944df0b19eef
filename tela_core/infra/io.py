"""Safe output: atomic writes (files and whole dirs), and no silent overwrite of an earlier run's results."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from tela_core.infra.errors import InputError, TelaError

__all__ = [
    "atomic_open",
    "atomic_write_text",
    "atomic_write_json",
    "write_jsonl",
    "check_can_write",
    "check_dir_writable",
    "dumps_json",
    "json_line",
    "json_line_bytes",
    "split_jsonl",
    "NonFiniteError",
    "partial_dir",
    "remove_stale_partials",
    "remove_stale_temp_files",
    "replace_dir",
    "staged_dir",
]


def read_utf8(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark dropped). Undecodable bytes
    or an unreadable file raise :class:`~tela_core.infra.errors.InputError` naming the file, and the
    line where the bad byte is: every reader of a whole file reports it the same way."""
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


# -- strict JSON ---------------------------------------------------------------------------------
# Every JSON file tela writes is standard JSON: no NaN or Infinity (Python writes them unless told
# not to; every other reader refuses them), and no raw U+0085, U+2028 or U+2029 in a JSONL line
# (JSON allows them raw inside strings, but readers that split lines on Unicode line breaks, such
# as Python's str.splitlines(), cut such a record in two). The writers below are the one place that
# decides both; tela's readers split JSONL on "\n" only.

Nonfinite = Literal["null", "error"]

#: characters JSON leaves raw that Unicode-aware line splitters break lines at (the C0 ones JSON escapes)
_UNICODE_BREAKS = re.compile("[\u0085\u2028\u2029]")
_BREAK_ESCAPES = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class NonFiniteError(TelaError):
    """A value JSON cannot hold (NaN, Infinity) where the file's writer allows no null in its place;
    the message names the file (or what is written) and the field."""


def _first_nonfinite(obj: Any, where: str = "") -> tuple[str, float] | None:
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "the value", obj)
    if isinstance(obj, dict):
        for k, v in obj.items():
            hit = _first_nonfinite(v, f"{where}.{k}" if where else str(k))
            if hit:
                return hit
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            hit = _first_nonfinite(v, f"{where}[{i}]")
            if hit:
                return hit
    return None


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN/Infinity float (in nested dicts, lists and tuples) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def escape_line_breaks(text: str) -> str:
    """``text`` (JSON) with U+0085, U+2028 and U+2029 written as ``\\uXXXX`` escapes: the same JSON
    value, on one line for every reader."""
    return _UNICODE_BREAKS.sub(lambda m: _BREAK_ESCAPES[m.group(0)], text) if _UNICODE_BREAKS.search(text) else text


def dumps_json(
    obj: Any,
    *,
    nonfinite: Nonfinite = "null",
    what: str = "",
    indent: int | None = None,
    ensure_ascii: bool = False,
    sort_keys: bool = False,
    default: Any = None,
    separators: tuple[str, str] | None = None,
) -> str:
    """``obj`` as strict JSON text: NaN/Infinity become ``null`` (``nonfinite="null"``: a metric
    that is undefined) or raise :class:`NonFiniteError` naming ``what`` and the field
    (``"error"``: a value that must be a number); U+0085/U+2028/U+2029 are escaped, so the text is
    one line unless ``indent`` asks for more. Other arguments as :func:`json.dumps`."""
    kw: dict[str, Any] = dict(
        ensure_ascii=ensure_ascii,
        indent=indent,
        sort_keys=sort_keys,
        default=default,
        separators=separators,
        allow_nan=False,
    )
    try:
        text = json.dumps(obj, **kw)
    except ValueError as e:
        if "Out of range float" not in str(e):
            raise
        if nonfinite == "error":
            field, value = _first_nonfinite(obj) or ("a value", math.nan)
            prefix = f"{what}: " if what else ""
            raise NonFiniteError(f"{prefix}{field} is {value}, which JSON cannot hold (no NaN or Infinity)") from None
        text = json.dumps(finite_or_null(obj), **kw)
    return text if ensure_ascii else escape_line_breaks(text)


def json_line(
    obj: Any,
    *,
    nonfinite: Nonfinite = "error",
    what: str = "",
    default: Any = None,
    separators: tuple[str, str] | None = None,
) -> str:
    """One JSONL line for ``obj`` (without the newline): UTF-8 text as it is, U+0085/U+2028/U+2029
    escaped, strict numbers (:func:`dumps_json`). A lone surrogate (no UTF-8 holds one) is kept as
    its ``\\ud800`` escape."""
    line = dumps_json(obj, nonfinite=nonfinite, what=what, default=default, separators=separators)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a key tela does not read: keep it escaped
        line = dumps_json(
            obj, nonfinite=nonfinite, what=what, default=default, separators=separators, ensure_ascii=True
        )
    return line


def json_line_bytes(
    obj: Any, *, nonfinite: Nonfinite = "null", default: Any = None, separators: tuple[str, str] | None = (",", ":")
) -> bytes:
    """:func:`json_line` as UTF-8 bytes with its newline, for logs appended line by line (a NaN is
    ``null`` by default: a log line is never lost to a value JSON cannot hold)."""
    line = dumps_json(obj, nonfinite=nonfinite, default=default, separators=separators)
    try:
        return (line + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (
            dumps_json(obj, nonfinite=nonfinite, default=default, separators=separators, ensure_ascii=True) + "\n"
        ).encode("utf-8")


def split_jsonl(text: str) -> list[str]:
    """The non-blank lines of JSONL ``text``, split on ``"\\n"`` only: never on the other characters
    :meth:`str.splitlines` breaks at (U+0085, U+2028, ...), which a JSON string may hold raw."""
    return [line for line in text.split("\n") if line.strip()]


def atomic_write_json(path: str | Path, data: Any, *, nonfinite: Nonfinite = "null") -> None:
    """Write ``data`` as indented, strict JSON to ``path`` atomically. NaN/Infinity are written as
    ``null`` (an undefined metric), or with ``nonfinite="error"`` (a router file, a run's settings)
    refused with a :class:`NonFiniteError` naming the file and the field, before anything is written."""
    atomic_write_text(
        path, dumps_json(data, nonfinite=nonfinite, what=str(path), indent=2, ensure_ascii=True, default=str) + "\n"
    )


def write_jsonl(path: str | Path, objects: Iterable[Any], *, nonfinite: Nonfinite = "error") -> int:
    """Write one JSON object per line to ``path`` atomically (:func:`json_line`: strict JSON, one
    line for every reader); return how many were written. A NaN/Infinity is refused naming the file,
    the record's line and the field (``nonfinite="null"`` writes it as ``null``)."""
    n = 0
    with atomic_open(path) as fh:
        for obj in objects:
            fh.write(json_line(obj, nonfinite=nonfinite, what=f"{path}:{n + 1}") + "\n")
            n += 1
    return n


def partial_dir(final: str | Path) -> Path:
    """A fresh hidden staging path beside ``final``: ``.NAME.partial-XXXXXXXX``."""
    import uuid

    p = Path(final)
    return p.parent / f".{p.name}.partial-{uuid.uuid4().hex[:8]}"


def remove_stale_partials(final: str | Path) -> None:
    """Delete the ``.NAME.partial-*`` (and ``.NAME.old-*``) dirs a killed writer left beside
    ``final``; when ``final`` itself is missing because the writer was killed between
    :func:`replace_dir`'s two renames, its old dir is put back first. Call it holding ``final``'s
    lock (:mod:`tela_core.infra.locks`): then no live writer owns them."""
    import shutil

    p = Path(final)
    olds = sorted(p.parent.glob(f".{p.name}.old-*"), key=lambda d: d.stat().st_mtime)
    if olds and not p.exists():
        os.replace(olds[-1], p)
    for pattern in (f".{p.name}.partial-*", f".{p.name}.old-*"):
        for stale in p.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def remove_stale_temp_files(final: str | Path) -> None:
    """Delete the ``.NAME.*.tmp`` files a killed :func:`atomic_open` writer of ``final`` left beside
    it (a kill skips its cleanup). Call it holding ``final``'s lock (or its folder's): then no live
    writer owns them."""
    p = Path(final)
    for stale in p.parent.glob(f".{p.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def replace_dir(stage: str | Path, final: str | Path) -> None:
    """Put the finished dir ``stage`` in the place of ``final`` (which may exist): the old one is
    renamed aside first and deleted last, so ``final`` is the old or the new dir, never a mix of
    both. Interrupted between the two renames, it puts the old dir back (an exception here; a kill:
    :func:`remove_stale_partials`, the next writer's first step)."""
    import shutil
    import uuid

    s, f = Path(stage), Path(final)
    old = None
    if f.exists():
        old = f.parent / f".{f.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(f, old)
    try:
        os.replace(s, f)
    except BaseException:  # interrupted between the two renames: the old dir goes back in place
        if old is not None and not f.exists():
            os.replace(old, f)
        raise
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
