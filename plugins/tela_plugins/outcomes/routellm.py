"""RouteLLM's per-subject outcome CSVs (``routellm/evals/mmlu/responses/mmlu_<subject>.csv``).

Each CSV has a ``prompt`` column and one True/False column per model (did it answer correctly).
Other columns (e.g. response texts) are ignored: a column counts as a model column when its value
in the first data row is ``True`` or ``False``, and must then be True/False (or 1/0) in every row.
A folder is read file by file in name order; the group of a row is the subject from the file name
(``mmlu_<subject>.csv`` -> ``<subject>``; any other ``<name>.csv`` -> ``<name>``).

RouteLLM drops the prompts listed in ``contaminated_prompts.jsonl`` (field ``eval_prompt``) from
evaluation; when that file lies beside the CSVs they are dropped here too (``exclude_contaminated``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from tela_core import InputError, Record
from tela_core.data.protocols import contaminated_prompts
from tela_core.infra.io import read_utf8
from tela_plugins.outcomes.common import OutcomeOptions, OutcomeSource

__all__ = ["RouteLLMCsvSource", "RouteLLMOptions"]

_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}
CONTAMINATED_FILE = "contaminated_prompts.jsonl"


class RouteLLMOptions(OutcomeOptions):
    weak_model: str | None = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    """The weak model's column (RouteLLM's MMLU pair: Mixtral 8x7B)."""
    strong_model: str | None = "gpt-4-1106-preview"
    """The strong model's column (RouteLLM's MMLU pair: GPT-4 Turbo)."""
    exclude_contaminated: bool = Field(True)
    """Drop prompts listed in a ``contaminated_prompts.jsonl`` beside the CSVs."""


def _csv_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not files:
            raise InputError(path, None, "folder holds no .csv files")
        return files
    if not path.exists():
        raise InputError(path, None, "file not found")
    return [path]


def _group_of(csv_path: Path) -> str:
    stem = csv_path.stem
    return stem[len("mmlu_") :] if stem.startswith("mmlu_") else stem


def _decode(path: Path) -> str:
    return read_utf8(path)


class RouteLLMCsvSource(OutcomeSource):
    """RouteLLM outcome CSVs: a ``prompt`` column and one True/False column per model."""

    detect_priority = -5  # claims any .csv: yields to a source that knows the schema (arena, routerbench, ...)

    name = "routellm-csv"
    description = "RouteLLM outcome CSV(s): prompt + one True/False column per model; group = subject"
    Options = RouteLLMOptions

    def read(self, path: Path) -> Iterator[Record]:
        path = Path(path)
        files = _csv_files(path)
        contaminated: set[str] = set()
        cfile = (path if path.is_dir() else path.parent) / CONTAMINATED_FILE
        if self.options.exclude_contaminated and cfile.is_file():
            contaminated = set(contaminated_prompts(cfile))
        self.stats = {"files": len(files), "contaminated_dropped": 0}
        for f in files:
            yield from self._read_file(f, contaminated)

    def _read_file(self, path: Path, contaminated: set[str]) -> Iterator[Record]:
        text = _decode(path)
        reader = csv.reader(io.StringIO(text, newline=""))
        group = _group_of(path)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(path, 1, 'empty file; expected a header row with a "prompt" column')
            header = [h.strip() for h in header]
            if "prompt" not in header:
                raise InputError(path, 1, f'missing column "prompt"; the header has: {", ".join(header)}')
            dup = {h for h in header if header.count(h) > 1}
            if dup:
                raise InputError(path, 1, f"duplicate column name(s): {', '.join(sorted(dup))}")
            p_idx = header.index("prompt")
            models: list[tuple[int, str]] | None = None
            pair: tuple[str, str] | None = None
            last = reader.line_num
            row_no = 0
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise InputError(
                        path, start, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}"
                    )
                if models is None:
                    models = [
                        (i, h)
                        for i, h in enumerate(header)
                        if i != p_idx and row[i].strip().lower() in ("true", "false")
                    ]
                    if not models:
                        raise InputError(
                            path, start, 'no model columns: expected one True/False column per model besides "prompt"'
                        )
                    pair = self.pair([m for _, m in models], path)
                prompt = row[p_idx]
                if not prompt.strip():
                    raise InputError(path, start, 'empty "prompt"')
                outcomes: dict[str, float] = {}
                for i, model in models:
                    v = row[i].strip().lower()
                    if v in _TRUE:
                        outcomes[model] = 1.0
                    elif v in _FALSE:
                        outcomes[model] = 0.0
                    else:
                        raise InputError(path, start, f"column {model!r}: expected True or False, got {row[i]!r}")
                row_no += 1
                if prompt in contaminated:
                    self.stats["contaminated_dropped"] += 1
                    continue
                assert pair is not None
                yield self.make_record(prompt, outcomes, pair, group=group, id=f"{group}/{row_no}")
        except csv.Error as e:
            raise InputError(path, reader.line_num or 1, f"bad CSV: {e}") from None

    def sniff(self, path: Path) -> bool:
        """Any ``.csv`` file, or a folder holding one: this is the only builtin CSV source, and
        claiming the file lets :meth:`read` say what is wrong with it (e.g. no prompt column)."""
        path = Path(path)
        if path.is_dir():
            return any(p.is_file() for p in path.glob("*.csv"))
        return path.is_file() and path.suffix.lower() == ".csv"
