"""Reading the JSONL logs ``tela serve`` appends (decision log, shadow log): one rule for a line a
killed server left half-written, so every reader skips exactly that line and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from tela_core.infra.errors import InputError

__all__ = ["read_log"]


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
