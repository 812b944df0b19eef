"""N-model routing: the hull and AIQ maths, and ``tela eval --all-models`` on a real kNN router."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tela_core import Record
from tela_core.eval.nmodel import aiq, evaluate_nmodel, hull, hull_value


def test_hull_keeps_the_upper_non_decreasing_frontier():
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.72), (4.0, 0.9), (5.0, 0.8)]
    # (2, .4) is dominated, (3, .72) lies under the chord (2, .7)-(4, .9), (5, .8) is worse than (4, .9)
    assert hull(pts) == [(1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]
    h = hull(pts)
    assert hull_value(h, 3.0) == pytest.approx(0.8)
    assert hull_value(h, 10.0) == pytest.approx(0.9)  # spending more buys nothing
    assert np.isnan(hull_value(h, 0.5))
    # mean height over [1, 4]: trapezoids 0.6 (1..2) + 1.6 (2..4) = 2.2, / 3
    assert aiq(h, 1.0, 4.0) == pytest.approx(2.2 / 3, abs=1e-4)


def test_a_perfect_router_is_the_oracle_and_beats_every_single_model():
    rng = np.random.default_rng(0)
    truth = (rng.random((400, 3)) < [0.3, 0.6, 0.8]).astype(float)
    cost = np.tile([1.0, 2.0, 10.0], (400, 1))
    perfect = evaluate_nmodel("perfect", ["a", "b", "c"], truth, cost, truth)
    assert perfect.aiq_router == pytest.approx(perfect.aiq_oracle)
    assert perfect.aiq_router > perfect.aiq_singles
    assert perfect.best_single == "c" and perfect.cost_to_match_best_single < 1.0
    blind = evaluate_nmodel("blind", ["a", "b", "c"], np.tile([0.3, 0.6, 0.8], (400, 1)), cost, truth)
    assert blind.aiq_router <= perfect.aiq_router


A, B, C = "small-maths", "small-chat", "big"
MATHS = [
    "Compute the integral of x^{} sin(x) from 0 to pi.",
    "Solve the equation x^{} - 4 = 0 for x.",
    "Find the derivative of x^{} cos(x).",
]
CHAT = [
    "Write a friendly greeting for customer number {}.",
    "Suggest a name for pet number {}.",
    "Say thank you to guest number {}.",
]


def _jsonl(path: Path, n: int) -> Path:
    """Maths prompts only the maths model (and the big one) get right; chat prompts the chat model."""
    with path.open("w") as fh:
        for i in range(n):
            maths = i % 2 == 0
            prompt = (MATHS if maths else CHAT)[i % 3].format(i)
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "[[5]]"}]
            rec = Record(
                prompt=prompt,
                messages=msgs,
                label=5,
                outcomes={A: float(maths), B: float(not maths), C: 1.0},
                costs={A: 1.0, B: 1.0, C: 20.0},
            )
            fh.write(json.dumps(rec.to_json()) + "\n")
    return path


def test_eval_all_models_on_a_knn_router(tmp_path, isolated_cache, tela_cli):
    train, test = _jsonl(tmp_path / "train.jsonl", 60), _jsonl(tmp_path / "test.jsonl", 30)
    r = tela_cli(
        "run",
        "--family",
        "embedding-knn",
        "--data",
        train,
        "--set",
        "family.k=5",
        "--set",
        f"family.weak={A}",
        "--set",
        f"family.strong={C}",
        "--output",
        tmp_path / "knn",
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "report"
    r = tela_cli("eval", "--router", tmp_path / "knn", "--all-models", "--data", test, "-o", out)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "nmodel.json").read_text())
    assert rep["models"] == [A, B, C] and rep["n_prompts"] == 30
    assert (out / "cost-quality.png").stat().st_size > 0
    # the router sends maths to the maths model and chat to the chat model: full quality at the
    # small models' cost, which no single model reaches (only the 20× model is always right)
    assert rep["quality_max"] == pytest.approx(1.0)
    assert rep["cost_to_match_best_single"] == pytest.approx(1.0 / 20.0)
    assert rep["aiq_router"] > rep["aiq_singles"]
    r = tela_cli("eval", "--router", tmp_path / "knn", "--all-models", "--data", test, "-o", out)
    assert r.exit_code == 2 and "--force" in r.output  # no silent overwrite


def test_all_models_needs_a_router_that_predicts_each_model(tmp_path, isolated_cache, tiny_router, tela_cli):
    test = _jsonl(tmp_path / "test.jsonl", 6)
    r = tela_cli("eval", "--router", "oracle", "--all-models", "--data", test, "-o", tmp_path / "o")
    assert r.exit_code == 2 and "router directory" in r.output
    r = tela_cli("eval", "--router", tiny_router, "--all-models", "--data", test, "-o", tmp_path / "o")
    assert r.exit_code == 2 and "predict_models" in r.output
    assert not (tmp_path / "o").exists()
