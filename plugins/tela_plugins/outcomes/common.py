"""What the outcome sources share: record building over the one outcome -> 1..5 label mapping
(:mod:`tela_core.data.labels`, which says how the weak and strong outcomes become a label)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from tela_core import InputError, Record, Source
from tela_core.data.labels import OutcomeOptions, label_for  # the one mapping, shared with other source plugins
from tela_core.data.records import loads_json, seed_record
from tela_core.infra.errors import PairModelError
from tela_core.infra.io import read_utf8

__all__ = ["OutcomeOptions", "OutcomeSource", "label_for"]


class OutcomeSource(Source):
    """Base of the outcome sources: resolves the weak/strong pair and builds labelled records.

    ``stats`` (declared on :class:`~tela_core.components.Source`) holds notes about the last
    :meth:`read` (e.g. rows skipped), for ``tela data check``.
    """

    Options: ClassVar[type[BaseModel]] = OutcomeOptions

    def pair(self, models: Iterable[str], path: Path) -> tuple[str, str]:
        """The (weak, strong) model names, checked against the models in the data."""
        known = list(models)
        weak = self.options.weak_model
        strong = self.options.strong_model
        for role, name in (("weak", weak), ("strong", strong)):
            if name is None:
                raise PairModelError(path, role, f"set the {role} model; models in the data: {', '.join(known)}")
            if name not in known:
                raise PairModelError(
                    path, role, f"{role} model {name!r} is not in the data; models: {', '.join(known)}"
                )
        if weak == strong:
            raise InputError(path, None, f"weak and strong model are both {weak!r}")
        return weak, strong  # type: ignore[return-value]

    def make_record(
        self,
        question: str,
        outcomes: Mapping[str, float],
        pair: tuple[str, str],
        *,
        costs: Mapping[str, float] | None = None,
        group: str | None = None,
        id: str | None = None,
    ) -> Record:
        """A seed-format record (system prompt, ``[Question]`` template, ``[[label]]``) that also
        carries the outcomes, costs, group and id. Without an outcome of both models of the pair (an
        N-model record that lacks one) it has no 1..5 label."""
        weak, strong = pair
        label = (
            label_for(outcomes[weak], outcomes[strong], self.options)
            if weak in outcomes and strong in outcomes
            else None
        )
        return seed_record(
            question,
            label,
            outcomes=dict(outcomes),
            costs=dict(costs) if costs else None,
            group=group,
            id=id,
        )


def clip01(x: float) -> float:
    """``x`` clipped into [0, 1] (some graders give slightly negative or >1 partial scores)."""
    return 0.0 if x < 0 else 1.0 if x > 1 else float(x)


def is_number(x: Any) -> bool:
    """A finite JSON number (not a bool, not NaN, not ±Infinity)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_price_object(path: Path) -> dict[str, Any]:
    """A JSON price file that must hold one object mapping model name to its prices.

    Undecodable bytes, bad JSON or another shape raise :class:`InputError` naming the file (and
    the line, where JSON says which).
    """
    data = loads_json(read_utf8(path), path)
    if not isinstance(data, dict):
        raise InputError(path, 1, "expected an object mapping model name to its prices")
    return data
