"""``old-lines``: one question per line of a text file; unlabelled (prompts to route)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from tela_core import Record, Source
from tela_core.errors import InputError
from tela_core.records import seed_record


class LinesSource(Source):
    """One question per line of a text file; unlabelled (prompts to route)."""

    name = "old-lines"

    def read(self, path: Path) -> Iterator[Record]:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    raise InputError(path, lineno, "empty line; expected a question")
                yield seed_record(line.rstrip("\n"), label=None)

    def sniff(self, path: Path) -> bool:
        return Path(path).suffix == ".txt"
