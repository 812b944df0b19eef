"""``lm-probe``: cached causal-LM hidden-state features and the probe's round trip (tiny Llama)."""

from __future__ import annotations

import numpy as np
import pytest

from tela_core import Record
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest
from tela_core.routing.router import Router
from tela_core.testkit.helpers import build_tiny_model

W, S = "weak-model", "strong-model"
HARD = [
    "Compute the integral of x^2 sin(x) from 0 to pi.",
    "Solve the differential equation y'' + 4y = 0.",
    "Find the eigenvalues of the matrix [[2,1],[1,2]].",
    "Prove that sqrt(2) is irrational.",
]
EASY = [
    "What is the capital of France?",
    "Which colour is the sky on a clear day?",
    "How many legs does a dog have?",
    "Who wrote Romeo and Juliet?",
]


pytestmark = pytest.mark.usefixtures("isolated_cache")  # _shards() reads this test's own cache


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """Three layers, not the kit's two-layer tiny_model: the tests probe layers below the full depth."""
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-lm"), num_layers=3))


def _shards(tmp_path):
    return sorted((tmp_path / "cache" / "lm-features").rglob("shard-*.npz"))


def test_features_are_cached_per_layer_and_text(tiny_lm, tmp_path, monkeypatch):
    from tela_plugins.lm_probe import features

    texts = ["alpha question", "a longer beta question with more words"]
    a = features.lm_features(texts, [1, 3], tiny_lm)
    assert set(a) == {1, 3} and a[1].shape == (2, 64)
    assert len(_shards(tmp_path)) == 2  # one new shard per layer
    assert not np.allclose(a[1], a[3])

    def boom(*_a, **_k):
        raise AssertionError("a cached text was run through the model again")

    monkeypatch.setattr(features, "_load", boom)
    b = features.lm_features(texts[::-1], [3], tiny_lm)
    np.testing.assert_array_equal(b[3], a[3][::-1])


def test_a_layer_means_the_same_whatever_depth_the_model_was_cut_to(tiny_lm):
    from tela_plugins.lm_probe import features

    texts = ["one prompt", "another, longer prompt that pads the batch"]
    deep = features.lm_features(texts, [2, 3], tiny_lm, cache=False)[2]
    shallow = features.lm_features(texts, [2], tiny_lm, cache=False)[2]
    np.testing.assert_allclose(deep, shallow, atol=1e-5)
    one_by_one = np.stack([features.lm_features([t], [2], tiny_lm, cache=False, batch_size=1)[2][0] for t in texts])
    np.testing.assert_allclose(deep, one_by_one, atol=1e-4)  # padding does not leak into the mean


def test_long_prompts_keep_their_end(tiny_lm):
    from tela_plugins.lm_probe import features

    tail = " Which option is right? A. yes B. no Answer:"
    x = features.lm_features(
        ["passage " * 300 + tail, "other words " * 300 + tail], [1], tiny_lm, max_tokens=16, cache=False
    )[1]
    np.testing.assert_allclose(x[0], x[1], atol=1e-5)  # both cut to the same last 16 tokens


def _records(n: int = 48) -> list[Record]:
    out = []
    for i in range(n):
        hard = i % 2 == 0
        out.append(
            Record(
                prompt=f"{(HARD if hard else EASY)[(i // 2) % 4]} (variant {i})",
                outcomes={W: 0.0 if hard else 1.0, S: 1.0},
                group=f"g{i % 6}",
            )
        )
    return out


def test_lm_probe_round_trip(tiny_lm, tmp_path):
    scorer = get_registry().create("family", "lm-probe", {"model": tiny_lm, "layer": 2, "C": 1.0})
    assert scorer.uses_backend is False
    out = scorer.fit(_records(), tmp_path / "probe", {})
    manifest = read_manifest(out)
    assert manifest["scorer"] == "lm-probe" and manifest["scorer_options"]["layer"] == 2
    probe = ["Compute the integral of x^3 cos(x) dx.", "What is the capital of Italy?"]
    before = scorer.score(probe).w
    after = Router.load(out).scorer.score(probe).w
    np.testing.assert_allclose(before, after, atol=1e-6)
    assert after[0] > after[1]  # the maths prompt needs the strong model


def test_max_train_caps_the_training_sample(tiny_lm, tmp_path):
    scorer = get_registry().create("family", "lm-probe", {"model": tiny_lm, "layer": 1, "max_train": 20})
    out = scorer.fit(_records(), tmp_path / "capped", {})
    assert read_manifest(out)["train_records"] == 20


def test_probe_equals_a_standardised_logistic_regression(tiny_lm, tmp_path):
    """The saved raw-feature coefficients give the same w as scaler + logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tela_plugins.lm_probe.features import lm_features

    recs = _records()
    scorer = get_registry().create("family", "lm-probe", {"model": tiny_lm, "layer": 2, "C": 0.5})
    scorer.fit(recs, tmp_path / "p", {})
    x = lm_features([r.prompt for r in recs], [2], tiny_lm)[2]
    y = np.array([1 - r.outcomes[W] for r in recs])
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(x, y)
    np.testing.assert_allclose(scorer.score([r.prompt for r in recs]).w, ref.predict_proba(x)[:, 1], atol=1e-3)
