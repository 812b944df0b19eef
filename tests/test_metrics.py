"""Metrics exactly as docs/metrics.md defines them: hand-computed curves, baselines on real MMLU data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tela_core import TelaError
from tela_core import eval as ev
from tela_core.eval import metrics
from tela_core.testkit.helpers import needs_public_data, public_data

MMLU = public_data("routellm-mmlu") or Path("routellm-mmlu")


def test_round_half_up_counts():
    # ⌊p·n + 0.5⌋, never banker's rounding and never a float slip
    assert metrics.round_half_up_count(0.1, 5) == 1  # 0.5 rounds up
    assert metrics.round_half_up_count(0.5, 3) == 2  # 1.5 rounds up
    assert metrics.round_half_up_count(0.3, 5) == 2  # 1.5 (0.3*5 in floats is 1.4999…)
    assert metrics.round_half_up_count(0.25, 2) == 1
    assert metrics.round_half_up_count(0.0, 7) == 0
    assert metrics.round_half_up_count(1.0, 7) == 7
    assert metrics.strong_counts(5, 10) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    with pytest.raises(TelaError):
        metrics.round_half_up_count(1.2, 5)


def test_hand_computed_curve_with_ties():
    weak = np.array([0, 1, 0, 1, 0], float)
    strong = np.array([1, 1, 0, 0, 1], float)
    # prompts 1, 2 and 4 tie at 0.5: stable order sends 1 then 2 then 4 to strong
    w = np.array([0.9, 0.5, 0.5, 0.1, 0.5])
    c = metrics.curve(w, weak, strong)
    # order 0,1,2,4,3; strong−weak in that order 1,0,0,1,−1; gap = 3 − 2 = 1
    # k on the grid (n = 5): 0,1,1,2,2,3,3,4,4,5,5 -> gains 0,1,1,1,1,1,1,2,2,1,1
    assert c.pgr == pytest.approx([0, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1])
    assert c.quality == pytest.approx([0.4, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.8, 0.8, 0.6, 0.6])
    assert c.q_weak == pytest.approx(0.4) and c.q_strong == pytest.approx(0.6)
    assert c.apgr == pytest.approx(0.1 * (11 + 0.5))  # 1.15
    assert c.auc == pytest.approx(0.1 * (5.8 + 0.5))  # 0.63
    assert c.cpt50 == pytest.approx(0.10)  # k >= 1 first at p = 0.10 (0.1*5 + 0.5 = 1)
    assert c.cpt80 == pytest.approx(0.10)
    # breaking the ties the other way (4 before 1, 2) would give a different curve
    w2 = np.array([0.9, 0.5, 0.5, 0.1, 0.51])
    assert metrics.curve(w2, weak, strong).pgr[3] == pytest.approx(2.0)


def test_router_worse_than_random():
    weak = np.array([1, 0, 0, 1], float)
    strong = np.array([0, 1, 1, 1], float)
    w = np.array([0.9, 0.1, 0.2, 0.5])  # sends the one prompt only the weak model gets right first
    c = metrics.curve(w, weak, strong)
    # order 0,3,2,1; strong−weak −1,0,1,1; k: 0,0,1,1,2,2,2,3,3,4,4
    assert c.pgr == pytest.approx([0, 0, -1, -1, -1, -1, -1, 0, 0, 1, 1])
    assert c.apgr == pytest.approx(-0.35)
    assert c.cpt50 == pytest.approx(0.88)  # needs k = 4: p·4 + 0.5 >= 4 -> p >= 0.875
    assert c.cpt80 == pytest.approx(0.88)
    assert metrics.cpt(w, weak, strong, 0.5) == pytest.approx(0.88)
    rnd = ev.random_baseline(weak, strong)
    assert c.apgr < rnd.apgr
    oracle = ev.evaluate_scores(ev.oracle_scores(weak, strong), weak, strong)
    assert oracle.apgr > rnd.apgr > c.apgr


def test_curve_ends_and_errors():
    rng = np.random.default_rng(1)
    weak = (rng.random(200) < 0.5).astype(float)
    strong = (rng.random(200) < 0.7).astype(float)
    c = metrics.curve(rng.random(200), weak, strong)
    assert c.pgr[0] == 0 and c.pgr[-1] == pytest.approx(1.0)
    assert c.quality[0] == pytest.approx(weak.mean()) and c.quality[-1] == pytest.approx(strong.mean())
    assert len(c.p) == 11 and len(c.p_fine) == 101
    with pytest.raises(TelaError, match="undefined"):
        metrics.curve(np.arange(3.0), np.ones(3), np.ones(3))
    with pytest.raises(TelaError, match="NaN"):
        metrics.curve(np.array([0.1, np.nan]), np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(TelaError, match="one length"):
        metrics.curve(np.zeros(3), np.zeros(2), np.zeros(3))


def test_evaluate_from_matrix_with_costs():
    outcomes = np.array([[0, 1], [1, 1], [0, 0], [0, 0]], float)  # columns: cheap, pricey
    costs = np.array([[1, 10], [1, 10], [2, 20], [2, 20]], float)
    w = np.array([0.8, 0.1, 0.5, 0.0])
    out = ev.evaluate(w, outcomes, ["cheap", "pricey"], costs=costs)
    r = out["router"]
    assert set(out) == {"router", "random", "oracle"}
    assert r["cost"][0] == pytest.approx(1.5) and r["cost"][-1] == pytest.approx(15.0)
    # p = 0.3: k = ⌊1.2 + 0.5⌋ = 1 -> prompt 0 to strong: (10 + 1 + 2 + 2) / 4
    assert r["cost"][3] == pytest.approx(15 / 4)
    assert out["random"]["seeds"] == 10
    with pytest.raises(TelaError):
        ev.evaluate(w, outcomes, ["a", "b", "c"])


def test_random_baseline_is_mean_of_seeds():
    rng = np.random.default_rng(7)
    weak = (rng.random(300) < 0.6).astype(float)
    strong = (rng.random(300) < 0.8).astype(float)
    rnd = ev.random_baseline(weak, strong)
    each = [metrics.curve(np.random.default_rng(s).random(300), weak, strong).apgr for s in range(10)]
    assert rnd.apgr == pytest.approx(np.mean(each))


@needs_public_data("routellm-mmlu")
def test_mmlu_heldout_baselines_match_metrics_md():
    from tela_core.data.detect import read_records

    records, source, info = read_records(MMLU, protocol="mmlu-heldout")
    # 10,981 records of the 42 training subjects, less 78 questions repeated in a held-out subject
    assert len(records) == 3056 and info["train_records"] == 10903
    weak, strong = ev.resolve_pair(records, None, None, source)
    data = ev.outcome_arrays(records, weak, strong)
    assert data.weak.mean() == pytest.approx(0.8043, abs=5e-5)
    assert data.strong.mean() == pytest.approx(0.8920, abs=5e-5)
    rnd = ev.random_baseline(data.weak, data.strong)
    assert abs(rnd.apgr - 0.50) <= 0.03
    assert round(rnd.apgr, 3) == 0.488 and round(rnd.cpt50, 2) == 0.53 and round(rnd.cpt80, 2) == 0.82
    orc = ev.evaluate_scores(ev.oracle_scores(data.weak, data.strong), data.weak, data.strong)
    assert orc.apgr == pytest.approx(1.251, abs=0.005)
    assert (orc.cpt50, orc.cpt80) == (pytest.approx(0.05), pytest.approx(0.08))
    length = ev.evaluate_scores(np.array([len(r.prompt) for r in records], float), data.weak, data.strong)
    assert round(length.apgr, 3) == 0.513 and (length.cpt50, length.cpt80) == (pytest.approx(0.49), pytest.approx(0.83))


@needs_public_data("routellm-mmlu")
def test_mmlu_heldout_train_side_never_holds_an_evaluation_question():
    from tela_core.data.detect import open_source
    from tela_core.data.protocols import split

    records = list(open_source(MMLU, "detect", {}).read(MMLU))
    train, evals = split("mmlu-heldout", records)
    assert len(evals) == 3056
    assert not {r.prompt for r in train} & {r.prompt for r in evals}
    assert all(r.group not in {e.group for e in evals} for r in train)
