"""The example family trains, saves, loads and scores, and is found through the plugin registry."""

from __future__ import annotations

import numpy as np
import tela_example_family

from tela_core import Record, Router
from tela_core.plugins import get_registry

W, S = "weak-model", "strong-model"


def _records() -> list[Record]:
    recs = []
    for i in range(60):
        hard = i % 2 == 0
        prompt = f"integral derivative calculus problem {i}" if hard else f"capital city of country {i}"
        recs.append(Record(prompt=prompt, outcomes={W: 0.0 if hard else 1.0, S: 1.0}))
    return recs


def test_keyword_round_trip(tmp_path, register_plugin):  # register_plugin: tela's test kit
    register_plugin(tela_example_family, "keyword-test")
    scorer = get_registry().create("scorer", "keyword", {})
    scorer.fit(_records(), tmp_path / "r", {})
    loaded = Router.load(tmp_path / "r").scorer
    w = loaded.score(["an integral calculus problem", "the capital city of France", "zzz"]).w
    assert w[0] > 0.8 and w[1] < 0.2  # smoothed toward the 0.5 prior
    assert abs(w[2] - 0.5) < 1e-9  # unknown words: the training prior
    assert np.all((w >= 0) & (w <= 1))


def test_keyword_is_an_ensemble_member(tmp_path, register_plugin):
    """The ensemble hands members the pair through fit()'s config, and only the options they have:
    the example's options forbid unknown keys (extra="forbid") and have no `target`."""
    register_plugin(tela_example_family, "keyword-test")
    ens = get_registry().create("scorer", "ensemble", {"members": ["length", "keyword"], "folds": 3})
    ens.fit(_records(), tmp_path / "e", {})
    w = Router.load(tmp_path / "e").score(["an integral calculus problem", "the capital city of France"])
    assert w[0] > w[1]
