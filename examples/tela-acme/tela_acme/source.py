"""``acme-csv``: one CSV of prompts with a ``correct:<model>`` column per model (and optional costs).

The shape most teams export from an evaluation harness: a row per prompt, one right/wrong column
per model, optionally a cost per model and a group (task, subject, customer). Unlike RouteLLM's
per-subject CSVs, any number of models, the column names are options, and costs travel along.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tela_core import InputError, Record, Source, TelaError
from tela_core.data.records import seed_record

_TRUE = {"true", "yes", "y", "1", "right", "correct", "pass"}
_FALSE = {"false", "no", "n", "0", "wrong", "incorrect", "fail"}


class AcmeCsvOptions(BaseModel):
    """Settings of ``acme-csv`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    prompt_column: str = Field("prompt", description="Column holding the user's prompt.")
    outcome_prefix: str = Field(
        "correct:",
        min_length=1,
        description="Columns named PREFIX<model> hold that model's outcome (true/false, 0/1 or 0..1).",
    )
    cost_prefix: str = Field(
        "cost:", min_length=1, description="Columns named PREFIX<model> hold that model's $ cost for the prompt."
    )
    group_column: str | None = Field(
        "group", description="Column with a group for group-aware splits (ignored when absent)."
    )
    id_column: str | None = Field("id", description="Column with a record id (ignored when absent).")
    weak_model: str | None = Field(
        None, description="The weak model of the pair (default: the lower mean outcome of two models)."
    )
    strong_model: str | None = Field(
        None, description="The strong model of the pair (default: the higher mean outcome of two models)."
    )
    right_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="An outcome at or above this counts as right when labelling."
    )
    label_weak_right: int = Field(5, ge=1, le=5, description="Label when the weak model is right.")
    label_only_strong_right: int = Field(1, ge=1, le=5, description="Label when only the strong model is right.")
    label_both_wrong: int = Field(3, ge=1, le=5, description="Label when both are wrong.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field delimiter.")


def _outcome(raw: str) -> float:
    text = raw.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    value = float(text)  # ValueError for anything else; the caller names the line
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{raw!r} is not in [0, 1]")
    return value


class AcmeCsvSource(Source):
    """One CSV: a prompt column and a ``correct:<model>`` column per model, optional ``cost:<model>``."""

    name = "acme-csv"
    description = "one CSV: prompt, correct:<model> per model, optional cost:<model>, group, id (tela-acme)"
    Options = AcmeCsvOptions
    options: AcmeCsvOptions
    # routellm-csv claims every .csv at -5; this source knows its schema (the prefix), so it wins.
    detect_priority = 0

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".csv" or not path.is_file():
            return False
        try:
            with open(path, encoding="utf-8", newline="") as f:
                header = next(csv.reader(f, delimiter=self.options.delimiter), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            return False
        return any(h.startswith(self.options.outcome_prefix) for h in header)

    def read(self, path: Path) -> Iterator[Record]:
        opts = self.options
        path = Path(path)
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=opts.delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise InputError(path, 1, "empty file; expected a header row") from None
            if opts.prompt_column not in header:
                raise InputError(path, 1, f"no column {opts.prompt_column!r} (columns: {', '.join(header)})")
            models = [h[len(opts.outcome_prefix) :] for h in header if h.startswith(opts.outcome_prefix)]
            if not models:
                raise InputError(path, 1, f"no {opts.outcome_prefix}<model> column; expected one per model")
            idx = {h: i for i, h in enumerate(header)}
            rows = []
            blank = 0
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    blank += 1  # a blank line (e.g. at the end of the file): skipped, and said so
                    continue
                if len(row) != len(header):
                    raise InputError(path, line, f"{len(row)} fields, header has {len(header)}")
                prompt = row[idx[opts.prompt_column]]
                if not prompt.strip():
                    raise InputError(path, line, f"empty {opts.prompt_column!r}")
                outcomes, costs = {}, {}
                for m in models:
                    cell = row[idx[opts.outcome_prefix + m]]
                    try:
                        outcomes[m] = _outcome(cell)
                    except ValueError:
                        raise InputError(
                            path, line, f"{opts.outcome_prefix}{m}: {cell!r} is not true/false or a number in [0, 1]"
                        ) from None
                    cost_col = opts.cost_prefix + m
                    if cost_col in idx and row[idx[cost_col]].strip():
                        try:
                            costs[m] = float(row[idx[cost_col]])
                        except ValueError:
                            raise InputError(
                                path, line, f"{cost_col}: {row[idx[cost_col]]!r} is not a number"
                            ) from None
                group = row[idx[opts.group_column]] if opts.group_column in idx else None
                rid = row[idx[opts.id_column]] if opts.id_column in idx else None
                rows.append((line, prompt, outcomes, costs, group or None, rid or None))
        if not rows:
            raise InputError(path, None, "no data rows")
        weak, strong = self._pair(path, models, rows)
        # What `tela data check` prints and `tela eval` keeps in its report (Source.stats).
        self.stats = {"models": len(models)}
        if weak is None:
            self.stats["unlabelled"] = "more than two models and no pair named (--weak-model/--strong-model)"
        if blank:
            self.stats["blank_lines_skipped"] = blank
        for line, prompt, outcomes, costs, group, rid in rows:
            label = self._label(outcomes, weak, strong)
            yield seed_record(prompt, label, outcomes=outcomes, costs=costs or None, group=group, id=rid)

    def _pair(self, path: Path, models: list[str], rows: list) -> tuple[str | None, str | None]:
        """The pair the labels come from; (None, None) for N-model data with no pair named."""
        opts = self.options
        for name in (opts.weak_model, opts.strong_model):
            if name is not None and name not in models:
                raise InputError(
                    path, 1, f"model {name!r} has no {opts.outcome_prefix}{name} column (models: {', '.join(models)})"
                )
        if opts.weak_model and opts.strong_model:
            return opts.weak_model, opts.strong_model
        if len(models) != 2:
            return None, None  # unlabelled: fine for eval --all-models, and `tela run` asks for the pair
        means = {m: sum(r[2][m] for r in rows) / len(rows) for m in models}
        if means[models[0]] == means[models[1]] and not (opts.weak_model or opts.strong_model):
            raise TelaError(
                f"{path}: both models have mean outcome {means[models[0]]:.3f}; name the pair with --set "
                "source.weak_model=... --set source.strong_model=..."
            )
        weak = (
            opts.weak_model
            or (opts.strong_model and next(m for m in models if m != opts.strong_model))
            or min(models, key=lambda m: means[m])
        )
        strong = opts.strong_model or next(m for m in models if m != weak)
        return weak, strong

    def _label(self, outcomes: dict[str, float], weak: str | None, strong: str | None) -> int | None:
        if weak is None or strong is None:
            return None
        t, opts = self.options.right_threshold, self.options
        if outcomes[weak] >= t:
            return opts.label_weak_right
        return opts.label_only_strong_right if outcomes[strong] >= t else opts.label_both_wrong
