"""Prompts from a file or stdin, as ``tela route --file`` and ``tela calibrate --data`` read them.

A line starting with ``{`` is a JSON object with a ``"prompt"`` string (seed JSONL and outcome
JSONL qualify), one starting with ``"`` a JSON string, any other non-blank line is the prompt
itself. Bad input raises :class:`~tela_core.infra.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from tela_core.data.records import check_text, loads_json
from tela_core.infra.errors import InputError

__all__ = ["read_prompt_lines", "read_prompt_file"]


def read_prompt_lines(fh: Iterable[str], where: str) -> list[str]:
    """Prompts from lines of text: a line starting with ``{`` is a JSON object with a ``"prompt"``
    string (seed JSONL and outcome JSONL qualify), one starting with ``"`` a JSON string, any other
    non-blank line is the prompt itself. Bad JSON raises :class:`InputError` with the line number."""
    prompts = []
    for lineno, raw in enumerate(fh, start=1):
        line = raw.rstrip("\r\n")
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a byte order mark is not part of the prompt
        if not line.strip():
            continue
        head = line.lstrip()[:1]
        if head in ("{", '"'):
            obj = loads_json(line, where, lineno)  # bad JSON, NaN/Infinity, too deep: one line
            if isinstance(obj, dict):
                obj = obj.get("prompt")
                if not isinstance(obj, str) or not obj.strip():
                    raise InputError(where, lineno, 'expected an object with a non-empty "prompt" string')
            elif not isinstance(obj, str) or not obj.strip():
                raise InputError(where, lineno, 'expected a JSON string or an object with a "prompt"')
            prompts.append(check_text(obj, where, lineno, "the prompt"))
        else:
            prompts.append(line)
    return prompts


def read_prompt_file(path: Path) -> list[str]:
    """The prompts of ``path`` (``-``: stdin); a missing, non-UTF-8 or empty file is an InputError."""
    if str(path) == "-":
        return read_prompt_lines(sys.stdin, "<stdin>")
    if not path.is_file():
        raise InputError(
            path, None, "is a directory, expected a file of prompts" if path.is_dir() else "file not found"
        )
    lines = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise InputError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    prompts = read_prompt_lines(lines, str(path))
    if not prompts:
        raise InputError(path, None, "no prompts (empty, or only blank lines)")
    return prompts
