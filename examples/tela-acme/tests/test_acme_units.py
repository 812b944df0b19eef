"""The pieces whose edge cases the CLI tests do not reach: the budget's ties and the middle cut."""

from __future__ import annotations

import numpy as np
import pytest
from tela_acme.formatter import compact
from tela_acme.policy import budget_threshold

from tela_core import Scores, TelaError
from tela_core.plugins import get_registry


def test_budget_never_overshoots_on_ties():
    # Three prompts tied at 0.9: any threshold that admits one admits all three (75% > 50%).
    assert np.mean(np.array([0.9, 0.9, 0.9, 0.1]) >= budget_threshold([0.9, 0.9, 0.9, 0.1], 0.5, 0.0)) == 0.0
    w = np.linspace(0.0, 1.0, 101)
    for share in (0.0, 0.1, 0.25, 0.333, 1.0):
        t = budget_threshold(w, share, 0.0)
        assert np.mean(w >= t) <= share + 1e-12 and np.mean(w >= t) > share - 0.011  # at most, and not far below
    assert budget_threshold(w, 1.0, 0.7) == 0.7  # the floor on w wins over unused budget


def test_calibrate_returns_a_calibrated_copy_and_choose_keeps_no_state():
    policy = get_registry().create("policy", "acme-budget", {"strong_share": 0.2})
    calibrated = policy.calibrate(np.linspace(0, 1, 11))  # 2 of 11 may go strong: threshold 0.9
    assert policy.options.threshold is None and calibrated.options.achieved_share <= 0.2
    models = ["cheap", "strong"]
    one_batch = calibrated.choose(Scores(w=np.array([0.95, 0.1, 0.92])), models)
    singly = [calibrated.choose(Scores(w=np.array([w])), models)[0] for w in (0.95, 0.1, 0.92)]
    assert one_batch == singly == ["strong", "cheap", "strong"]
    with pytest.raises(TelaError, match="no threshold yet"):
        policy.choose(Scores(w=np.array([0.5])), models)


def test_compact_keeps_head_and_tail():
    assert compact("abcdefghij", 0, 0.4, "~") == "abcdefghij"
    assert compact("abcdefghij", 5, 0.4, "~") == "abc~ij"
    assert compact("abcdefghij", 4, 0.0, "~") == "abcd~"
