"""Outcome data for judging a two-model router: the weak and strong model's per-prompt outcomes
(and costs), pulled out of records once so every replay and report reads the same arrays.

Which two models are weak and strong follows :func:`tela_core.routing.targets.resolve_pair`, the one rule
``tela run``, ``tela eval``, ``tela zoo`` and every family use (re-exported here for eval's callers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tela_core.infra.errors import TelaError
from tela_core.routing.targets import model_names, resolve_pair  # the one pair rule, re-exported for eval's callers

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.data.records import Record

__all__ = ["OutcomeArrays", "outcome_arrays", "model_names", "resolve_pair"]


@dataclass
class OutcomeArrays:
    """Per-prompt outcomes (and costs, when every prompt has them) of the weak and strong model."""

    weak_model: str
    strong_model: str
    weak: np.ndarray
    strong: np.ndarray
    weak_cost: np.ndarray | None = None
    strong_cost: np.ndarray | None = None


def outcome_arrays(records: Sequence[Record], weak_model: str, strong_model: str) -> OutcomeArrays:
    """Pull the weak/strong outcomes (and costs) out of outcome records.

    Raises :class:`TelaError` naming the first record that lacks an outcome for either model.
    Costs are kept only when every record has a cost for both models.
    """
    import numpy as np

    if not records:
        raise TelaError("no records to evaluate")
    weak, strong, wc, sc = [], [], [], []
    has_cost = True
    for i, r in enumerate(records):
        out = r.outcomes or {}
        for m in (weak_model, strong_model):
            if m not in out:
                where = r.id or f"record {i + 1}"
                known = ", ".join(sorted(out)) or "none"
                raise TelaError(
                    f"{where}: no outcome for model {m!r} (outcomes for: {known}); outcome data is needed to evaluate"
                )
        weak.append(out[weak_model])
        strong.append(out[strong_model])
        costs = r.costs or {}
        if has_cost and weak_model in costs and strong_model in costs:
            wc.append(costs[weak_model])
            sc.append(costs[strong_model])
        else:
            has_cost = False
    return OutcomeArrays(
        weak_model,
        strong_model,
        np.asarray(weak, dtype=float),
        np.asarray(strong, dtype=float),
        np.asarray(wc, dtype=float) if has_cost else None,
        np.asarray(sc, dtype=float) if has_cost else None,
    )
