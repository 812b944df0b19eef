"""Least-covered shadow sampling (issue 28 item 4, issue 29 item 5): ``embedding-knn`` says how well
its training data covers a prompt (``Scores.coverage``), the serving batcher hands it to each
decision, and ``uncertainty`` shadow sampling prefers sparse neighbourhoods at the same share,
with the probability it records (``sampling.p``) the one it sampled with."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import numpy as np
import pytest

from tela_core import Record
from tela_core.components import Scores
from tela_core.plugins.discovery import get_registry
from tela_core.routing.router import Decision, Router
from tela_core.serve.batcher import Batcher
from tela_core.serve.shadow import ShadowSampler

MATHS = [
    "Compute the integral of x^2 sin(x) from 0 to pi.",
    "Solve the differential equation y'' + 4y = 0.",
    "Find the eigenvalues of the matrix [[2,1],[1,2]].",
    "What is the derivative of ln(x^2 + 1)?",
    "Prove that the square root of 2 is irrational.",
    "Compute the limit of sin(x)/x as x goes to 0.",
    "How many ways can 5 people sit around a round table?",
    "Find the sum of the geometric series 1 + 1/2 + 1/4 + ...",
    "Solve the system x + y = 3, x - y = 1.",
    "What is the determinant of [[1,2],[3,4]]?",
    "Integrate e^x cos(x) with respect to x.",
    "Find all roots of the polynomial x^3 - 6x^2 + 11x - 6.",
]
CHAT = [
    "Write a friendly greeting for a new customer.",
    "Suggest a name for a pet goldfish.",
    "Say thank you to a dinner guest.",
    "Write a short birthday message for a colleague.",
    "Recommend a board game for a family evening.",
    "Draft a polite reply declining a meeting invitation.",
    "Give me three ideas for a rainy weekend.",
    "Write a welcome note for a new neighbour.",
    "Suggest a theme for a children's party.",
    "Write a two-line apology for a late reply.",
    "Recommend a relaxing hobby for a busy person.",
    "Compose a cheerful good-morning text for a friend.",
]
FAR = ["Quelle est la meilleure saison pour planter des tulipes aux Pays-Bas ?", "zq xv 88 kkk 1907 plorb"]


def _records() -> list[Record]:
    costs = {"small": 1e-4, "mid": 5e-4, "big": 2e-3}
    recs = [Record(prompt=p, outcomes={"small": 0.0, "mid": 0.5, "big": 1.0}, costs=costs) for p in MATHS]
    recs += [Record(prompt=p, outcomes={"small": 1.0, "mid": 0.5, "big": 1.0}, costs=costs) for p in CHAT]
    return recs


@pytest.mark.usefixtures("isolated_cache")
def test_knn_says_how_well_its_training_prompts_cover_a_prompt_and_serving_passes_it_on(tmp_path):
    scorer = get_registry().create("family", "embedding-knn", {"k": 5})
    scorer.fit(_records(), tmp_path / "knn", {})
    near = ["Compute the integral of x^3 cos(x) from 0 to pi.", "Write a thank-you card for a teacher."]
    s = scorer.score(near + FAR)
    assert s.coverage is not None and s.coverage.shape == (4,)
    assert ((s.coverage >= 0) & (s.coverage <= 1)).all()
    assert s.coverage[:2].min() > 0.3 and s.coverage[2:].max() < 0.1  # unlike anything it learned from
    assert Scores(w=np.zeros(1)).coverage is None  # families that cannot say are unchanged

    # tela serve's batcher puts it on each decision, on its thread and inline alike
    router = Router.load(tmp_path / "knn")
    for inline in (0.0, 1e9):
        b = Batcher(router, inline_below_ms=inline)
        try:
            got = asyncio.run(_decide_all(b, near + FAR))
        finally:
            b.close()
        assert [d.coverage for d in got] == pytest.approx(s.coverage.tolist(), abs=1e-6)
        assert got[0].quality is not None  # and each model's predicted quality, as before


async def _decide_all(b: Batcher, texts: list[str]) -> list[Decision]:
    return list(await asyncio.gather(*(b.decide(t) for t in texts)))


def test_uncertainty_sampling_prefers_sparse_neighbourhoods_at_the_same_share():
    rng = random.Random(3)
    # decisions far from their threshold (little uncertainty), coverage spread evenly
    decisions = [
        SimpleNamespace(
            w=0.5 + rng.choice((-1, 1)) * rng.uniform(0.3, 0.5),
            threshold=0.5,
            model="weak",
            quality=None,
            coverage=rng.random(),
        )
        for _ in range(20000)
    ]
    s = ShadowSampler("uncertainty", rng=random.Random(4))
    ps = [s.sample("r", 0.1, d) for d in decisions]
    share = sum(p is not None for p in ps) / len(ps)
    assert abs(share - 0.1) < 0.015  # the share asked for, on average
    taken = [d for d, p in zip(decisions, ps) if p is not None]
    sparse = sum(d.coverage < 0.1 for d in taken) / len(taken)
    assert sparse > 3 * 0.1  # uniform sampling gives the least covered tenth 10% of its picks
    # the recorded p is the probability each request was sampled with: summed over the sparse tenth
    # it predicts how many of them were taken
    again = ShadowSampler("uncertainty")  # the same running mean, so the same probabilities
    expected = sum(p for d in decisions if (p := again.probability("r", 0.1, d)) and d.coverage < 0.1)
    count = sum(d.coverage < 0.1 for d in taken)
    assert abs(count - expected) < 4 * expected**0.5
    assert all(p is None or 0 < p <= 1 for p in ps)


def test_without_a_coverage_the_sampler_weighs_uncertainty_alone():
    d = SimpleNamespace(w=0.45, threshold=0.5, model="weak", quality=None)
    assert ShadowSampler.priority(d) == ShadowSampler.uncertainty(d)
    assert ShadowSampler.sparseness(d) is None
    covered = SimpleNamespace(w=0.45, threshold=0.5, model="weak", quality=None, coverage=0.9)
    assert ShadowSampler.priority(covered) == ShadowSampler.uncertainty(covered)  # well covered: as before
    sparse = SimpleNamespace(w=0.95, threshold=0.5, model="weak", quality=None, coverage=0.0)
    assert ShadowSampler.priority(sparse) == 1.0  # as close as a tie
