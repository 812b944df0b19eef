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


class _Pair:
    """A router between two models (``w``: how much a prompt needs the strong one; no per-model
    quality, as the two-model families give), sending ``w >= threshold`` to the strong model."""

    path = Path("pair")
    manifest: dict[str, Any] = {"scorer": "fixed-pair"}

    def __init__(self, models: list[str], w: Any, threshold: float = 0.5) -> None:
        self.models, self.w, self.t = models, np.asarray(w, dtype=float), threshold

    def scores(self, prompts: list[str], quality: bool = False) -> Any:
        from tela_core.components import Scores

        return Scores(w=self.w[: len(prompts)])

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(self.models[1] if x >= self.t else self.models[0], float(x), self.t) for x in scores.w]


def test_a_two_model_current_is_compared_with_an_n_model_candidate_on_aiq_over_its_pair() -> None:
    """The first version routes between two models; the next one among four. The current version's
    quality-cost hull is its threshold sweep between its pair (the points it can reach), over the
    same cost range and prompts as the candidate's."""
    from tela_core.eval import nmodel
    from tela_core.eval.metrics import strong_counts
    from tela_core.eval.promotion import check_comparable, compare

    records, truth = _setup()
    seen = truth * 0.8 + 0.1
    models = ["small", "new", "mid", "big"]
    cand = _Table(models, seen[:, [0, 3, 1, 2]])
    knows = _Pair(["small", "big"], 1.0 - truth[:, 0])  # sends big exactly what small gets wrong
    check_comparable(cand, knows)  # type: ignore[arg-type]
    c = compare(cand, knows, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    # the pair's hull, by hand: the top k prompts by w to big, for k on the 0.01 grid
    cost = np.array([[COSTS[m] for m in models]] * len(records))
    t = truth[:, [0, 3, 1, 2]]
    order = np.argsort(-knows.w, kind="stable")
    pts = []
    for k in strong_counts(len(records), 100):
        big = np.zeros(len(records), dtype=bool)
        big[order[:k]] = True
        pts.append((float(np.where(big, cost[:, 3], cost[:, 0]).mean()), float(np.where(big, t[:, 3], t[:, 0]).mean())))
    lo, hi = float(cost.mean(axis=0).min()), float(cost.mean(axis=0).max())  # the single models' range
    assert c.metric == "aiq" and c.interval.b == pytest.approx(nmodel.aiq(nmodel.hull(pts), lo, hi), abs=1e-9)
    # the candidate's four models reach points the pair cannot (new is cheap, and right wherever mid
    # is): better beyond the interval, though the pair sends big exactly what small gets wrong
    assert c.current.quality == 1.0 and c.decision == "promote" and c.interval.lo > 0, c.why
    assert "the current version routes between small and big only" in c.why, c.why
    # a candidate guessing at random among its four: worse beyond the interval than that pair, refused
    noise = _Table(models, np.random.default_rng(3).random((len(records), 4)))
    c = compare(noise, knows, records, "small", "big", resamples=200)  # type: ignore[arg-type]
    assert c.decision == "refuse" and c.why.startswith("AIQ worse beyond the interval"), c.why
    assert c.current.cost == pytest.approx(np.where(knows.w >= 0.5, COSTS["big"], COSTS["small"]).mean())
    # a pair the candidate lacks a model of is refused, naming it
    with pytest.raises(TelaError, match="does not route to other"):
        check_comparable(cand, _Pair(["small", "other"], knows.w))  # type: ignore[arg-type]
