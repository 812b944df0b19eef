"""Builtin plugin: the seed's JSONL format as a data source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tela_core import Record, Source, hookimpl
from tela_core.data.records import iter_jsonl, validate_seed_object


class JsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    require_label: bool = True
    """Every record must be training data: end with the assistant's ``[[k]]``, or carry ``outcomes``
    (as ``tela feedback`` and ``tela judge`` over N models write them; the families that learn from
    outcomes train on them, score-token training needs the label). Off for prompts to route."""


class JsonlSource(Source):
    """One JSON object per line: ``messages`` (system/user/assistant ``[[k]]``) and ``prompt``.

    Optional keys are read too, so one file serves training and evaluation: ``outcomes``
    (model -> 0..1), ``costs`` (model -> $ >= 0), ``group`` and ``id`` (``tela data convert``
    writes them).
    """

    detect_priority = -10  # claims any .jsonl: yields to a source that knows the schema

    name = "jsonl"
    description = "the seed's JSONL: messages ending in the assistant's [[k]], plus prompt"
    Options = JsonlOptions

    def read(self, path: Path) -> Iterator[Record]:
        for lineno, obj in iter_jsonl(path):
            yield validate_seed_object(obj, path, lineno, require_label=self.options.require_label)

    def sniff(self, path: Path) -> bool:
        return Path(path).suffix == ".jsonl"


@hookimpl
def tela_register_sources(register):
    register(JsonlSource)
