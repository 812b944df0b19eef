"""``tela promote`` on labels bought by uncertainty-driven shadow sampling: each prompt counts 1/p.

``tela serve`` with ``shadow_sampling: uncertainty`` asks close decisions more often than clear
ones, and every shadow log line records the probability ``p`` its request was sampled with. The
labelled prompts are then no sample of the traffic; weighting each by ``1/p`` makes them one again.
The routers here are fixed tables of ``w`` per prompt (the comparison's inputs, not a trained
family), so what is tested is the rule, on a constructed traffic where it changes the decision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tela_core.infra.errors import TelaError

np = pytest.importorskip("numpy")

WEAK, STRONG = "small", "big"
COSTS = {WEAK: 0.001, STRONG: 0.01}


class _ByPrompt:
    """A two-model router whose ``w`` for each prompt is given."""

    models = [WEAK, STRONG]

    def __init__(self, w: dict[str, float], threshold: float = 0.5) -> None:
        self.w, self.t = w, threshold

    def scores(self, prompts: list[str]) -> Any:
        from tela_core.components import Scores

        return Scores(w=np.array([self.w[p] for p in prompts], dtype=float))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(STRONG if x >= self.t else WEAK, float(x), self.t) for x in scores.w]


def _traffic() -> dict[str, Any]:
    """4,000 requests: 20% close ones (which uncertainty sampling asks with p = 0.8) and 80% clear
    ones (p = 0.05). The candidate ranks the close prompts perfectly and the clear ones at random;
    the current router the other way round. On the traffic, the current router is the better one."""
    rng = np.random.default_rng(29)
    n = 4000
    close = rng.random(n) < 0.2
    hard = rng.random(n) < 0.5  # the weak model fails it; the strong one answers everything
    prompts = [f"request {i}" for i in range(n)]
    # both routers put their scores in the same band for a group, so ranking within it is what differs
    knows = np.where(hard, 0.7, 0.3) + rng.normal(0, 0.05, n)
    guess = rng.random(n) * 0.4 + 0.3
    cand = np.where(close, knows, guess)
    cur = np.where(close, guess, knows)
    p = np.where(close, 0.8, 0.05)
    asked = rng.random(n) < p
    return {
        "prompts": prompts,
        "weak": np.where(hard, 0.0, 1.0),
        "cand": dict(zip(prompts, cand.tolist())),
        "cur": dict(zip(prompts, cur.tolist())),
        "w_cand": cand,
        "w_cur": cur,
        "p": p,
        "asked": asked,
    }


def _records(t: dict[str, Any], with_p: bool = True, p: float | None = None) -> list[Any]:
    from tela_core.data.records import seed_record

    return [
        seed_record(
            t["prompts"][i],
            None,
            outcomes={WEAK: float(t["weak"][i]), STRONG: 1.0},
            costs=COSTS,
            sampling_p=(p if p is not None else float(t["p"][i])) if with_p else None,
        )
        for i in np.flatnonzero(t["asked"])
    ]


def test_uncertainty_sampled_labels_are_weighted_back_to_the_traffic() -> None:
    from tela_core.eval.metrics import apgr
    from tela_core.eval.promotion import compare

    t = _traffic()
    ones = np.ones(len(t["prompts"]))
    # on the whole traffic (every request labelled), the current router is better by a wide margin
    truth = apgr(t["w_cand"], t["weak"], ones) - apgr(t["w_cur"], t["weak"], ones)
    assert truth < -0.1
    records = _records(t)
    close_share = np.mean([t["p"][int(r.prompt.split()[1])] == 0.8 for r in records])
    assert close_share > 0.7  # the labels are mostly close decisions, a fifth of the traffic
    cand, cur = _ByPrompt(t["cand"]), _ByPrompt(t["cur"])
    # counting every labelled prompt alike, the candidate looks better beyond the interval: promoted
    plain = compare(cand, cur, records, WEAK, STRONG, resamples=300, weighted=False)  # type: ignore[arg-type]
    assert plain.decision == "promote" and plain.interval.lo > 0, plain.why
    assert plain.weighting is not None and plain.weighting["weighted"] is False
    # each prompt weighted by 1/p: worse beyond the interval, as on the traffic; refused, saying so
    c = compare(cand, cur, records, WEAK, STRONG, resamples=300)  # type: ignore[arg-type]
    assert c.decision == "refuse" and c.interval.hi < 0 and c.failed is not None and c.failed["number"] == "apgr"
    assert c.interval.lo <= truth <= c.interval.hi, (truth, c.interval)
    assert c.weighting == {
        "records": len(records),
        "with_p": len(records),
        "weighted": True,
        "how": "each prompt weighted by 1/p, p the probability shadow sampling asked it with",
        "p_range": [0.05, 0.8],
        "effective_n": c.weighting["effective_n"],
    }
    # what the weighted prompts are worth: fewer than the records, more than the close ones' share
    assert len(records) * 0.3 < c.weighting["effective_n"] < len(records) * 0.7
    assert f"weighted by 1/p, its shadow sampling probability ({len(records)} of {len(records)}" in c.why
    # the mean outcome at the saved policy is the traffic's too (the current router serves the clear
    # requests, most of the traffic, well)
    served = float(np.where(t["w_cur"] >= 0.5, 1.0, t["weak"]).mean())
    assert c.current.quality is not None and plain.current.quality is not None
    assert abs(c.current.quality - served) < 0.02 < abs(plain.current.quality - served)


def test_equal_probabilities_give_exactly_the_unweighted_numbers_and_a_mix_is_refused() -> None:
    from tela_core.eval.promotion import compare

    t = _traffic()
    cand, cur = _ByPrompt(t["cand"]), _ByPrompt(t["cur"])
    none = compare(cand, cur, _records(t, with_p=False), WEAK, STRONG, resamples=200)  # type: ignore[arg-type]
    same = compare(cand, cur, _records(t, p=0.25), WEAK, STRONG, resamples=200)  # type: ignore[arg-type]
    assert same.interval == none.interval and same.quality == none.quality
    assert (same.candidate, same.current, same.decision, same.why) == (
        none.candidate,
        none.current,
        none.decision,
        none.why,
    )
    assert (
        same.weighting is not None and same.weighting["with_p"] == len(_records(t)) and not same.weighting["weighted"]
    )
    assert none.weighting is not None and none.weighting["with_p"] == 0
    # some records with a p and some without (a shadow log's labels beside others): refused, by name
    mixed = _records(t)
    mixed[0].sampling_p = None
    with pytest.raises(TelaError, match=rf"{len(mixed) - 1} of the {len(mixed)} evaluation records .* and 1 do not"):
        compare(cand, cur, mixed, WEAK, STRONG, resamples=200)  # type: ignore[arg-type]
    c = compare(cand, cur, mixed, WEAK, STRONG, resamples=200, weighted=False)  # type: ignore[arg-type]
    assert c.interval == none.interval


def test_the_sampling_probability_travels_from_the_shadow_log_into_the_records(tmp_path: Path) -> None:
    """shadow log line -> tela collect --from-log's row (its source) -> tela judge's record -> read back."""
    from tela_core.collect.inputs import rows_from_logs
    from tela_core.data.records import validate_seed_object
    from tela_core.judging.run import record_for

    line = {
        "time": "2026-12-06T10:00:00Z",
        "request_id": "r-1",
        "router": "knn",
        "w": 0.49,
        "threshold": 0.5,
        "chosen": WEAK,
        "models": [WEAK, STRONG],
        "upstreams": {WEAK: "s", STRONG: "b"},
        "sampling": {"mode": "uncertainty", "p": 0.375},
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "answers": {WEAK: {"text": "4", "error": None}, STRONG: {"text": "4", "error": None}},
    }
    log = tmp_path / "shadow.jsonl"
    log.write_text(json.dumps(line) + "\n" + json.dumps({**line, "request_id": "r-2", "sampling": None}) + "\n")
    rows, _ = rows_from_logs([log])
    assert rows[0].source["sampling_p"] == 0.375 and "sampling_p" not in rows[1].source
    rec = record_for(rows[0], {"outcomes": {WEAK: 1.0, STRONG: 1.0}}, WEAK, STRONG)
    assert rec is not None and rec["sampling_p"] == 0.375
    assert validate_seed_object(rec, "judged.jsonl", 1).sampling_p == 0.375
    plain = record_for(rows[1], {"outcomes": {WEAK: 1.0, STRONG: 1.0}}, WEAK, STRONG)
    assert plain is not None and "sampling_p" not in plain
    from tela_core.infra.errors import InputError

    with pytest.raises(InputError, match=r"judged.jsonl:1: .*sampling_p.* must be a probability in \(0, 1\]"):
        validate_seed_object({**rec, "sampling_p": 0}, "judged.jsonl", 1)
    # a log line whose p is present but no probability: named, never dropped (the record would then
    # count as sampled with certainty and be weighed wrong)
    for bad in (0, 1.5, "0.5", True):
        log.write_text(json.dumps(line) + "\n" + json.dumps({**line, "sampling": {"mode": "uniform", "p": bad}}) + "\n")
        with pytest.raises(InputError, match=r"shadow.jsonl:2: sampling.p must be a number in \(0, 1\]"):
            rows_from_logs([log])


class _Table:
    """A router among three models whose predicted quality per prompt is given."""

    models = ["small", "mid", "big"]
    path = Path("fixed")
    manifest: dict[str, Any] = {"scorer": "fixed"}

    def __init__(self, quality: dict[str, Any]) -> None:
        self.quality = quality

    def scores(self, prompts: list[str], quality: bool = False) -> Any:
        from tela_core.components import Scores

        q = np.array([self.quality[p] for p in prompts])
        return Scores(w=q[:, -1], quality=q, models=tuple(self.models))

    def decisions(self, scores: Any) -> list[Any]:
        from tela_core.routing.router import Decision

        return [Decision(self.models[int(np.argmax(q))], 0.0, None) for q in scores.quality]


def test_among_n_models_a_prompt_weighted_k_counts_as_k_copies_of_it() -> None:
    """AIQ, cost and quality at the saved policy weigh each prompt 1/p: with p = 1/k, exactly what
    the same prompts repeated k times give unweighted."""
    import dataclasses

    from tela_core.data.records import seed_record
    from tela_core.eval.promotion import compare

    rng = np.random.default_rng(8)
    costs = {"small": 0.001, "mid": 0.003, "big": 0.01}
    truth = rng.integers(0, 2, size=(60, 3)).astype(float)
    truth[:, 2] = 1.0
    k = rng.integers(1, 4, size=60)
    records = [
        seed_record(f"p{i}", None, outcomes=dict(zip(costs, map(float, t))), costs=costs, sampling_p=1.0 / k[i])
        for i, t in enumerate(truth)
    ]
    copies = [dataclasses.replace(r, sampling_p=None) for r, n in zip(records, k) for _ in range(n)]
    good = _Table({f"p{i}": q for i, q in enumerate(truth * 0.8 + 0.1)})
    noise = _Table({f"p{i}": q for i, q in enumerate(rng.random((60, 3)))})
    w = compare(good, noise, records, "small", "big", resamples=100)  # type: ignore[arg-type]
    u = compare(good, noise, copies, "small", "big", resamples=100)  # type: ignore[arg-type]
    assert w.weighting is not None and w.weighting["weighted"] and w.metric == "aiq"
    assert (w.interval.a, w.interval.b) == pytest.approx((u.interval.a, u.interval.b), abs=1e-12)
    for mine, theirs in ((w.candidate, u.candidate), (w.current, u.current)):
        assert dataclasses.astuple(mine) == pytest.approx(dataclasses.astuple(theirs), abs=1e-12)
