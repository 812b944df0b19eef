"""Tests of tela-old-plugin's components, as tela 0.1's docs/plugins.md told a plugin author to write
them: each component directly, and through the registry."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest

from tela_core import InputError, Scores, TelaError
from tela_core.plugins import get_registry, reset
from tela_core.records import seed_record

from tela_old_plugin import LinesSource, QuestionOnlyFormatter, StrongIfAbove


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset()
    yield
    reset()


def test_lines_source_reads_one_unlabelled_question_per_line(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text("What is 2 + 2?\nName a prime.\n", encoding="utf-8")
    records = list(LinesSource().read(path))
    assert [r.prompt for r in records] == ["What is 2 + 2?", "Name a prime."]
    assert all(r.label is None for r in records)
    assert LinesSource().sniff(path) and not LinesSource().sniff(tmp_path / "x.jsonl")


def test_lines_source_names_the_empty_line(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text("What is 2 + 2?\n\nName a prime.\n", encoding="utf-8")
    with pytest.raises(InputError, match="questions.txt:2"):
        list(LinesSource().read(path))


def test_formats_a_seed_record_as_question_and_score():
    out = QuestionOnlyFormatter().format(seed_record("What is 2 + 2?", label=2).messages)
    assert (out.prompt, out.completion) == ("Q: What is 2 + 2?\nScore: ", "[[2]]")
    assert out.text == "Q: What is 2 + 2?\nScore: [[2]]"


def test_inference_prompt_is_the_training_prompt():
    fmt = QuestionOnlyFormatter()
    train = fmt.format(seed_record("Name a prime.", label=5).messages)
    serve = fmt.format(seed_record("Name a prime.", label=None).messages)
    assert serve.prompt == train.prompt and serve.completion == ""


def test_no_user_message_is_an_error():
    with pytest.raises(TelaError, match="needs a user message"):
        QuestionOnlyFormatter().format([{"role": "system", "content": "x"}])


def test_policy_sends_high_w_to_the_strong_model():
    policy = StrongIfAbove({"threshold": 0.4})
    chosen = policy.choose(Scores(w=np.array([0.1, 0.4, 0.9])), ["cheap", "strong"])
    assert chosen == ["cheap", "strong", "strong"]


def test_options_are_validated_by_the_registry():
    reg = get_registry()
    fmt = reg.create("formatter", "old-question-only", {"question_prefix": "Question: ", "answer_prefix": " => "})
    assert fmt.format([{"role": "user", "content": "hi"}]).prompt == "Question: hi => "
    with pytest.raises(TelaError, match="bad options for formatter 'old-question-only'"):
        reg.create("formatter", "old-question-only", {"prefix": "x"})
    with pytest.raises(TelaError, match="bad options for policy 'old-strong-if-above'"):
        reg.create("policy", "old-strong-if-above", {"threshold": 2})


def test_registered_through_the_tela_entry_point_group():
    eps = [ep for ep in md.entry_points(group="tela") if ep.dist and ep.dist.name == "tela-old-plugin"]
    assert [(ep.name, ep.value) for ep in eps] == [("old-plugin", "tela_old_plugin")]
    reg = get_registry()
    assert reg.plugins["old-plugin"].error is None
    for kind, name in [("source", "old-lines"), ("formatter", "old-question-only"), ("scorer", "old-keyword"),
                       ("policy", "old-strong-if-above")]:
        assert reg.entry(kind, name).plugin == "old-plugin"
