"""``tela promote`` of a router with a model added (``tela run --add-to``) over the current version
(issue 28): the candidate may route among more models than the current version, never fewer.

The routers here are fixed tables of predicted quality (the comparison's inputs, not a trained
family), so what is tested is the rule: both routers on the same prompts, which carry every one
of the candidate's models' outcome and cost; the current router never picks the model it lacks;
both hulls over the same cost range.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tela_core.infra.errors import TelaError

COSTS = {"small": 0.001, "mid": 0.003, "big": 0.01, "new": 0.0015}


class _Table:
    """A router among ``models`` whose predicted qualities are given."""

    path = Path("fixed")
    manifest: dict[str, Any] = {"scorer": "fixed"}

    def __init__(self, models: list[str], quality: Any) -> None:
        self.models, self.quality = models, quality

    def scores(self, prompts: list[str], quality: bool = False) -> Any:
        from tela_core.components import Scores

        return Scores(w=self.quality[:, -1], quality=self.quality, models=tuple(self.models))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(self.models[int(np.argmax(q))], 0.0, None) for q in scores.quality]


def _setup() -> tuple[list[Any], np.ndarray]:
    from tela_core.data.records import seed_record

    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, size=(160, 4)).astype(float)
    truth[:, 2] = 1.0  # big: always right
    truth[:, 3] = np.maximum(truth[:, 3], truth[:, 1])  # new: cheap, and right wherever mid is
    records = [
        seed_record(f"p{i}", None, outcomes=dict(zip(COSTS, map(float, t))), costs=COSTS) for i, t in enumerate(truth)
    ]
    return records, truth


def test_a_candidate_with_a_model_added_is_compared_where_the_current_cannot_pick_it() -> None:
    from tela_core.eval.promotion import check_comparable, compare

    records, truth = _setup()
    seen = truth * 0.8 + 0.1  # both routers predict their models' outcomes equally well
    current = _Table(["small", "mid", "big"], seen[:, :3])
    added = _Table(["small", "new", "mid", "big"], seen[:, [0, 3, 1, 2]])
    check_comparable(added, current)  # type: ignore[arg-type]
    c = compare(added, current, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    # the cheap new model is right wherever mid is: the candidate's hull lies above the current's
    assert c.metric == "aiq" and c.decision == "promote" and c.interval.lo > 0, c.why
    assert c.candidate.cost is not None and c.current.cost is not None
    # a model added that is never worth sending to: the same choices, so not better and not cheaper
    useless = dict(COSTS, new=0.02)
    worse = [dataclasses.replace(r, outcomes={**r.outcomes, "new": 0.0}, costs=useless) for r in records]
    idle = _Table(["small", "mid", "big", "new"], np.c_[seen[:, :3], np.full(len(records), 0.1)])
    c = compare(idle, current, worse, "small", "big", resamples=200)  # type: ignore[arg-type]
    assert c.interval.diff == 0 and c.decision == "refuse", c.why


def test_a_candidate_that_drops_a_model_the_current_serves_is_refused_naming_it() -> None:
    from tela_core.eval.promotion import check_comparable

    _, truth = _setup()
    current = _Table(["small", "mid", "big", "new"], truth)
    candidate = _Table(["small", "mid", "big"], truth[:, :3])
    with pytest.raises(TelaError, match="the candidate does not route to new, which the current version serves"):
        check_comparable(candidate, current)  # type: ignore[arg-type]
    swapped = _Table(["small", "new", "big"], truth[:, [0, 3, 2]])
    with pytest.raises(TelaError, match="does not route to mid"):
        check_comparable(swapped, _Table(["small", "mid", "big"], truth[:, :3]))  # type: ignore[arg-type]
