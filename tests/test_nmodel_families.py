"""Families that predict every model's quality (issue 28): N-model records with missing outcomes,
the models listed in the router folder, save/load round trips, and the RouterArena score."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tela_core import Record
from tela_core.eval.nmodel import arena_score, evaluate_nmodel, write_nmodel_report
from tela_core.plugins.discovery import get_registry

pytestmark = pytest.mark.usefixtures("isolated_cache")  # every test embeds into a cache of its own

A, B, C = "small-maths", "small-chat", "big"
MATHS = [
    "Compute the integral of x^2 sin(x) from 0 to pi.",
    "Solve the differential equation y'' + 4y = 0.",
    "Find the eigenvalues of the matrix [[2,1],[1,2]].",
]
CHAT = [
    "Write a friendly greeting for a new customer.",
    "Suggest a name for a pet goldfish.",
    "Say thank you to a dinner guest.",
]


def _records(n: int = 48) -> list[Record]:
    """Maths prompts only the maths model gets right, chat prompts only the chat model; the big
    model is always right but was asked on one prompt in three only (its outcome is missing on the
    others, as a judge that asked some models gives), and the chat model skipped every fourth."""
    recs = []
    for i in range(n):
        maths = i % 2 == 0
        outcomes = {A: float(maths), B: float(not maths)}
        if i % 3 == 0:
            outcomes[C] = 1.0
        if i % 4 == 1:
            del outcomes[B]
        prompt = f"{(MATHS if maths else CHAT)[(i // 2) % 3]} (variant {i})"
        recs.append(Record(prompt=prompt, outcomes=outcomes, costs={A: 1e-4, B: 1e-4, C: 2e-3}))
    return recs


FAMILIES = [
    ("embedding-knn", {"k": 6}),
    ("matrix-factorization", {"dim": 8, "epochs": 60, "lr": 0.1}),
    ("embedding-linear", {"C": 10.0}),
    ("ensemble", {"members": [{"family": "embedding-knn", "options": {"k": 6}}, "embedding-linear"], "folds": 2}),
]


@pytest.mark.parametrize(("family", "options"), FAMILIES, ids=[f for f, _ in FAMILIES])
def test_family_predicts_every_model_from_records_missing_some(family, options, tmp_path):
    reg = get_registry()
    scorer = reg.create("family", family, options)
    out = tmp_path / family
    scorer.fit(_records(), out, {})
    prompts = ["Compute the integral of x^3 cos(x).", "Write a friendly greeting for a guest."]
    s = scorer.score(prompts)
    assert s.models == (A, B, C) and s.quality.shape == (2, 3)
    q = dict(zip(s.models, s.quality.T))
    assert q[A][0] > q[B][0] and q[B][1] > q[A][1]  # each small model where it is right
    # the big model was right every time it was asked: missing outcomes are not counted as wrong
    assert q[C].min() > 0.8
    # the folder lists its models and routes among all of them with the records' costs
    assert json.loads((out / "models.json").read_text())["models"] == [A, B, C]
    policy = json.loads((out / "policy.json").read_text())
    assert policy["name"] == "cost-aware" and sorted(policy["models"]) == sorted([A, B, C])
    assert policy["options"]["costs"][C] == pytest.approx(2e-3)
    loaded = reg.create("family", family, {})
    loaded.load(out)
    again = loaded.score(prompts)
    assert again.models == s.models
    np.testing.assert_allclose(again.quality, s.quality, atol=1e-3)  # kNN keeps fp16 embeddings
    np.testing.assert_allclose(again.w, s.w, atol=1e-3)


def test_naming_a_pair_keeps_the_two_model_router(tmp_path):
    recs = [r for r in _records() if len(r.outcomes or {}) == 3]
    scorer = get_registry().create("family", "embedding-knn", {"k": 3, "weak": A, "strong": C})
    scorer.fit(recs, tmp_path / "k", {})
    policy = json.loads((tmp_path / "k" / "policy.json").read_text())
    assert policy["name"] == "threshold" and policy["models"] == [A, C]
    s = scorer.score(["Write a friendly greeting for a guest."])
    assert s.w[0] > 0.5  # w is still P(the strong model is needed): the maths model fails at chat
    assert s.models == (A, B, C)  # and every model's quality comes along


def test_knn_exact_counts_a_seen_prompts_own_outcomes(tmp_path):
    recs = _records()
    recs[0].outcomes[A] = 0.0  # the maths model failed this one maths prompt
    scorer = get_registry().create("family", "embedding-knn", {"k": 10, "exact": 1.0})
    scorer.fit(recs, tmp_path / "k", {})
    assert scorer.score([recs[0].prompt]).quality[0].tolist() == pytest.approx([0.0, 0.0, 1.0])  # its own
    plain = get_registry().create("family", "embedding-knn", {"k": 10})
    plain.fit(recs, tmp_path / "p", {})
    assert plain.score([recs[0].prompt]).quality[0][0] > 0.5  # without it: its neighbours, mostly right


def test_arena_score_is_routerarenas_formula(tmp_path):
    # by hand: C = (log2 200 − log2 1) / (log2 200 − log2 0.0044) = 7.64386 / 15.47214 = 0.49404;
    # S = 1.1 · 0.5 · C / (0.1 · 0.5 + C) = 0.271722 / 0.544040 = 0.49945
    assert arena_score(1.0, 0.5) == pytest.approx(0.49945, abs=1e-5)
    assert arena_score(0.0044, 0.8) == pytest.approx(1.1 * 0.8 / 1.08)  # the cheapest cost: C = 1
    assert arena_score(200.0, 0.9) == 0.0 and arena_score(0.0, 0.5) == pytest.approx(1.1 * 0.5 / 1.05)
    assert arena_score(0.1, 0.7) > arena_score(0.1, 0.6) and arena_score(0.1, 0.7) > arena_score(1.0, 0.7)
    # in a report: every single model, the router's best sweep point and the oracle's
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 3)) < [0.3, 0.6, 0.8]).astype(float)
    cost = np.tile([1e-4, 2e-4, 1e-2], (300, 1))
    e = evaluate_nmodel("perfect", ["a", "b", "c"], truth, cost, truth)
    for j in range(3):
        assert e.arena_singles[j] == pytest.approx(arena_score(1000 * cost[0, j], truth[:, j].mean()))
    assert e.arena_router == e.arena_oracle and e.arena_oracle["arena_score"] > max(e.arena_singles)
    assert math.isclose(
        e.arena_oracle["arena_score"], arena_score(e.arena_oracle["cost_per_1k"], e.arena_oracle["quality"])
    )
    e.extra["policy"] = {"name": "cost-aware", "quality": 0.6, "cost": 2e-4}  # the router's own point
    write_nmodel_report(e, tmp_path)
    md = (tmp_path / "nmodel.md").read_text()
    assert "| router, its policy cost-aware | " + f"{100 * arena_score(0.2, 0.6):.2f} |" in md
    assert f"| c | {truth[:, 2].mean():.4f} | 0.01 | {100 * e.arena_singles[2]:.2f} |" in md
    saved = json.loads((tmp_path / "nmodel.json").read_text())
    assert saved["arena_singles"] == pytest.approx(e.arena_singles) and saved["arena_oracle"]["lam"] >= 0


def test_a_router_fitted_without_costs_routes_its_pair_and_still_predicts_every_model(tmp_path):
    """Fitted outside `tela run` (a script, `tela zoo`) on N-model records without costs, a family
    saved a cost-aware policy with no costs, so every route of the router was an error. It now saves
    the pair its w reads, as `tela run` does, and still predicts every model's quality."""
    from tela_core import Router
    from tela_core.routing.artifact import read_manifest, read_policy

    records = [Record(prompt=r.prompt, outcomes=r.outcomes) for r in _records()]
    out = tmp_path / "knn"
    get_registry().create("family", "embedding-knn", {"k": 6}).fit(records, out, {})
    spec = read_policy(out)
    assert spec["name"] == "threshold" and spec["models"] == read_manifest(out)["w_pair"]
    router = Router.load(out)
    chosen = router.route([MATHS[0], CHAT[0]])
    assert set(chosen) <= set(spec["models"])
    scores = router.scores([MATHS[0]])
    assert scores.quality is not None and set(scores.models or ()) == {A, B, C}
