"""Judges: the judge plugin kind, the builtin ``llm-judge``, ``reference`` and ``pairwise``, and the
agreement math behind ``tela judge --agreement``.

Real prompts and answers come from the RouterArena sample (two real models' answers with the
benchmark's own scores): the graders are checked against those scores, and the model-calling
judges build their requests from real items. No judge model runs here: where a judge model would
answer, a *stand-in judge* (a Python function, labelled as such) writes the reply, e.g. a judge
that always prefers the first answer shown, to check that asking in both orders cancels it.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tela_core import (
    Judge,
    JudgeItem,
    JudgeOutputError,
    JudgeRequest,
    TelaError,
    UnknownComponentError,
    Verdict,
    get_registry,
    hookimpl,
)
from tela_core.judging.agreement import agreement
from tela_core.plugins.discovery import reset
from tela_core.testkit.helpers import registered_plugin



@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset()
    yield
    reset()


def judge(name: str, **options: Any) -> Any:
    return get_registry().create("judge", name, options)


# -- the kind and the hook ---------------------------------------------------------------------


class ConstJudge(Judge):
    """Rates every weak answer 4 (a test judge)."""

    name = "test-const"
    needs_upstream = False

    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        return []

    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        return Verdict(label=4, outcomes={m: 0.75 for m in item.answers})


class _ConstPlugin:
    @hookimpl
    def tela_register_judges(self, register: Any) -> None:
        register(ConstJudge)


def test_hook_tela_register_judges(tela_cli):
    with registered_plugin(_ConstPlugin(), "const-judge") as reg:
        listing = {p["name"]: p for p in tela_cli.json("plugins", "list", "--json")}
        assert listing["const-judge"]["provides"] == {"judge": ["test-const"]}
        assert listing["const-judge"]["hooks"] == ["tela_register_judges"]
        j = reg.create("judge", "test-const")
        item = JudgeItem(id="1", messages=[{"role": "user", "content": "hi"}], answers={"a": "x"}, weak="a")
        assert j.requests(item) == [] and j.verdict(item, []).label == 4


def test_a_judge_registered_under_another_hook_is_refused():
    class Plugin:
        @hookimpl
        def tela_register_policies(self, register: Any) -> None:
            register(ConstJudge)

    with registered_plugin(Plugin(), "misfiled") as reg:
        assert "is a judge, registered as a policy" in (reg.plugins["misfiled"].error or "")


def test_a_judge_kind_in_plugins_show(tela_cli):
    with registered_plugin(_ConstPlugin(), "const-judge"):
        shown = tela_cli("plugins", "show", "judge", "test-const")
        assert shown.exit_code == 0 and "judge test-const (plugin const-judge)" in shown.output, shown.output
        assert "unknown judge 'nope'" in tela_cli.error("plugins", "show", "judge", "nope")


# -- agreement ------------------------------------------------------------------------------------


def test_kappa_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    checked = 0
    for _ in range(60):
        n = rng.randint(8, 80)
        a = [rng.randint(1, 5) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.randint(1, 5) for x in a]
        got = agreement(a, b)
        assert got.weights == "quadratic" and got.categories == [1, 2, 3, 4, 5]
        want = sklearn.cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
        assert got.kappa == pytest.approx(want, abs=1e-12)
        assert agreement(a, b, weights="none").kappa == pytest.approx(sklearn.cohen_kappa_score(a, b), abs=1e-12)
        assert agreement(a, b, weights="linear").kappa == pytest.approx(
            sklearn.cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4, 5]), abs=1e-12)
        x = [rng.randint(0, 1) for _ in range(n)]
        y = [v if rng.random() < 0.75 else 1 - v for v in x]
        binary = agreement(x, y)
        assert binary.weights == "none" and binary.kappa == pytest.approx(sklearn.cohen_kappa_score(x, y), abs=1e-12)
        cats = [rng.choice("ABC") for _ in range(n)]
        other = [c if rng.random() < 0.5 else rng.choice("ABC") for c in cats]
        assert agreement(cats, other).kappa == pytest.approx(sklearn.cohen_kappa_score(cats, other), abs=1e-12)
        checked += 1
    assert checked == 60


def test_agreement_counts_skipped_and_builds_the_confusion_matrix():
    a = [5, 4, None, 1, 3, 5, float("nan")]
    b = [5, 5, 2, 1, None, 4, 3]
    got = agreement(a, b)
    assert (got.n, got.skipped) == (4, 3)
    assert got.raw == pytest.approx(2 / 4)
    assert got.confusion[4] == [0, 0, 0, 1, 1]          # a said 5: b said 4 once, 5 once
    assert got.confusion[3] == [0, 0, 0, 0, 1] and got.confusion[0][0] == 1
    assert sum(map(sum, got.confusion)) == 4
    assert got.to_json()["skipped"] == 3


def test_quadratic_weights_count_a_near_miss_less():
    near = agreement([5, 4, 3, 2, 1, 5], [4, 4, 3, 2, 1, 5])
    far = agreement([5, 4, 3, 2, 1, 5], [1, 4, 3, 2, 1, 5])
    assert near.raw == far.raw and near.kappa > far.kappa


def test_agreement_edge_cases():
    assert agreement([None, 1], [2, None]).n == 0 and agreement([None], [None]).kappa is None
    same = agreement([1, 1, 1], [1, 1, 1], categories=[0, 1])
    assert same.raw == 1.0 and same.kappa is None and same.categories == [0, 1]  # chance agreement is perfect
    assert agreement([1.0, 0.0, True], [1, 0, 1]).kappa == pytest.approx(1.0)
    assert agreement([0, 0.5, 1], [0, 0.5, 1]).weights == "none"
    with pytest.raises(ValueError, match="one value per item"):
        agreement([1, 2], [1])
    with pytest.raises(ValueError, match="outside the categories"):
        agreement([2], [1], categories=[0, 1])
