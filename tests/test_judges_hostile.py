"""The reference graders on replies real models write when things go wrong: degenerate runs of
blanks, unclosed boxes, scientific notation, ranges and dates, LaTeX mixed numbers, a reference
that is only an article. Each case here was a wrong grade or a hang before it was fixed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tela_core import JudgeItem, TelaError, get_registry
from tela_core.plugins.discovery import reset


@pytest.fixture(autouse=True)
def _fresh_registry() -> Any:
    reset()
    yield
    reset()


def grade(grader: str, reply: str, reference: str) -> Any:
    judge = get_registry().create("judge", "reference", {"grader": grader})
    item = JudgeItem(id="q", messages=[{"role": "user", "content": "?"}], answers={"m": reply}, reference=reference)
    return judge.verdict(item, [])


@pytest.mark.parametrize(
    "grader, reply, reference",
    [
        # a small model that hit its token limit after "Answer:" emits blanks: several \s* side by side
        # in the phrase patterns backtracked polynomially (250 blanks took 14 s, 500 three minutes)
        ("choice", "The answer is" + " " * 3000 + "\n" * 3000 + "x", "B"),
        ("choice", "Answer" + " \t\n" * 3000, "B"),
        ("number", "The answer is" + " " * 6000 + "x", "4"),
        # unclosed \boxed{ each scanned to the end of the reply: quadratic
        ("number", "\\boxed{" * 20000, "4"),
        ("choice", "\\boxed{" * 20000, "B"),
    ],
)
def test_degenerate_replies_are_graded_at_once(grader, reply, reference):
    start = time.perf_counter()
    verdict = grade(grader, reply, reference)
    assert time.perf_counter() - start < 2.0
    assert verdict.outcomes == {"m": 0.0}


@pytest.mark.parametrize(
    "reply, reference, right",
    [
        ("The answer is 1.5e3", "1500", True),  # was read as 1.5
        ("k = 6.02e23", "6.02e23", True),  # was read as 23
        ("The rate is 1e-5", "0.00001", True),
        ("He worked there from 2019-2020.", "2020", True),  # a range, not -2020
        ("Read pages 3-4.", "4", True),
        ("So x = -5", "-5", True),  # a real sign still counts
        ("#### -12", "-12", True),
        ("The recipe needs 2\\frac{1}{2} cups", "5/2", True),  # a mixed number, not 21/2
        ("\\boxed{3\\frac{1}{4}}", "3.25", True),
        ("\\boxed{-\\frac{3}{4}}", "-0.75", True),
    ],
)
def test_number_grader_reads_what_the_reply_says(reply, reference, right):
    assert grade("number", reply, reference).outcomes == {"m": float(right)}


def test_exact_grader_with_a_reference_that_is_an_article():
    """ "A" (the letter) normalised SQuAD-style is empty: every answer, even "A", was graded wrong."""
    assert grade("exact", "A", "A").outcomes == {"m": 1.0}
    assert grade("exact", "The answer is A.", "a").outcomes == {"m": 1.0}
    assert grade("exact", "B", "A").outcomes == {"m": 0.0}
    assert grade("exact", "The Eiffel Tower", "Eiffel Tower").outcomes == {"m": 1.0}  # articles still dropped
    with pytest.raises(TelaError, match="item 'q'.s reference '...' holds no words to compare"):
        grade("exact", "...", "...")


def regex_grade(pattern: str, reply: str, reference: str = "x") -> Any:
    judge = get_registry().create("judge", "reference", {"grader": "regex", "pattern": pattern})
    item = JudgeItem(id="q", messages=[{"role": "user", "content": "?"}], answers={"m": reply}, reference=reference)
    return judge.verdict(item, [])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "pattern, wrong, right",
    [
        # the user's pattern, the model's answer: Python's re backtracks exponentially (killed at 30 s)
        (r"(a+)+$", "a" * 40 + "b", "a" * 40),
        (r"(a|aa)+$", "a" * 60 + "b", "b" + "a" * 60),
        (r"^(\w+\s?)*$", "an answer that goes on " * 5 + "!", "an answer that goes on " * 5),
        (r"(x+x+)+y", "x" * 5000, "x" * 5000 + "y"),
    ],
)
def test_a_catastrophic_regex_is_graded_at_once(pattern, wrong, right):
    """The regex grader runs in linear time (RE2): a pattern that backtracks exponentially in
    Python's re gets its grade at once instead of hanging the judge."""
    assert regex_grade(pattern, wrong).outcomes == {"m": 0.0}
    assert regex_grade(pattern, right).outcomes == {"m": 1.0}


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"(a)\1", "backreferences and lookaround are not supported"),
        (r"(?=yes)y", "backreferences and lookaround are not supported"),
        (r"(?<!not )yes", "backreferences and lookaround are not supported"),
        (r"(?P<w>\w+) (?P=w)", "backreferences and lookaround are not supported"),
        (r"(", "is not a valid regular expression"),
    ],
)
def test_a_pattern_the_linear_engine_cannot_run_is_one_line_naming_it(pattern, why, capfd):
    with pytest.raises(TelaError) as info:
        get_registry().create("judge", "reference", {"grader": "regex", "pattern": pattern})
    message = str(info.value)
    assert repr(pattern) in message and why in message and "\n" not in message
    assert "re2.cc" not in capfd.readouterr().err  # RE2's own log line is kept off stderr
