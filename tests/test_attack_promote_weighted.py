"""``tela promote`` weighing shadow-sampled labels by 1/p, attacked: sampling probabilities that
leave a handful of prompts carrying the decision, a p so small that 1/p overflows, a mix of
records with and without p, and a prompt sampled twice with different p.

Weighted by 1/p, a labelled set stands for the traffic only when no record carries most of the
weight: a record with p = 1e-6 among 199 with p = 1 is worth one prompt, and its bootstrap
interval is one prompt's, whatever the record count says. Such a set is refused as bad input
(exit 2, one line naming the data file and the heaviest record), and every weighted comparison
says what its prompts are worth (Kish's effective sample size, ``effective_n``).

The CLI tests train two embedding-knn routers (default embedder) on half of the bundled MMLU
sample with made-up labels, as tests/test_promote.py does; the other half is the traffic.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_promote import _FixedNRouter  # a router among three models whose predicted qualities are given

from tela_core.infra.errors import TelaError
from tela_core.testkit.helpers import one_error_line, run_cli

np = pytest.importorskip("numpy")

SAMPLE = Path(__file__).resolve().parents[1] / "tela_core" / "data" / "mmlu_sample.jsonl"
WEAK, STRONG = "small", "big"
COSTS = {WEAK: 0.001, STRONG: 0.01}


class _ByPrompt:
    """A two-model router whose ``w`` for each prompt is given."""

    models = [WEAK, STRONG]

    def __init__(self, w: dict[str, float]) -> None:
        self.w = w

    def scores(self, prompts: list[str]) -> Any:
        from tela_core.components import Scores

        return Scores(w=np.array([self.w[p] for p in prompts], dtype=float))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(STRONG if x >= 0.5 else WEAK, float(x), 0.5) for x in scores.w]


def _fixed(n: int = 200) -> tuple[list[str], Any, _ByPrompt, _ByPrompt]:
    rng = np.random.default_rng(3)
    prompts = [f"q{i}" for i in range(n)]
    weak = (rng.random(n) < 0.5).astype(float)
    cand = _ByPrompt(dict(zip(prompts, rng.random(n).tolist())))
    cur = _ByPrompt(dict(zip(prompts, rng.random(n).tolist())))
    return prompts, weak, cand, cur


def test_a_record_that_carries_the_weight_is_refused_not_decided_on() -> None:
    from tela_core.data.records import seed_record
    from tela_core.eval.promotion import MIN_EFFECTIVE_PROMPTS, compare

    prompts, weak, cand, cur = _fixed()

    def records(ps: list[float]) -> list[Any]:
        return [
            seed_record(p, None, outcomes={WEAK: float(weak[i]), STRONG: 1.0}, costs=COSTS, sampling_p=ps[i], id=p)
            for i, p in enumerate(prompts)
        ]

    # one record sampled with p = 1e-6 among 199 with p = 1: weighted, it is the whole evaluation
    # (before: "better"/"worse beyond the interval", decided on one prompt and saying nothing of it)
    ps = [1.0] * len(prompts)
    ps[5] = 1e-6
    with pytest.raises(TelaError, match=r"these 200 records are worth 1\.0 equally weighted prompts .*'q5' .* 100%"):
        compare(cand, cur, records(ps), WEAK, STRONG, resamples=100)  # type: ignore[arg-type]
    # three records with a p so small that 1/p overflows a float sum: the same refusal, no warning
    ps = [1e-308 if i < 3 else 1.0 for i in range(len(prompts))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TelaError, match=r"worth 3\.0 equally weighted prompts"):
            compare(cand, cur, records(ps), WEAK, STRONG, resamples=100)  # type: ignore[arg-type]
    # uneven but spread weights are decided on, saying what they are worth
    ps = [0.5 if i % 2 else 1.0 for i in range(len(prompts))]
    c = compare(cand, cur, records(ps), WEAK, STRONG, resamples=100)  # type: ignore[arg-type]
    assert c.weighting is not None and c.weighting["effective_n"] == 180.0 >= MIN_EFFECTIVE_PROMPTS
    assert "worth 180.0 equally weighted prompts" in c.why
    # a small set counted alike is decided on; mildly uneven weights do not refuse it (half its
    # records' worth is enough where there are fewer than 20), one record carrying it does
    few = records([0.5 if i % 2 else 1.0 for i in range(len(prompts))])[:8]
    c = compare(cand, cur, few, WEAK, STRONG, resamples=100)  # type: ignore[arg-type]
    assert c.weighting is not None and 4 <= c.weighting["effective_n"] < MIN_EFFECTIVE_PROMPTS
    few[0].sampling_p = 0.01
    with pytest.raises(
        TelaError, match=r"these 8 records are worth 1\.\d equally weighted prompts .*at least 4 needed"
    ):
        compare(cand, cur, few, WEAK, STRONG, resamples=100)  # type: ignore[arg-type]


# -- the CLI ---------------------------------------------------------------------------------------


def _hard(group: str) -> bool:
    return any(k in group for k in ("law", "math", "physics", "chemistry", "accounting"))


def _objs(rows: list[dict[str, Any]], flip: bool = False) -> list[dict[str, Any]]:
    from tela_core.data.labels import OutcomeOptions, label_for
    from tela_core.data.records import seed_record

    out = []
    for r in rows:
        o = {"weak-m": 0.0 if _hard(r["group"]) != flip else 1.0, "strong-m": 1.0}
        label = label_for(o["weak-m"], o["strong-m"], OutcomeOptions.model_validate({}))
        rec = seed_record(r["prompt"], label, outcomes=o, costs={"weak-m": 0.001, "strong-m": 0.01}, id=r["id"])
        out.append(rec.to_json())
    return out


def _jsonl(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A versions folder with a current version (``bad``), a better candidate (``good``) and the
    traffic (records neither trained on)."""
    root = tmp_path_factory.mktemp("weighted")
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    for name, flip in (("good", False), ("bad", True)):
        data = _jsonl(root / f"{name}.jsonl", _objs(rows[0::2], flip))
        res = run_cli("run", "--family", "embedding-knn", "--data", data, "--output", root / name, "--quiet")
        assert res.exit_code == 0, res.output
    assert run_cli("promote", "--router", root / "live", "--candidate", root / "bad").exit_code == 0
    return {"root": root, "traffic": _objs(rows[1::2])}


def _with_p(objs: list[dict[str, Any]], p: Any) -> list[dict[str, Any]]:
    return [{**o, "sampling_p": x} if x is not None else dict(o) for o, x in zip(objs, p)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "case, said",
    [
        ("dominant", r"worth 1\.0 equally weighted prompts .*sampling_p 1e-06"),
        ("subnormal", r"worth 1\.0 equally weighted prompts .*sampling_p 1e-320"),
        ("overflow", r"worth 3\.0 equally weighted prompts"),
        ("mixed", r"5 of the 200 evaluation records carry a shadow sampling probability"),
    ],
)
def test_weights_that_cannot_stand_for_the_traffic_are_one_line_naming_the_file(
    live: dict[str, Any], tmp_path: Path, case: str, said: str
) -> None:
    n = len(live["traffic"])
    p: list[Any] = {
        "dominant": [1e-6 if i == 3 else 1.0 for i in range(n)],
        "subnormal": [1e-320 if i == 3 else 1.0 for i in range(n)],
        "overflow": [1e-308 if i < 3 else 1.0 for i in range(n)],
        "mixed": [0.5 if i < 5 else None for i in range(n)],
    }[case]
    data = _jsonl(tmp_path / f"{case}.jsonl", _with_p(live["traffic"], p))
    folder = live["root"] / "live"
    before = _snapshot(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning is no answer
        res = run_cli("promote", "--router", folder, "--candidate", live["root"] / "good", "--data", data)
    line = one_error_line(res)
    assert line.startswith(f"Error: {data}: ") and re.search(said, line), line
    assert _snapshot(folder) == before  # nothing written: no version, no record, no step


def test_a_prompt_sampled_twice_weighs_the_same_whichever_line_comes_first(
    live: dict[str, Any], tmp_path: Path
) -> None:
    traffic = live["traffic"]
    twice = [*traffic, traffic[0]]
    got = []
    for first in (True, False):
        p = [1.0] * len(twice)
        p[0 if first else -1] = 0.2  # the same prompt, asked once with p = 0.2 and once with p = 1
        data = _jsonl(tmp_path / f"twice-{first}.jsonl", _with_p(twice, p))
        res = run_cli(
            "promote",
            "--router",
            live["root"] / "live",
            "--candidate",
            live["root"] / "good",
            "--data",
            data,
            "--dry-run",
            "--json",
            "--resamples",
            "100",
        )
        assert res.exit_code == 0, res.output

        def strict(x: str) -> Any:
            raise AssertionError(f"{x} in --json output")

        got.append(json.loads(res.stdout, parse_constant=strict))
    a, b = got
    assert a["numbers"]["weighting"] == b["numbers"]["weighting"]
    assert a["numbers"]["weighting"]["weighted"] and a["numbers"]["weighting"]["p_range"][0] == pytest.approx(1 / 3)
    assert a["numbers"]["apgr"] == b["numbers"]["apgr"] and a["data"]["duplicates_dropped"] == 1
    # a prompt once with a p and once without is a mix, whichever line comes first
    for where in (0, -1):
        p = [1.0] * len(twice)
        p[where] = None
        data = _jsonl(tmp_path / f"mix{where}.jsonl", _with_p(twice, p))
        res = run_cli(
            "promote", "--router", live["root"] / "live", "--candidate", live["root"] / "good", "--data", data
        )
        assert "200 of the 201 evaluation records carry" in one_error_line(res)


# -- a two-model current version against an N-model candidate ---------------------------------------


class _Constant:
    """A current version between two models that cannot tell prompts apart: ``w`` 0.5 for all."""

    models = ["small", "big"]

    def scores(self, prompts: list[str], quality: bool = False) -> Any:
        from tela_core.components import Scores

        return Scores(w=np.full(len(prompts), 0.5))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision("big", 0.5, 0.5) for _ in scores.w]


def test_a_two_model_current_whose_w_ties_is_not_ranked_by_the_records_order() -> None:
    """The current version's curve against an N-model candidate is its threshold sweep; where its
    ``w`` ties, the records' order decided which prompts it "sent" first: records sorted hard first
    made a router of constant ``w`` look like a perfect ranker (AIQ 0.87 instead of 0.74, outside
    its own bootstrap interval's reach). Each tied prompt now counts the share of the tie sent."""
    from tela_core.data.records import seed_record
    from tela_core.eval.nmodel import aiq, hull
    from tela_core.eval.promotion import compare

    costs = {"small": 0.001, "mid": 0.003, "big": 0.01}
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=(120, 3)).astype(float)
    truth[:, 2] = 1.0
    records = [
        seed_record(f"p{i}", None, outcomes=dict(zip(costs, map(float, t))), costs=costs) for i, t in enumerate(truth)
    ]
    hard_first = np.argsort(truth[:, 0], kind="stable")
    got = []
    for order in (hard_first, hard_first[::-1]):
        c = compare(
            _FixedNRouter(truth[order] * 0.6 + 0.2),
            _Constant(),
            [records[i] for i in order],
            "small",
            "big",
            resamples=100,
        )
        got.append(c.interval.b)
    # a router of constant w: the straight line from the weak model to the strong one, either order
    c = np.array([costs["small"], costs["big"]])
    line = hull([(c[0], truth[:, 0].mean()), (c[1], 1.0)])
    assert got[0] == pytest.approx(got[1], abs=1e-9) == pytest.approx(aiq(line, 0.001, 0.01), abs=1e-3)


def test_records_of_one_model_each_are_said_as_such(live: dict[str, Any], tmp_path: Path) -> None:
    """tela feedback's records carry the outcome of the one model that answered: every model is in
    the data, none in every record. Before, the error said the data had no outcome for either
    model ("the data has none"); now it says how many records lack one, and the first."""
    objs = []
    for i, o in enumerate(live["traffic"]):
        m = "weak-m" if i % 2 else "strong-m"
        objs.append({**o, "outcomes": {m: o["outcomes"][m]}, "costs": {m: o["costs"][m]}})
    data = _jsonl(tmp_path / "feedback.jsonl", objs)
    res = run_cli("promote", "--router", live["root"] / "live", "--candidate", live["root"] / "good", "--data", data)
    line = one_error_line(res)
    n = len(objs)
    assert line.startswith(f"Error: {data}: {n} of the {n} records have no outcome for weak-m or strong-m"), line
    assert f"(the first: record {objs[0]['id']!r})" in line
