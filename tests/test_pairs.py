"""One rule for the weak/strong pair (tela_core.routing.targets.resolve_pair), used by run, eval, zoo and
every family: names given win, else the source's pair, else the lower mean outcome is weak."""

from __future__ import annotations

import pytest

from tela_core import Record, TelaError
from tela_core import eval as ev
from tela_core.routing import targets

A, B, C = "model-a", "model-b", "model-c"


def recs(a: list[float], b: list[float]) -> list[Record]:
    return [Record(prompt=f"p{i}", outcomes={A: x, B: y}) for i, (x, y) in enumerate(zip(a, b))]


def test_lower_mean_is_weak_whatever_the_column_order() -> None:
    assert targets.resolve_pair(recs([1, 0, 0], [1, 1, 0])) == (A, B)
    assert targets.resolve_pair(recs([1, 1, 0], [1, 0, 0])) == (B, A)


def test_a_tie_is_an_error_not_a_guess() -> None:
    with pytest.raises(TelaError, match="same mean outcome.*--weak-model and --strong-model"):
        targets.resolve_pair(recs([1, 0], [0, 1]))
    assert targets.resolve_pair(recs([1, 0], [0, 1]), weak=B) == (B, A)
    assert targets.resolve_pair(recs([1, 0], [0, 1]), strong=B) == (A, B)


def test_names_and_source_pair_win_and_are_checked() -> None:
    class Src:
        class options:
            weak_model, strong_model = B, A

    assert targets.resolve_pair(recs([1, 0], [0, 0]), source=Src()) == (B, A)
    with pytest.raises(TelaError, match="weak model 'nope' is not in the outcomes"):
        targets.resolve_pair(recs([1], [0]), weak="nope", strong=A)
    with pytest.raises(TelaError, match="both 'model-a'"):
        targets.resolve_pair(recs([1], [0]), weak=A, strong=A)
    three = [Record(prompt="p", outcomes={A: 1, B: 0, C: 1})]
    with pytest.raises(TelaError, match="among 3 models"):
        targets.resolve_pair(three)


def test_eval_and_the_families_use_the_same_rule() -> None:
    assert ev.resolve_pair is targets.resolve_pair and ev.model_names is targets.model_names


def test_one_model_scored_says_so_and_how_to_score_both() -> None:
    """Records that score one model only (llm-judge with rate=weak) say why no pair, and the two fixes."""
    one = [Record(prompt=f"p{i}", outcomes={A: float(i % 2)}) for i in range(4)]
    with pytest.raises(TelaError, match=r"scores one model only \(model-a\)") as info:
        targets.resolve_pair(one)
    assert "judge.rate=all" in str(info.value) and "family.target=label" in str(info.value)
    assert "\n" not in str(info.value)
