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
from collections.abc import Callable, Iterator
from typing import Any

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
from tela_core.data.labels import OutcomeOptions, label_for
from tela_core.judging.agreement import agreement
from tela_core.plugins.discovery import reset
from tela_core.testkit.helpers import needs_public_data, public_data, registered_plugin

ARENA_NAMES = ("routerarena", "routerarena-sub10")
WEAK, STRONG = "claude-3-haiku-20240307", "gemini-2.0-flash-001"  # the pair, lower benchmark score first


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset()
    yield
    reset()


def judge(name: str, **options: Any) -> Any:
    return get_registry().create("judge", name, options)


# -- real data ----------------------------------------------------------------------------------


def arena_rows() -> list[dict[str, Any]]:
    """RouterArena prompts answered by both models: question, both answers, ground truth, scores."""
    root = public_data(*ARENA_NAMES)
    assert root is not None
    per_model = {}
    for model in (WEAK, STRONG):
        with open(root / f"{model}.jsonl", encoding="utf-8") as f:
            per_model[model] = {r["global_index"]: r for r in map(json.loads, f)}
    rows = []
    for gid, w in per_model[WEAK].items():
        s = per_model[STRONG].get(gid)
        if s is None or not w.get("generated_answer") or not s.get("generated_answer"):
            continue
        ev = w["evaluation_result"]
        rows.append(
            {
                "id": gid,
                "question": w["question"],
                "metric": ev["metric"],
                "truth": str(ev["ground_truth"]).strip(),
                "answers": {WEAK: w["generated_answer"], STRONG: s["generated_answer"]},
                "scores": {WEAK: w["evaluation_result"]["score"], STRONG: s["evaluation_result"]["score"]},
            }
        )
    return rows


def item_of(row: dict[str, Any], reference: str | None = None) -> JudgeItem:
    return JudgeItem(
        id=row["id"],
        messages=[{"role": "user", "content": row["question"]}],
        answers=dict(row["answers"]),
        weak=WEAK,
        strong=STRONG,
        reference=reference,
    )


def letter_rows() -> list[dict[str, Any]]:
    """Multiple-choice rows whose ground truth is a letter (others give an option index)."""
    return [r for r in arena_rows() if r["metric"] == "mcq_accuracy" and re.fullmatch(r"[A-Ja-j]", r["truth"])]


# -- the kind, the hook, the CLI ------------------------------------------------------------------


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


def test_builtin_judges_are_listed_and_shown(tela_cli):
    listing = tela_cli.json("plugins", "list", "--kind", "judge", "--json")
    provided = sorted(name for p in listing for name in p["provides"].get("judge", []))
    assert provided == ["llm-judge", "pairwise", "reference"]
    shown = tela_cli("plugins", "show", "judge", "reference")
    assert shown.exit_code == 0, shown.output
    assert "grader" in shown.output and "choice" in shown.output
    schema = tela_cli.json("plugins", "show", "judge", "llm-judge", "--json")
    assert {"use_reference", "rate", "system_prompt", "max_tokens"} <= set(json.dumps(schema).split('"'))
    err = tela_cli.error("plugins", "show", "judge", "gpt-judge")
    assert "unknown judge 'gpt-judge'" in err and "llm-judge, pairwise, reference" in err


def test_unknown_judge_lists_the_registered_ones():
    with pytest.raises(UnknownComponentError, match="registered judges: llm-judge, pairwise, reference"):
        get_registry().create("judge", "nope")


def test_judge_item_prompt_is_the_last_user_turn():
    item = JudgeItem(
        id="1",
        answers={},
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {}}]},
        ],
    )
    assert item.prompt == "second"


def test_capabilities_of_the_builtins():
    assert (judge("llm-judge").needs_upstream, judge("llm-judge").needs_reference) == (True, False)
    assert (judge("pairwise").needs_upstream, judge("pairwise").needs_reference) == (True, False)
    ref = judge("reference")
    assert (ref.needs_upstream, ref.needs_reference) == (False, True)
    item = JudgeItem(id="1", messages=[{"role": "user", "content": "q"}], answers={"a": "B"}, reference="B")
    assert ref.requests(item) == []


# -- reference graders ----------------------------------------------------------------------------

CHOICE_REPLIES = [
    ("The answer is (B)", "B"),
    ("B.", "B"),
    ("**B**", "B"),
    ("(B)", "B"),
    ("B) Paris", "B"),
    ("\\boxed{B}", "B"),
    ("\\boxed{{B}}", "B"),
    ("Answer: **C**", "C"),
    ("**Answer:** C) Paris, because it is the capital.", "C"),
    ("Option A is wrong: Lyon is not the capital. The correct option is C.", "C"),
    ("A is tempting, but the answer is D.", "D"),
    ("The answer is a bit subtle; it is (D).", "D"),  # "a" is not the letter A
    ("Between (A) and (B), the first", None),  # two letters, none stated: not guessed
    ("Because of the heat, it melts.", None),  # "B" of "Because" is no answer
    ("I am not sure.", None),
]


@pytest.mark.parametrize("reply, letter", CHOICE_REPLIES)
def test_choice_grader_reads_the_letter(reply, letter):
    verdict = judge("reference", grader="choice").verdict(
        JudgeItem(id="q", messages=[{"role": "user", "content": "?"}], answers={"m": reply}, reference=letter or "A"),
        [],
    )
    assert verdict.detail["extracted"]["m"] == letter
    assert verdict.outcomes["m"] == (1.0 if letter else 0.0)


NUMBER_REPLIES = [
    ("She has 3 apples and buys 4 more, 7 in all.\n#### 7", "7", True),
    ("#### 1,234", "1234", True),
    ("The total is $1,234.50.", "1234.5", True),
    ("So the answer is 42.0", "#### 42", True),
    ("x = 5, y = 3, so the answer is 8 cm", "8", True),
    ("\\boxed{{982}}", "610", False),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("It is 50%.", "50", True),
    ("-3 degrees", "−3", True),
    ("The answer is 41, not 42.", "42", False),  # "answer is" beats the last number
    ("I cannot tell.", "3", False),
]


@pytest.mark.parametrize("reply, reference, right", NUMBER_REPLIES)
def test_number_grader(reply, reference, right):
    item = JudgeItem(id="q", messages=[{"role": "user", "content": "?"}], answers={"m": reply}, reference=reference)
    assert judge("reference", grader="number").verdict(item, []).outcomes == {"m": float(right)}


def test_exact_and_regex_graders():
    item = JudgeItem(
        id="q",
        messages=[{"role": "user", "content": "?"}],
        reference="The Eiffel Tower",
        answers={"a": "eiffel tower!", "b": "\\boxed{Eiffel Tower}\n\nIt is in Paris.", "c": "The Louvre"},
    )
    assert judge("reference", grader="exact").verdict(item, []).outcomes == {"a": 1.0, "b": 1.0, "c": 0.0}
    boxed = judge("reference", grader="regex", pattern=r"\\boxed\{(?:the )?(?i:eiffel tower)\}")
    assert boxed.verdict(item, []).outcomes == {"a": 0.0, "b": 1.0, "c": 0.0}
    only = judge("reference", grader="regex", pattern=r"Paris|Louvre")
    assert only.verdict(item, []).outcomes == {"a": 0.0, "b": 1.0, "c": 1.0}
    pi = JudgeItem(id="q", messages=[], reference="3.14", answers={"ok": "3.14", "dot": "3x14"})
    escaped = judge("reference", grader="regex", pattern=r"^{reference}$")  # the reference is escaped: "." is a dot
    assert escaped.verdict(pi, []).outcomes == {"ok": 1.0, "dot": 0.0}


def test_reference_label_follows_the_outcome_sources_mapping():
    ref = judge("reference", grader="number")
    cases = {("7", "7"): 5, ("8", "7"): 1, ("7", "8"): 5, ("8", "9"): 3}
    for (weak_says, strong_says), label in cases.items():
        item = JudgeItem(
            id="q",
            messages=[{"role": "user", "content": "?"}],
            reference="7",
            answers={"w": weak_says, "s": strong_says},
            weak="w",
            strong="s",
        )
        v = ref.verdict(item, [])
        assert v.label == label == label_for(v.outcomes["w"], v.outcomes["s"], OutcomeOptions())
    unnamed = JudgeItem(id="q", messages=[], reference="7", answers={"w": "7", "s": "7"})
    assert ref.verdict(unnamed, []).label is None


def test_reference_bad_setups_are_one_clear_error():
    with pytest.raises(TelaError, match="bad options for judge 'reference': .*needs a pattern"):
        judge("reference", grader="regex")
    with pytest.raises(TelaError, match="not a valid regular expression"):
        judge("reference", grader="regex", pattern="(")
    with pytest.raises(TelaError, match="grader: Input should be 'choice', 'number', 'exact' or 'regex'"):
        judge("reference", grader="fuzzy")
    item = JudgeItem(id="q7", messages=[], answers={"m": "B"}, reference="London")
    with pytest.raises(TelaError, match="item 'q7'.s reference 'London' names no choice letter"):
        judge("reference").verdict(item, [])
    with pytest.raises(TelaError, match="item 'q7' has no reference answer"):
        judge("reference").verdict(JudgeItem(id="q7", messages=[], answers={"m": "B"}), [])


@needs_public_data(*ARENA_NAMES)
def test_choice_grader_matches_the_benchmarks_own_scores():
    """On RouterArena's letter-answer questions, the grader's correctness is the benchmark's, for
    both models' real answers (which box the letter, explain it, write it in lower case...)."""
    rows = letter_rows()
    assert len(rows) >= 40
    ref = judge("reference", grader="choice", letters="ABCDEFGHIJ")
    ours, theirs = [], []
    for row in rows:
        v = ref.verdict(item_of(row, reference=row["truth"]), [])
        for model in (WEAK, STRONG):
            ours.append(v.outcomes[model])
            theirs.append(float(row["scores"][model] >= 0.5))
    a = agreement(ours, theirs, categories=[0, 1])
    assert a.raw == 1.0 and a.kappa == pytest.approx(1.0), a


@needs_public_data(*ARENA_NAMES)
def test_number_grader_on_real_math_answers():
    """Every math answer RouterArena scores right, the number grader scores right too (it reads
    ``\\boxed{{982}}``, ``#### 42``, thousands commas); where they differ, the benchmark was stricter
    about a unit or percent sign inside the box, which this grader drops on purpose."""
    from tela_plugins.judges.graders import parse_number

    rows = [r for r in arena_rows() if r["metric"] == "math_metric" and parse_number(r["truth"]) is not None]
    assert len(rows) >= 20
    ref = judge("reference", grader="number")
    disagree = []
    for row in rows:
        v = ref.verdict(item_of(row, reference=row["truth"]), [])
        for model in (WEAK, STRONG):
            theirs = row["scores"][model] >= 0.5
            if theirs:
                assert v.outcomes[model] == 1.0, (row["id"], model, row["answers"][model][-200:], row["truth"])
            elif v.outcomes[model] == 1.0:
                disagree.append(row["id"])
    assert len(disagree) <= 0.2 * 2 * len(rows)


# -- llm-judge ------------------------------------------------------------------------------------


def _mcq_item() -> JudgeItem:
    if public_data(*ARENA_NAMES) is not None:
        return item_of(letter_rows()[0])
    return JudgeItem(
        id="geo1",
        messages=[{"role": "user", "content": "Capital of France?\nA. Lyon\nB. Paris"}],
        answers={WEAK: "A. Lyon", STRONG: "B. Paris"},
        weak=WEAK,
        strong=STRONG,
    )


def test_llm_judge_request_shows_question_reference_and_weak_answer():
    item = _mcq_item()
    (req,) = judge("llm-judge", rate="weak").requests(item)
    system, user = req.messages
    assert system["role"] == "system" and "reference answer" in system["content"] and "[[" in system["content"]
    assert "1 to 5" in system["content"]
    body = user["content"]
    assert body.index("[Question]") < body.index(item.prompt) < body.index("[The Start of Reference Answer]")
    ref_block = body[body.index("[The Start of Reference Answer]") : body.index("[The End of Reference Answer]")]
    assert item.answers[STRONG] in ref_block  # the strong model's answer is the reference
    answer_block = body[body.index("[The Start of Assistant's Answer]") :]
    assert item.answers[WEAK] in answer_block and item.answers[STRONG] not in answer_block
    assert req.max_tokens == 512


def test_llm_judge_options_change_the_request():
    item = _mcq_item()
    (plain,) = judge("llm-judge", rate="weak", use_reference=False, max_tokens=64).requests(item)
    assert "Reference" not in plain.messages[1]["content"] and "reference" not in plain.messages[0]["content"]
    assert plain.max_tokens == 64
    (custom,) = judge("llm-judge", rate="weak", system_prompt="Rate it. Say [[k]].").requests(item)
    assert custom.messages[0]["content"] == "Rate it. Say [[k]]."
    with_data_ref = JudgeItem(**{**item.__dict__, "reference": "B"})
    (req,) = judge("llm-judge", rate="weak").requests(with_data_ref)
    assert "[The Start of Reference Answer]\nB\n" in req.messages[1]["content"]  # the data's reference wins
    both = judge("llm-judge", rate="all").requests(item)
    assert len(both) == 2  # the strong model is rated without its own answer as reference
    assert "Reference" not in both[1].messages[1]["content"]


def test_llm_judge_shows_earlier_turns():
    item = JudgeItem(
        id="t",
        weak="w",
        strong="s",
        answers={"w": "Paris.", "s": "Paris"},
        messages=[
            {"role": "user", "content": "Name a country."},
            {"role": "assistant", "content": "France."},
            {"role": "user", "content": "Its capital?"},
        ],
    )
    body = judge("llm-judge", rate="weak").requests(item)[0].messages[1]["content"]
    assert "### User:\nName a country." in body and "### Assistant:\nFrance." in body
    assert body.index("France.") < body.index("[Question]\nIts capital?")


@pytest.mark.parametrize(
    "reply, label",
    [
        ("The answer matches the reference.\n\nRating: [[4]]", 4),
        ("Rating: [[ 5 ]]", 5),
        ("Wrong letter. Rating: [[1]]. To repeat: [[1]]", 1),  # the same k twice is one rating
        ('As asked, in the format "[[rating]]": Rating: [[2]]', 2),  # an echoed placeholder is no rating
    ],
)
def test_llm_judge_reads_the_rating(reply, label):
    item = _mcq_item()
    v = judge("llm-judge", rate="weak").verdict(item, [reply])
    assert v.label == label
    assert v.outcomes == {WEAK: (label - 1) / 4}
    assert v.detail["ratings"] == {WEAK: label} and v.detail["replies"] == [reply]
    assert v.detail["reference_from"] == {WEAK: STRONG}


@pytest.mark.parametrize(
    "reply, why",
    [
        ("", "no rating"),
        ("Rating: 4", "no rating"),
        ("I would give it a 4/5.", "no rating"),
        ("[[3]] at first sight, but on reflection [[4]]", "several different ratings"),
        ("Rating: [[6]]", "not one of 1, 2, 3, 4, 5"),
        ("Rating: [[0]]", "not one of"),
        ("Rating: [[4.5]]", "not one of"),
        ("Rating: [[-1]]", "not one of"),
    ],
)
def test_llm_judge_refuses_unparsable_output(reply, why):
    item = _mcq_item()
    with pytest.raises(JudgeOutputError, match=re.escape(why)) as info:
        judge("llm-judge", rate="weak").verdict(item, [reply])
    assert info.value.reply == reply and info.value.index == 0
    assert "\n" not in str(info.value)  # one line, for the error record


def test_llm_judge_rate_all_scores_every_answer():
    item = _mcq_item()
    v = judge("llm-judge", rate="all").verdict(item, ["[[2]]", "[[5]]"])
    assert v.label == 2 and v.outcomes == {WEAK: 0.25, STRONG: 1.0}
    with pytest.raises(JudgeOutputError) as info:
        judge("llm-judge", rate="all").verdict(item, ["[[2]]", "no idea"])
    assert info.value.index == 1


def test_llm_judge_rates_every_answer_by_default():
    """Records from the default llm-judge carry both models' outcomes, which run, eval and zoo need."""
    item = _mcq_item()
    assert len(judge("llm-judge").requests(item)) == 2
    v = judge("llm-judge").verdict(item, ["[[2]]", "[[5]]"])
    assert v.label == 2 and v.outcomes == {WEAK: 0.25, STRONG: 1.0}


def test_llm_judge_needs_to_know_the_weak_model():
    item = JudgeItem(id="q9", messages=[{"role": "user", "content": "?"}], answers={"a": "x", "b": "y"})
    with pytest.raises(TelaError, match="item 'q9' .* no weak model named"):
        judge("llm-judge", rate="weak").requests(item)
    assert len(judge("llm-judge", rate="all").requests(item)) == 2
    lone = JudgeItem(id="q1", messages=[{"role": "user", "content": "?"}], answers={"a": "x"})
    assert judge("llm-judge", rate="weak").verdict(lone, ["[[3]]"]).label == 3  # one answer: it is the one rated
    with pytest.raises(TelaError, match="has no answer from 'w'"):
        judge("llm-judge", rate="weak").requests(
            JudgeItem(id="q2", messages=[], answers={"s": "x"}, weak="w", strong="s")
        )


# -- pairwise -------------------------------------------------------------------------------------

StandIn = Callable[[JudgeRequest], str]


def answers_shown(request: JudgeRequest) -> tuple[str, str]:
    body = request.messages[-1]["content"]
    a = re.search(r"\[The Start of Assistant A's Answer\]\n(.*)\n\[The End of Assistant A's Answer\]", body, re.S)
    b = re.search(r"\[The Start of Assistant B's Answer\]\n(.*)\n\[The End of Assistant B's Answer\]", body, re.S)
    assert a and b
    return a.group(1), b.group(1)


def parse_winner(reply: str) -> str:
    from tela_plugins.judges.pairwise import parse_winner as parse

    return parse(reply)


def first_position_judge(request: JudgeRequest) -> str:
    """Stand-in judge model with pure position bias: always prefers the answer shown first."""
    return "Assistant A's answer is more thorough. [[A]]"


def key_judge(key: str) -> StandIn:
    """Stand-in judge model that knows the answer key: prefers the answer whose letter is right,
    and when both or neither are, prefers the first one shown (position bias on the hard calls)."""
    from tela_plugins.judges.graders import extract_choice

    def reply(request: JudgeRequest) -> str:
        a, b = (extract_choice(x, "ABCDEFGHIJ") == key.upper() for x in answers_shown(request))
        return "Comparison... [[B]]" if b and not a else "Comparison... [[A]]"

    return reply


def run_judge(j: Judge, item: JudgeItem, stand_in: StandIn) -> Verdict:
    return j.verdict(item, [stand_in(r) for r in j.requests(item)])


def test_pairwise_asks_in_both_orders():
    item = _mcq_item()
    first, second = judge("pairwise").requests(item)
    assert answers_shown(first) == (item.answers[WEAK], item.answers[STRONG])
    assert answers_shown(second) == (item.answers[STRONG], item.answers[WEAK])
    assert "[[A]]" in first.messages[0]["content"] and "[[C]]" in first.messages[0]["content"]


def test_pairwise_order_swap_cancels_position_bias():
    item = _mcq_item()
    v = run_judge(judge("pairwise"), item, first_position_judge)
    assert v.outcomes == {WEAK: 0.5, STRONG: 0.5}  # one win each: a tie, not the first position's win
    assert v.detail["verdicts"] == ["A", "A"] and v.detail["consistent"] is False
    # asked once, in one order, the same judge would have handed the weak model (shown first) a win
    once = judge("pairwise").requests(item)[0]
    assert answers_shown(once)[0] == item.answers[WEAK] and parse_winner(first_position_judge(once)) == "A"


@pytest.mark.parametrize(
    "replies, outcome_weak, label",
    [
        (["[[A]]", "[[B]]"], 1.0, 5),  # weak wins in both orders
        (["[[B]]", "[[A]]"], 0.0, 1),  # strong wins in both orders
        (["[[C]]", "[[C]]"], 0.5, 5),  # a tie: the weak answer is as good, so no need for the strong one
        (["[[C]]", "[[A]]"], 0.25, 1),  # a tie, then strong wins
    ],
)
def test_pairwise_combines_both_orders(replies, outcome_weak, label):
    v = judge("pairwise").verdict(_mcq_item(), replies)
    assert v.outcomes == {WEAK: outcome_weak, STRONG: 1 - outcome_weak}
    assert v.label == label == label_for(outcome_weak, 1 - outcome_weak, OutcomeOptions())


@pytest.mark.parametrize("reply", ["A is better", "[[A]] or maybe [[B]]", "[[Tie]]", "[[D]]", "[[a]]"])
def test_pairwise_refuses_unparsable_output(reply):
    with pytest.raises(JudgeOutputError) as info:
        judge("pairwise").verdict(_mcq_item(), ["[[A]]", reply])
    assert info.value.index == 1


@needs_public_data(*ARENA_NAMES)
def test_pairwise_with_a_biased_stand_in_on_real_answers():
    """Over real answer pairs, a stand-in judge that knows the key but favours position A on every
    hard call: asked in both orders, the outcomes are the answers' correctness where exactly one is
    right, and a tie where the judge could not tell them apart; never a win given by position."""
    rows = letter_rows()
    pj = judge("pairwise")
    seen = set()
    for row in rows:
        item = item_of(row)
        v = run_judge(pj, item, key_judge(row["truth"]))
        right = {m: row["scores"][m] >= 0.5 for m in (WEAK, STRONG)}
        if right[WEAK] != right[STRONG]:
            assert v.outcomes == {m: float(right[m]) for m in (WEAK, STRONG)}, row["id"]
            assert v.label == (5 if right[WEAK] else 1)
        else:
            assert v.outcomes == {WEAK: 0.5, STRONG: 0.5}, row["id"]
        seen.add(right[WEAK] == right[STRONG])
    assert seen == {True, False}  # the sample has both kinds of pairs


def test_pairwise_needs_two_answers():
    item = JudgeItem(id="q3", messages=[{"role": "user", "content": "?"}], answers={"a": "1", "b": "2", "c": "3"})
    with pytest.raises(TelaError, match="compares two answers; item 'q3' has 3"):
        judge("pairwise").requests(item)
    two = JudgeItem(id="q4", messages=[{"role": "user", "content": "?"}], answers={"a": "1", "b": "2"})
    v = judge("pairwise").verdict(two, ["[[A]]", "[[B]]"])
    assert v.outcomes == {"a": 1.0, "b": 0.0} and v.label is None  # no pair named: no label


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
            sklearn.cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4, 5]), abs=1e-12
        )
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
    assert got.confusion[4] == [0, 0, 0, 1, 1]  # a said 5: b said 4 once, 5 once
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
