"""Tests of the example plugin, as a plugin author would write them for their own package."""

from __future__ import annotations

import importlib.metadata as md

import pytest
from tela_example_plugin import QuestionOnlyFormatter

from tela_core import TelaError
from tela_core.data.records import seed_record
from tela_core.plugins import get_registry, reset


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset()
    yield
    reset()


def test_formats_a_seed_record_as_question_and_score():
    record = seed_record("What is 2 + 2?", label=2)  # system prompt, "[Question]\n...", "[[2]]"
    out = QuestionOnlyFormatter().format(record.messages)
    assert out.prompt == "Q: What is 2 + 2?\nScore: "
    assert out.completion == "[[2]]"
    assert out.text == "Q: What is 2 + 2?\nScore: [[2]]"


def test_inference_prompt_is_the_training_prompt():
    fmt = QuestionOnlyFormatter()
    train = fmt.format(seed_record("Name a prime.", label=5).messages)
    serve = fmt.format(seed_record("Name a prime.", label=None).messages)
    assert serve.prompt == train.prompt and serve.completion == ""


def test_plain_user_message_and_multiline_question():
    fmt = QuestionOnlyFormatter()
    assert fmt.format([{"role": "user", "content": "hi"}]).prompt == "Q: hi\nScore: "
    q = "line one\n\nline two"
    assert fmt.format(seed_record(q, label=1).messages).prompt == f"Q: {q}\nScore: "


def test_no_user_message_is_an_error():
    with pytest.raises(TelaError, match="needs a user message"):
        QuestionOnlyFormatter().format([{"role": "system", "content": "x"}])


def test_options_are_validated_by_the_registry():
    reg = get_registry()
    fmt = reg.create("formatter", "question-only", {"question_prefix": "Question: ", "answer_prefix": " => "})
    assert fmt.format([{"role": "user", "content": "hi"}]).prompt == "Question: hi => "
    with pytest.raises(TelaError, match="bad options for formatter 'question-only'"):
        reg.create("formatter", "question-only", {"prefix": "x"})


def test_registered_through_the_tela_entry_point_group():
    eps = [ep for ep in md.entry_points(group="tela") if ep.dist and ep.dist.name == "tela-example-plugin"]
    assert [(ep.name, ep.value) for ep in eps] == [("example", "tela_example_plugin")]
    entry = get_registry().entry("formatter", "question-only")
    assert entry.cls is QuestionOnlyFormatter and entry.plugin == "example"
    assert get_registry().plugins["example"].error is None
