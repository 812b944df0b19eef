"""Records: the one shape every source yields and every stage takes (:class:`Record`, with its
chat :class:`Message` list), and the check each record passes before tela uses it. Reading and
writing the seed's JSONL format is :mod:`tela_core.data.records`, which re-exports these names."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from tela_core.infra.errors import InputError

__all__ = ["Message", "Record", "ROLES", "record_problem", "checked_records"]

ROLES = ("system", "user", "assistant")


class Message(TypedDict):
    role: str
    content: str


@dataclass
class Record:
    """One routing example.

    ``prompt`` is the user's question (what a deployed router sees). ``messages`` are the seed's
    chat messages (system, user, assistant ``[[k]]``); ``label`` is k (1..5) or None when unlabelled.
    Outcome sources fill ``outcomes`` (model -> quality in [0, 1]) and ``costs`` (model -> $ for this
    prompt), and ``group`` (e.g. the MMLU subject) for group-aware splits. ``sampling_p`` is the
    probability the prompt was sampled with, where it came from ``tela serve``'s shadow log (each
    line records it; ``tela collect --from-log`` and ``tela judge`` keep it): ``tela promote``
    weighs each prompt by ``1 / sampling_p`` so that the labelled prompts stand for the traffic.
    """

    prompt: str
    messages: list[Message] = field(default_factory=list)
    label: int | None = None
    outcomes: dict[str, float] | None = None
    costs: dict[str, float] | None = None
    group: str | None = None
    id: str | None = None
    sampling_p: float | None = None

    def to_seed(self) -> dict[str, Any]:
        """The seed's JSONL object: ``{"messages": [...], "prompt": ...}``."""
        return {"messages": list(self.messages), "prompt": self.prompt}

    def to_json(self) -> dict[str, Any]:
        """The seed's object plus tela's optional keys (``outcomes``, ``costs``, ``group``, ``id``,
        ``sampling_p``) where set; :func:`validate_seed_object` reads them back, so one file serves training and
        evaluation."""
        obj = self.to_seed()
        for key in ("outcomes", "costs", "group", "id", "sampling_p"):
            value = getattr(self, key)
            if value is not None:
                obj[key] = value
        return obj


def record_problem(record: Any) -> str | None:
    """What is wrong with a record a source yielded, or None: the one check every record passes
    before tela uses it, whichever plugin made it (:meth:`tela_core.components.Source.records`)."""
    if not isinstance(record, Record):
        return f"a source must yield tela_core.Record objects, got {type(record).__name__}"
    if not isinstance(record.prompt, str) or not record.prompt.strip():
        return "prompt must be a non-empty string"
    if record.label is not None and (isinstance(record.label, bool) or record.label not in (1, 2, 3, 4, 5)):
        return f"label must be an integer 1..5 or None, got {record.label!r}"
    for key, lo, hi in (("outcomes", 0.0, 1.0), ("costs", 0.0, None)):
        value = getattr(record, key)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            return f"{key} must map model names to numbers, got {type(value).__name__}"
        for model, x in value.items():
            if not isinstance(model, str) or not model:
                return f"{key}: model names must be non-empty strings, got {model!r}"
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                return f"{key}[{model!r}] must be a finite number, got {x!r}"
            if x < lo or (hi is not None and x > hi):
                want = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
                return f"{key}[{model!r}] must be {want}, got {x!r}"
    for key in ("group", "id"):
        value = getattr(record, key)
        if value is not None and not isinstance(value, str):
            return f"{key} must be a string or None, got {type(value).__name__}"
    p = record.sampling_p
    if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1):
        return f"sampling_p must be a probability in (0, 1], got {p!r}"
    if not isinstance(record.messages, list):
        return "messages must be a list"
    for i, m in enumerate(record.messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"messages[{i}] must be a {{role, content}} object with role one of {', '.join(ROLES)}"
    return None


def checked_records(records: Iterable[Any], path: str | Path, source: str) -> Iterator[Record]:
    """``records`` as they come, each checked by :func:`record_problem`; the first bad one is an
    :class:`InputError` naming the file, the record and the source that made it."""
    for i, r in enumerate(records, start=1):
        problem = record_problem(r)
        if problem is not None:
            which = getattr(r, "id", None) or f"#{i}"
            raise InputError(path, None, f"record {which} (from source {source!r}): {problem}")
        yield r
