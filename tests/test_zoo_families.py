"""Router zoo families: train → save → load → score round trips on tiny data, and their targets."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from tela_core import Record, TelaError
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest, read_policy
from tela_core.routing.router import Router

W, S = "weak-model", "strong-model"
HARD = [
    "Compute the integral of x^2 sin(x) from 0 to pi.",
    "Solve the differential equation y'' + 4y = 0.",
    "Find the eigenvalues of the 3x3 matrix [[2,1,0],[1,2,1],[0,1,2]].",
    "Prove that sqrt(2) is irrational.",
]
EASY = [
    "What is the capital of France?",
    "Which colour is the sky on a clear day?",
    "How many legs does a dog have?",
    "Who wrote Romeo and Juliet?",
]


def _records(n: int = 48) -> list[Record]:
    recs = []
    for i in range(n):
        hard = i % 2 == 0
        base = (HARD if hard else EASY)[(i // 2) % 4]
        recs.append(
            Record(
                prompt=f"{base} (variant {i})",
                outcomes={W: 0.0 if hard else 1.0, S: 1.0 if hard or i % 3 else 0.0},
                group=f"g{i % 6}",
                id=str(i),
            )
        )
    return recs


pytestmark = pytest.mark.usefixtures("isolated_cache")  # every test embeds into a cache of its own


def _round_trip(family: str, tmp_path, options=None) -> tuple[np.ndarray, np.ndarray]:
    scorer = get_registry().create("family", family, options or {})
    assert scorer.uses_backend is False
    out = scorer.fit(_records(), tmp_path / family, {})
    manifest = read_manifest(out)
    assert manifest["scorer"] == family
    assert manifest["weak"] == W and manifest["strong"] == S
    assert read_policy(out)["models"] == [W, S]
    probe = ["Compute the integral of x^3 cos(x) dx.", "What is the capital of Italy?"]
    before = scorer.score(probe).w
    loaded = Router.load(out).scorer
    after = loaded.score(probe).w
    assert after.shape == (2,)
    assert np.all((after >= 0) & (after <= 1))
    return before, after


def test_length_learns_direction(tmp_path):
    recs = [Record(prompt="x" * (10 + i), outcomes={W: float(i < 20), S: 1.0}) for i in range(40)]
    scorer = get_registry().create("family", "length", {})
    scorer.fit(recs, tmp_path / "l", {})
    w = Router.load(tmp_path / "l").scorer.score(["x" * 12, "x" * 48]).w
    assert w[1] > w[0]  # long prompts were the ones the weak model got wrong


def test_random_is_seeded_and_uniform(tmp_path):
    scorer = get_registry().create("family", "random", {"seed": 3})
    scorer.fit(_records(), tmp_path / "r", {})
    a = Router.load(tmp_path / "r").scorer.score(["p"] * 1000).w
    b = Router.load(tmp_path / "r").scorer.score(["p"] * 1000).w
    assert np.array_equal(a, b)
    assert 0.45 < a.mean() < 0.55 and a.min() >= 0 and a.max() < 1


def test_random_draws_a_fresh_w_per_request_seeded_per_router(tmp_path):
    """Issue 26: served, ``random`` scores one prompt per call; it reseeded on every call, so every
    request got the same w (0.773956 for seed 0) and went to one model. Now each loaded router
    draws on from its own seeded stream: fresh per call, the same sequence for the same seed."""
    scorer = get_registry().create("family", "random", {"seed": 0})
    scorer.fit(_records(), tmp_path / "r", {})
    served = Router.load(tmp_path / "r")
    one_by_one = [float(served.scorer.score(["the same prompt"]).w[0]) for _ in range(200)]
    assert len(set(one_by_one)) == 200 and min(one_by_one) < 0.1 and max(one_by_one) > 0.9
    picks = [d.model for d in (served.decisions(served.scores([f"prompt {i}"]))[0] for i in range(200))]
    assert 60 < picks.count(S) < 140 and 60 < picks.count(W) < 140  # both models, about half each
    again = Router.load(tmp_path / "r").scorer
    assert [float(again.score(["the same prompt"]).w[0]) for _ in range(200)] == one_by_one  # seeded per router
    at_once = Router.load(tmp_path / "r").scorer.score(["p"] * 200).w  # one stream: an eval's curve is unchanged
    np.testing.assert_array_equal(at_once, np.random.default_rng(0).random(200))
    np.testing.assert_array_equal(at_once, one_by_one)


@pytest.mark.parametrize(
    "family,options",
    [
        ("embedding-knn", {"k": 5}),
        ("embedding-linear", {"C": 10.0}),
        ("matrix-factorization", {"dim": 8, "epochs": 150, "lr": 0.05}),
    ],
)
def test_embedding_family_round_trip(family, options, tmp_path):
    before, after = _round_trip(family, tmp_path, options)
    np.testing.assert_allclose(before, after, atol=1e-3)  # knn stores fp16 embeddings
    assert after[0] > after[1] + 0.2  # the maths prompt needs the strong model


def test_knn_predicts_each_model(tmp_path):
    scorer = get_registry().create("family", "embedding-knn", {"k": 4})
    scorer.fit(_records(), tmp_path / "k", {})
    loaded = Router.load(tmp_path / "k").scorer
    p = loaded.predict_models(["What is the capital of Spain?"])
    assert loaded.models == [W, S]
    assert p.shape == (1, 2) and p[0, 0] > 0.9  # easy prompts: the weak model was right


def test_gain_target_orders_like_the_oracle(tmp_path):
    from tela_core.routing.targets import make_targets

    recs = [Record(prompt=str(i), outcomes={W: w, S: s}) for i, (w, s) in enumerate([(0, 1), (1, 0), (0, 0), (1, 1)])]
    y, meta = make_targets(recs, "gain", weak=W, strong=S)
    assert y.tolist() == [1.0, 0.0, 0.5, 0.5]
    assert (meta["weak"], meta["strong"]) == (W, S)
    y2, _ = make_targets(recs, "weak-wrong", weak=W, strong=S)
    assert y2.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_three_models_need_explicit_pair():
    from tela_core.routing.targets import make_targets

    recs = [Record(prompt="q", outcomes={"a": 1.0, "b": 0.0, "c": 1.0})]
    with pytest.raises(TelaError, match="weak=... and strong="):
        make_targets(recs, "weak-wrong")
    with pytest.raises(TelaError, match="not in the outcomes"):
        make_targets(recs, "weak-wrong", weak="a", strong="zzz")


def test_record_without_outcomes_is_a_clear_error(tmp_path):
    scorer = get_registry().create("family", "length", {})
    with pytest.raises(TelaError, match="no outcomes"):
        scorer.fit([Record(prompt="q", outcomes={W: 1.0, S: 1.0}), Record(prompt="r")], tmp_path / "x", {})


def test_ensemble_round_trip(tmp_path):
    opts = {"members": ["length", {"family": "embedding-knn", "options": {"k": 5}}], "folds": 3}
    before, after = _round_trip("ensemble", tmp_path, opts)
    np.testing.assert_allclose(before, after, atol=1e-3)
    assert after[0] > after[1]
    stack = json.loads((tmp_path / "ensemble" / "stack.json").read_text())
    assert [m["family"] for m in stack["members"]] == ["length", "embedding-knn"]
    assert stack["coef"][1] > 0  # the informative member carries positive weight


def test_wrong_artifact_is_refused(tmp_path):
    get_registry().create("family", "length", {}).fit(_records(), tmp_path / "l", {})
    knn = get_registry().create("family", "embedding-knn", {})
    with pytest.raises(TelaError, match="written by scorer 'length'"):
        knn.load(tmp_path / "l")


def test_linear_probe_sdk_fits_any_features(tmp_path, register_plugin):
    """tela_core.routing.probe.LinearProbeScorer, the probe embedding-linear and lm-probe share, is a
    family for any features: a third party writes only ``features``; the pair comes from
    ``config``, the options survive the manifest, and standardize folds the scaling into the
    saved coefficients (the loaded router scores the raw features the same)."""
    from pydantic import Field

    from tela_core import hookimpl
    from tela_core.routing.probe import LinearProbeScorer, ProbeOptions

    class MathOptions(ProbeOptions):
        scale: float = Field(100.0, gt=0, description="multiplies the features (standardize undoes it)")

    class MathProbe(LinearProbeScorer):
        name = "test-math-probe"
        Options = MathOptions
        standardize = True

        def features(self, prompts):
            words = ("compute", "solve", "find", "prove")
            return np.array([[self.options.scale * any(w in p.lower() for w in words), len(p)] for p in prompts], float)

    @hookimpl
    def tela_register_scorers(register):
        register(MathProbe)

    register_plugin(types.SimpleNamespace(tela_register_scorers=tela_register_scorers), "test-math-probe")
    scorer = get_registry().create("family", "test-math-probe", {"C": 10.0, "scale": 1000.0})
    out = scorer.fit(_records(), tmp_path / "probe", {"weak": W, "strong": S, "run": {}})
    manifest = read_manifest(out)
    assert (manifest["weak"], manifest["strong"]) == (W, S)
    assert manifest["scorer_options"]["scale"] == 1000.0 and manifest["scorer_options"]["C"] == 10.0
    assert set(json.loads((out / "linear.json").read_text())) == {"coef", "bias"}
    probe = ["Solve x^2 = 4 for x.", "Who painted the Mona Lisa?"]
    before = scorer.score(probe).w
    after = Router.load(out).scorer.score(probe).w
    np.testing.assert_allclose(before, after)
    assert after[0] > 0.5 > after[1]


def test_embedding_cache_reuses_vectors(tmp_path):
    from tela_core.models import vector_cache

    a = vector_cache.embed(["alpha question", "beta question"])
    shards = list((tmp_path / "cache" / "embeddings").rglob("shard-*.npz"))
    assert len(shards) == 1
    b = vector_cache.embed(["beta question", "alpha question"])  # all cached: no new shard
    assert len(list((tmp_path / "cache" / "embeddings").rglob("shard-*.npz"))) == 1
    np.testing.assert_allclose(a[::-1], b, atol=1e-6)
    c = vector_cache.embed(["alpha question", "gamma question"])
    assert len(list((tmp_path / "cache" / "embeddings").rglob("shard-*.npz"))) == 2
    np.testing.assert_allclose(c[0], a[0], atol=1e-6)
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_encoder_classifier_round_trip(tmp_path):
    opts = {"max_steps": 4, "batch_size": 8, "max_length": 32, "learning_rate": 5e-4}
    before, after = _round_trip("encoder-classifier", tmp_path, opts)
    np.testing.assert_allclose(before, after, atol=1e-5)
    assert (tmp_path / "encoder-classifier" / "model" / "config.json").exists()


_DS_SCRIPT = r"""
import sys, json
from pathlib import Path
from tela_core import Record
from tela_core.plugins.discovery import get_registry
out = Path(sys.argv[1])
recs = [Record(prompt=("integral of x^%d dx" % i) if i % 2 else ("capital of country %d" % i),
               outcomes={"weak-model": float(i % 2 == 0), "strong-model": 1.0}) for i in range(32)]
ds = {"train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 1,
      "zero_optimization": {"stage": 2}, "zero_force_ds_cpu_optimizer": False}
s = get_registry().create("family", "encoder-classifier",
                          {"max_steps": 2, "batch_size": 8, "max_length": 32, "deepspeed": ds})
s.fit(recs, out, {})
"""


@pytest.mark.slow
def test_encoder_classifier_under_deepspeed(tmp_path):
    """The deepspeed option really trains under DeepSpeed (fresh process: it sets up a process
    group) and leaves a plain loadable artifact."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MASTER_PORT": "29631", "OMP_NUM_THREADS": "1"}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    r = subprocess.run(
        [sys.executable, "-c", _DS_SCRIPT, str(tmp_path / "ds")], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_manifest(tmp_path / "ds")["deepspeed"] is True
    w = Router.load(tmp_path / "ds").scorer.score(["integral of x^9 dx", "capital of country 99"]).w
    assert w.shape == (2,) and np.all((w >= 0) & (w <= 1))


def test_vector_cache_keeps_finished_chunks_of_a_killed_run(tmp_path):
    """A run killed part-way keeps every finished chunk; the rerun computes only the rest."""
    from tela_core.models import vector_cache

    texts = [f"prompt number {i}" + "x" * i for i in range(10)]
    folder = tmp_path / "vectors"
    seen: list[str] = []

    def compute(batch, report):
        if len(seen) >= 6:
            raise KeyboardInterrupt  # killed while computing the third chunk
        seen.extend(batch)
        report(len(batch), len(batch))
        return np.array([[len(t), 1.0] for t in batch], dtype=np.float32)

    with pytest.raises(KeyboardInterrupt):
        vector_cache.cached_vectors(texts, folder, "m", compute, chunk_size=3, progress=lambda d, n: None)
    assert len(list(folder.glob("shard-*.npz"))) == 2  # two chunks finished and written
    assert not list(folder.glob(".tmp-*"))  # nothing half-written

    rerun: list[str] = []

    def compute_rest(batch, report):
        rerun.extend(batch)
        return np.array([[len(t), 1.0] for t in batch], dtype=np.float32)

    ticks: list[tuple[int, int]] = []
    out = vector_cache.cached_vectors(
        texts, folder, "m", compute_rest, chunk_size=3, progress=lambda d, n: ticks.append((d, n))
    )
    assert sorted(rerun) == sorted(set(texts) - set(seen))  # only the unfinished ones
    assert ticks[-1] == (4, 4)
    np.testing.assert_array_equal(out[:, 0], [len(t) for t in texts])  # rows in the caller's order


def test_a_few_texts_do_not_wait_behind_a_long_cache_writer(tmp_path):
    """`tela route` with an embedding router must not stall while another process fills the vector
    cache for an hour: a few new texts are computed at once, without touching the cache; a big
    pass (a chunk or more) still waits for the writer rather than compute the same vectors twice."""
    import subprocess
    import sys
    import time

    from tela_core.models import vector_cache

    folder = tmp_path / "cache" / "m"
    folder.mkdir(parents=True)
    script = (
        "import sys, time\nfrom tela_core.infra.locks import cache_lock\n"
        "with cache_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(3.0)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"

        def compute(texts, report):
            return np.ones((len(texts), 2), dtype=np.float32)

        t0 = time.monotonic()
        out = vector_cache.cached_vectors(["a", "b"], folder, "m", compute, chunk_size=8, progress=lambda d, n: None)
        assert out.shape == (2, 2) and time.monotonic() - t0 < 1.5
        assert not list(folder.glob("*.npz"))  # nothing written beside the other writer
        t0 = time.monotonic()
        vector_cache.cached_vectors(
            [f"t{i}" for i in range(8)], folder, "m", compute, chunk_size=8, progress=lambda d, n: None
        )
        assert time.monotonic() - t0 > 1.0  # waited for the writer, then wrote its own shard
        assert list(folder.glob("*.npz"))
    finally:
        p.wait()
