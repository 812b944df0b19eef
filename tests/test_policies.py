"""Router policies: threshold, calibrated (hits its target share), tiers; options are validated."""

from __future__ import annotations

import numpy as np
import pytest

from tela_core import Scores, TelaError, get_registry
from tela_plugins.policies import calibrate_threshold, strong_share


def make(name, **opts):
    return get_registry().create("policy", name, opts)


def test_threshold_routes_w_at_or_above_t():
    p = make("threshold", threshold=0.4)
    s = Scores(w=np.array([0.1, 0.4, 0.39999, 0.9]))
    assert p.choose(s, ["cheap", "big"]) == ["cheap", "big", "cheap", "big"]
    assert make("threshold", threshold=0.0).choose(s, ["a", "b"]) == ["b"] * 4
    with pytest.raises(TelaError, match="two models"):
        p.choose(s, ["a", "b", "c"])


@pytest.mark.parametrize("t", [-0.1, 1.5])
def test_threshold_outside_unit_interval_is_refused(t):
    with pytest.raises(TelaError, match="bad options for policy 'threshold'.*threshold"):
        make("threshold", threshold=t)
    with pytest.raises(TelaError, match="strong_share"):
        make("calibrated", strong_share=t)
    with pytest.raises(TelaError, match=r"\[0, 1\]"):
        calibrate_threshold([0.1, 0.2], t)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.8, 1.0])
def test_calibration_hits_target_share(share):
    w = np.random.default_rng(3).random(1000)
    t = calibrate_threshold(w, share)
    assert 0.0 <= t <= 1.0
    assert abs(strong_share(w, t) - share) <= 1 / len(w)
    pol = make("calibrated", strong_share=share).calibrate(w, data="cal.jsonl")
    assert pol.options.threshold == pytest.approx(t)
    assert pol.options.achieved_share == pytest.approx(strong_share(w, t))
    chosen = pol.choose(Scores(w=w), ["weak", "strong"])
    assert abs(chosen.count("strong") / len(w) - share) <= 1 / len(w)


def test_calibration_with_ties_and_score_distribution():
    # a score-token router's w takes few distinct values on an undertrained model: ties
    w = np.repeat([0.2, 0.5, 0.7, 0.9], 25)
    t = calibrate_threshold(w, 0.5)
    assert strong_share(w, t) == pytest.approx(0.5)


def test_uncalibrated_policy_says_how_to_calibrate():
    p = make("calibrated", strong_share=0.3)
    with pytest.raises(TelaError, match="tela calibrate"):
        p.choose(Scores(w=np.array([0.5])), ["weak", "strong"])


def test_tiers_by_expected_score():
    probs = np.array(
        [
            [0.9, 0.1, 0, 0, 0],  # expected 1.1 -> strongest
            [0, 0, 1, 0, 0],  # 3.0 -> middle
            [0, 0, 0, 0.5, 0.5],  # 4.5 -> cheapest
        ]
    )
    s = Scores(w=1 - probs[:, 3:].sum(1), probs=probs)
    models = ["small", "medium", "large"]
    assert make("tiers").choose(s, models) == ["large", "medium", "small"]
    assert make("tiers", bounds=[1.05, 4.9]).choose(s, models) == ["medium", "medium", "medium"]
    # without a distribution, expected = 1 + 4(1 − w)
    assert make("tiers").choose(Scores(w=np.array([0.0, 1.0])), ["a", "b"]) == ["a", "b"]
    with pytest.raises(TelaError, match="increasing"):
        make("tiers", bounds=[3.0, 2.0])
    with pytest.raises(TelaError, match=r"\[1, 5\]"):
        make("tiers", bounds=[0.5])
    with pytest.raises(TelaError, match="need 2 bounds"):
        make("tiers", bounds=[3.0]).choose(s, models)


def test_policies_are_registered_with_typed_options():
    reg = get_registry()
    for name in ("threshold", "calibrated", "tiers"):
        entry = reg.entry("policy", name)
        assert entry.description
        assert entry.cls.Options.model_json_schema()["properties"]
