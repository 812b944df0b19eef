"""``hf``: any dataset ``datasets.load_dataset`` can open, read through a column mapping.

``--data`` is a hub id (``org/name``; ``config``, ``split`` and ``revision`` are options), a local
folder (a ``save_to_disk`` folder included) or a parquet/JSON/CSV file (:mod:`.load`). The options
say which column holds what:

- the question: ``prompt_column``, or ``messages_column`` (a list of ``{role, content}``; the
  question is its last user message, and a final assistant ``[[k]]`` is the label);
- the label: ``score_column`` (a 1..5 judge score) or ``label_column`` (1..5 or ``"[[k]]"``);
- outcomes: ``outcome_columns`` (``{model: column}`` or a list of columns named after their model;
  values true/false, 0/1 or a number in [0, 1]) and ``cost_columns`` (``{model: column}``, $ >= 0).
  With outcomes and no label column, the 1..5 label comes from the weak/strong mapping of the
  outcome sources (``weak_model``/``strong_model`` must be set);
- ``group_column`` and ``id_column`` (default id: ``SPLIT/ROW``).

Each row becomes a seed-format record (the seed's system prompt, ``[Question]`` template and
``[[k]]``), validated like a JSONL line; a bad row is reported as
``DATASET (split SPLIT): row N: what is wrong``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import field_validator

from tela_core import Record, Source
from tela_core.data.labels import OutcomeOptions, label_for
from tela_core.data.records import ROLES, parse_label, seed_record
from tela_plugins.hf.load import Opened, open_split, require_columns

__all__ = ["HFOptions", "HFSource", "as_score", "as_outcome", "as_cost", "mapping_option"]


def mapping_option(value: Any) -> dict[str, str] | None:
    """``{model: column}`` from a mapping, a list of columns (model = column) or ``"m=c,m2=c2"``."""
    if value is None or value == {} or value == []:
        return None
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        out: dict[str, str] = {}
        for part in value.split(","):
            model, eq, col = part.partition("=")
            out[model.strip()] = (col if eq else model).strip()
        return out
    if isinstance(value, (list, tuple)):
        return {str(c): str(c) for c in value}
    raise ValueError("expected {model: column}, a list of columns, or 'model=column,...'")


class HFOptions(OutcomeOptions):
    """Where the data is (split, config, revision) and which column holds what."""

    split: str = "train"
    """Split to read (``train``, ``validation``, ``test``, ...)."""
    config: str | None = None
    """Dataset config (subset) name, for hub datasets that have several."""
    revision: str | None = None
    """Hub revision (a commit sha pins the data; default: the main branch)."""
    prompt_column: str | None = "prompt"
    """Column holding the user's question (ignored when messages_column gives it)."""
    messages_column: str | None = None
    """Column holding a chat as a list of {role, content}; the question is its last user message."""
    score_column: str | None = None
    """Column holding a 1..5 judge score of the weak model's answer: the label."""
    label_column: str | None = None
    """Column holding the label as 1..5 or "[[k]]"."""
    outcome_columns: dict[str, str] | None = None
    """Per-model outcome columns: {model: column}, a list of columns, or "model=column,..."."""
    cost_columns: dict[str, str] | None = None
    """Per-model cost columns ($ per prompt): {model: column} or "model=column,..."."""
    group_column: str | None = None
    """Column holding a group (e.g. a subject) for group-aware splits."""
    id_column: str | None = None
    """Column holding a record id (default: SPLIT/ROW)."""
    require_label: bool = False
    """Refuse rows without a label (training needs one; evaluation does not)."""

    @field_validator("outcome_columns", "cost_columns", mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        return mapping_option(v)


def as_score(value: Any) -> int | None:
    """A 1..5 integer from an int, an integral float, a numeric string or ``"[[k]]"``; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
        k = parse_label(s)
        if k is not None:
            return k
        try:
            value = float(s)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    return None


def as_outcome(value: Any) -> float | None:
    """An outcome in [0, 1] from a bool, 0/1, a number in [0, 1] or ``"True"``/``"False"``; else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("true", "false"):
            return 1.0 if s == "true" else 0.0
        try:
            value = float(s)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and -1e-9 <= value <= 1 + 1e-9:
        return min(1.0, max(0.0, float(value)))
    return None


def as_cost(value: Any) -> float | None:
    """A cost >= 0 from a number or numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and value >= 0:
        return float(value)
    return None


class HFSource(Source):
    """Any dataset datasets.load_dataset can open (hub id, folder, parquet/JSON/CSV) via a column mapping."""

    name = "hf"
    description = "Hugging Face dataset (hub id, folder, save_to_disk, parquet/JSON/CSV) with a column mapping"
    Options = HFOptions
    #: ``--data`` may be a hub id rather than a path (``tela run`` lets it through)
    reads_hub_ids = True

    def open(self, path: Path | str) -> Opened:
        o = self.options
        return open_split(path, split=o.split, config=o.config, revision=o.revision)

    def read(self, path: Path) -> Iterator[Record]:
        opened = self.open(path)
        o = self.options
        if o.score_column and o.label_column:
            raise opened.error(0, "set score_column or label_column, not both")
        outcome_cols = o.outcome_columns or {}
        cost_cols = o.cost_columns or {}
        wanted = {
            "messages_column": o.messages_column,
            "prompt_column": o.prompt_column if not o.messages_column else None,
            "score_column": o.score_column,
            "label_column": o.label_column,
            "group_column": o.group_column,
            "id_column": o.id_column,
            **{f"outcome_columns[{m}]": c for m, c in outcome_cols.items()},
            **{f"cost_columns[{m}]": c for m, c in cost_cols.items()},
        }
        require_columns(opened, wanted)
        pair = self._pair(outcome_cols, opened)
        self.stats = {"dataset": opened.name, "split": opened.split, "rows": len(opened)}
        for i, row in enumerate(opened.rows([c for c in wanted.values() if c])):
            yield self.record(opened, i, row, pair)

    def _pair(self, outcome_cols: Mapping[str, str], opened: Opened) -> tuple[str, str] | None:
        o = self.options
        if not outcome_cols or o.score_column or o.label_column or not (o.weak_model and o.strong_model):
            return None
        for role, m in (("weak", o.weak_model), ("strong", o.strong_model)):
            if m not in outcome_cols:
                raise opened.error(
                    0, f"{role} model {m!r} has no outcome column; outcome_columns: {', '.join(outcome_cols)}"
                )
        return o.weak_model, o.strong_model

    def record(self, opened: Opened, i: int, row: Mapping[str, Any], pair: tuple[str, str] | None) -> Record:
        """One row as a validated seed-format record."""
        o = self.options
        messages = None
        label: int | None = None
        if o.messages_column:
            messages, prompt, label = self._messages(opened, i, row[o.messages_column])
        else:
            prompt = row[o.prompt_column] if o.prompt_column else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise opened.error(i, f"column {o.prompt_column!r}: expected a non-empty question, got {_show(prompt)}")
        for col in (o.score_column, o.label_column):
            if col:
                label = as_score(row[col])
                if label is None:
                    raise opened.error(i, f"column {col!r}: expected a score 1..5, got {_show(row[col])}")
        outcomes = self._numbers(
            opened, i, row, o.outcome_columns or {}, as_outcome, "an outcome in [0, 1] (or true/false)"
        )
        costs = self._numbers(opened, i, row, o.cost_columns or {}, as_cost, "a cost >= 0")
        if label is None and pair is not None and outcomes:
            label = label_for(outcomes[pair[0]], outcomes[pair[1]], o)
        if label is None and o.require_label:
            raise opened.error(
                i, "no label (set score_column, label_column, or outcome_columns with weak/strong models)"
            )
        extra = {
            "outcomes": outcomes or None,
            "costs": costs or None,
            "group": _text(row[o.group_column]) if o.group_column else None,
            "id": _text(row[o.id_column]) if o.id_column else f"{opened.split}/{i}",
        }
        if messages is not None and messages[-1]["role"] == "assistant":
            return Record(prompt=prompt, messages=messages, label=label, **extra)
        return seed_record(prompt, label, **extra)

    def _messages(self, opened: Opened, i: int, value: Any) -> tuple[list[dict[str, str]], str, int | None]:
        if not isinstance(value, list) or not value:
            raise opened.error(
                i, f"column {self.options.messages_column!r}: expected a non-empty list of {{role, content}}"
            )
        out = []
        for j, m in enumerate(value):
            if (
                not isinstance(m, Mapping)
                or m.get("role") not in ROLES
                or not isinstance(m.get("content"), str)
                or not m["content"].strip()
            ):
                raise opened.error(
                    i, f"messages[{j}]: expected {{role: {'/'.join(ROLES)}, content: non-empty text}}, got {_show(m)}"
                )
            out.append({"role": m["role"], "content": m["content"]})
        users = [m["content"] for m in out if m["role"] == "user"]
        if not users:
            raise opened.error(i, "messages hold no user message")
        label = None
        if out[-1]["role"] == "assistant":
            label = parse_label(out[-1]["content"])
            if label is None:
                raise opened.error(
                    i, f"last assistant message must be a score [[k]] (k in 1..5), got {_show(out[-1]['content'])}"
                )
        prompt = users[-1]
        head, tail = "[Question]\n", "\n\nPrediction:\n"
        if prompt.startswith(head) and prompt.endswith(tail):  # the seed's user template: the question inside
            prompt = prompt[len(head) : -len(tail)] or prompt
        return out, prompt, label

    @staticmethod
    def _numbers(
        opened: Opened, i: int, row: Mapping[str, Any], cols: Mapping[str, str], parse: Any, what: str
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for model, col in cols.items():
            x = parse(row[col])
            if x is None:
                raise opened.error(i, f"column {col!r} ({model}): expected {what}, got {_show(row[col])}")
            out[model] = x
        return out

    def sniff(self, path: Path) -> bool:
        """Never: the generic source needs its column mapping, so it is picked with ``--source hf``."""
        return False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else ",".join(map(str, value))
    return str(value)


def _show(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"
