"""N-model policies (cost-aware, budget, quality-floor): what each chooses, its request knob, and a
router among LLMRouter's 9 models from ``tela run`` through ``route``, ``eval`` and ``calibrate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tela_core import Router, Scores, TelaError, get_registry
from tela_core.testkit import needs_public_data, public_data

MODELS = ["small", "mid", "big"]  # cheap -> strong
COSTS = {"small": 1e-5, "mid": 5e-5, "big": 3e-4}  # $ per request
# predicted quality: the small model is good enough for prompt 0, prompt 1 needs mid, prompt 2 big
QUALITY = np.array([[0.90, 0.92, 0.95], [0.20, 0.70, 0.90], [0.10, 0.20, 0.90]])


def _router(tmp_path: Path, name: str, options: dict, models: list[str] = MODELS) -> Router:
    policy = get_registry().create("policy", name, options)
    spec = {"name": name, "options": policy.options.model_dump(mode="json"), "models": models}
    return Router(tmp_path, {"scorer": "test-family"}, None, policy, spec, models)  # type: ignore[arg-type]


def _scores(quality: np.ndarray = QUALITY) -> Scores:
    return Scores(w=np.full(len(quality), 0.5), quality=quality, models=tuple(MODELS))


def _chosen(router: Router, scores: Scores, knob: float | None = None) -> list[str]:
    return [d.model for d in router.decisions(scores, knob)]


def test_cost_aware_takes_the_cheaper_model_when_its_quality_is_enough(tmp_path):
    r = _router(tmp_path, "cost-aware", {"costs": COSTS, "lam": 0.2})
    assert _chosen(r, _scores()) == ["small", "mid", "big"]
    assert _chosen(r, _scores(), knob=0.0) == ["big", "big", "big"]  # λ 0: the best predicted quality
    assert _chosen(r, _scores(), knob=100.0) == ["small"] * 3  # cost is all that counts
    tie = np.array([[0.5, 0.5, 0.5]])
    assert _chosen(r, _scores(tie), knob=0.0) == ["small"]  # a tie goes to the cheaper model
    d = r.decisions(_scores(), 0.2)[1]
    assert d.quality == {"small": 0.2, "mid": 0.7, "big": 0.9} and d.knob == {"lam": 0.2} and d.threshold is None


def test_quality_floor_is_the_cheapest_model_that_reaches_it(tmp_path):
    r = _router(tmp_path, "quality-floor", {"costs": COSTS, "q": 0.85})
    assert _chosen(r, _scores()) == ["small", "big", "big"]
    assert _chosen(r, _scores(), knob=0.6) == ["small", "mid", "big"]
    assert _chosen(r, _scores(), knob=0.99) == ["big", "big", "big"]  # none reaches it: the best predicted
    # without costs it reads the models' order, cheap -> strong
    assert _chosen(_router(tmp_path, "quality-floor", {"q": 0.6}), _scores()) == ["small", "mid", "big"]


def test_budget_is_met_on_its_calibration_prompts_and_per_request(tmp_path):
    rng = np.random.default_rng(0)
    quality = rng.random((400, 3)) * [0.6, 0.8, 1.0]
    cost = np.array([COSTS[m] for m in MODELS])
    base = get_registry().create("policy", "budget", {"costs": COSTS, "budget": 0.1})
    with pytest.raises(TelaError, match="tela calibrate"):
        base.choose(_scores(quality), MODELS)  # not calibrated yet: says how
    pol = base.calibrate(quality, MODELS, data="test prompts")
    idx = pol.choose_index(quality, cost)
    spent = 1000 * cost[idx].mean()
    assert spent <= 0.1 and spent == pytest.approx(pol.options.achieved_cost)
    assert spent > 0.09  # the budget is used, not left on the table
    assert 0 < (idx == 2).mean() < 1  # a mix of models, not one
    spec = {"name": "budget", "options": pol.options.model_dump(mode="json"), "models": MODELS}
    r = Router(tmp_path, {"scorer": "test-family"}, None, pol, spec, MODELS)  # type: ignore[arg-type]
    for budget in (0.03, 0.2):  # a request's own budget, from the λ curve of the calibration prompts
        picks = [MODELS.index(d.model) for d in r.decisions(_scores(quality), budget)]
        assert 1000 * cost[picks].mean() <= budget
    assert 1000 * cost[[MODELS.index(m) for m in _chosen(r, _scores(quality), 0.03)]].mean() > 0.02
    # another budget in the options (tela eval --set policy.budget=...) reads its λ off the curve too
    other = get_registry().create("policy", "budget", {**pol.options.model_dump(), "budget": 0.03})
    assert 1000 * cost[other.choose_index(quality, cost)].mean() <= 0.03


@pytest.mark.parametrize(
    "name, options, value, said",
    [
        ("cost-aware", {"costs": COSTS}, -1.0, "lam .* must be a number >= 0"),
        ("budget", {"costs": COSTS, "lam": 0.1, "curve": [[0.1, 0.1]]}, 0.0, "budget .* must be a number > 0"),
        ("quality-floor", {"costs": COSTS}, 1.5, r"q .* must be in \[0, 1\]"),
    ],
)
def test_a_bad_request_knob_is_one_clear_error(tmp_path, name, options, value, said):
    with pytest.raises(TelaError, match=said):
        _router(tmp_path, name, options).decisions(_scores(), value)


def test_a_budget_with_a_hand_set_lam_refuses_another_budget_rather_than_ignore_it(tmp_path):
    """Without a λ→cost curve a request's own budget cannot be met: it used to route at the hand-set
    λ, spending whatever that spends, as if the budget had been honoured."""
    r = _router(tmp_path, "budget", {"costs": COSTS, "budget": 0.1, "lam": 0.2})
    assert _chosen(r, _scores()) == ["small", "mid", "big"]  # its own budget: the hand-set λ (0.2)
    assert _chosen(r, _scores(), 0.1) == ["small", "mid", "big"]
    with pytest.raises(TelaError, match=r"lam set by hand and no calibration curve.*budget of 0.03") as e:
        r.decisions(_scores(), 0.03)
    assert "tela calibrate" in str(e.value) and "\n" not in str(e.value)


def test_n_model_policies_say_what_they_lack(tmp_path):
    r = _router(tmp_path, "cost-aware", {"costs": COSTS})
    with pytest.raises(TelaError) as e:
        r.decisions(Scores(w=np.array([0.5])))  # a family that predicts no per-model quality
    assert "predicts none" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TelaError, match="cost per request.*none for big"):
        _router(tmp_path, "cost-aware", {"costs": {"small": 1.0, "mid": 2.0}}).decisions(_scores())


def test_two_model_policies_route_as_before(tmp_path):
    r = _router(tmp_path, "threshold", {"threshold": 0.5}, models=["weak", "strong"])
    scores = Scores(w=np.array([0.2, 0.8]))
    assert [(d.model, d.threshold, d.knob, d.quality) for d in r.decisions(scores)] == [
        ("weak", 0.5, None, None),
        ("strong", 0.5, None, None),
    ]
    assert _chosen(r, scores, 0.1) == ["strong", "strong"]
    with pytest.raises(TelaError, match=r"threshold must be in \[0, 1\]"):
        r.decisions(scores, 2.0)
    # an N-model family under a two-model policy: the same choice, with each model's quality beside it
    q = Scores(w=np.array([0.2, 0.8]), quality=np.array([[0.9, 0.1], [0.3, 0.4]]), models=("weak", "strong"))
    assert _chosen(r, q) == ["weak", "strong"] and r.decisions(q)[0].quality == {"weak": 0.9, "strong": 0.1}


def test_the_operating_point_rules_of_tela_run_for_n_models():
    from tela_core.routing.operating_point import choose_nmodel_point, parse_rule

    rng = np.random.default_rng(1)
    truth = (rng.random((300, 3)) < [0.5, 0.7, 0.8]).astype(float)
    pred = np.clip(0.2 + 0.6 * truth + rng.normal(0, 0.1, truth.shape), 0, 1)  # informative predictions
    big = 1000 * COSTS["big"]  # the best single model's cost per 1,000
    name, opts, point = choose_nmodel_point(pred, MODELS, truth, COSTS)  # the default: knee
    assert name == "budget" and point["best_single"]["model"] == "big"
    assert point["quality"] >= point["best_single"]["quality"] and point["cost_per_1000"] < 0.5 * big
    assert opts["budget"] == pytest.approx(point["cost_per_1000"]) and opts["costs"] == COSTS
    assert choose_nmodel_point(pred, MODELS, truth, COSTS, "budget=best")[1]["budget"] == pytest.approx(big)
    name, opts, point = choose_nmodel_point(pred, MODELS, truth, COSTS, "budget=0.1")
    assert opts["budget"] == 0.1 and point["cost_per_1000"] <= 0.1
    assert choose_nmodel_point(pred, MODELS, truth, COSTS, "lam=0.5")[:2] == (
        "cost-aware",
        {"costs": COSTS, "lam": 0.5},
    )
    assert choose_nmodel_point(pred, MODELS, truth, COSTS, "q=0.6")[:2] == ("quality-floor", {"costs": COSTS, "q": 0.6})
    for bad in ("budget=0", "lam=-1", "q=2"):
        with pytest.raises(TelaError, match="operating point"):
            parse_rule(bad)


NIM9 = public_data("llmrouter", "llmrouter-nim9")


@needs_public_data("llmrouter", "llmrouter-nim9")
def test_run_route_eval_calibrate_among_nine_models(tmp_path, isolated_cache, tela_cli):
    assert NIM9 is not None
    train, test = NIM9 / "dcrouter_preprocessed_train.json", NIM9 / "dcrouter_preprocessed_test.json"
    out = tmp_path / "knn"
    r = tela_cli("run", "--data", train, "--family", "embedding-knn", "--sample", "400", "-o", out)
    assert r.exit_code == 0, r.output
    spec = json.loads((out / "policy.json").read_text())
    costs, models, point = spec["options"]["costs"], spec["models"], spec["operating_point"]
    assert spec["name"] == "budget" and len(models) == 9
    assert [costs[m] for m in models] == sorted(costs.values())  # cheap -> strong
    best = point["best_single"]  # the default point: the least cost at which it matches the best single model
    assert point["rule"] == "knee" and "matches the best single model" in point["note"], point
    assert point["quality"] >= best["quality"] and point["cost_per_1000"] < 0.8 * best["cost_per_1000"]
    assert spec["options"]["budget"] == pytest.approx(point["cost_per_1000"]) and "policy:  budget" in r.output

    rows = [
        json.loads(x)
        for x in tela_cli("route", "--router", out, "--threshold", "0.05", "Hi!", "--json").output.splitlines()
    ]
    assert rows[0]["knob"] == {"budget": 0.05} and set(rows[0]["quality"]) == set(models)
    assert rows[0]["model"] in models[:6]  # $0.05 per 1,000 buys no 50B model (0.3 per 1,000)

    r = tela_cli("eval", "--router", out, "--data", test, "-o", tmp_path / "ev")  # N-model report by itself
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "ev" / "nmodel.json").read_text())
    pol = rep["extra"]["policy"]
    assert pol["name"] == "budget" and rep["n_prompts"] == 500 and pol["best_single"] == rep["best_single"]
    assert 0.3 < pol["quality"] < 0.75 and sum(pol["share"].values()) == pytest.approx(1.0)
    assert 0.3 < pol["arena_score"] < 1.0
    assert "The router's policy budget" in (tmp_path / "ev" / "nmodel.md").read_text()

    r = tela_cli("calibrate", "--router", out, "--data", test, "--budget", "0.1")
    assert r.exit_code == 0 and "λ" in r.output, r.output
    o = json.loads((out / "policy.json").read_text())["options"]
    assert o["budget"] == 0.1 and 0.08 < o["achieved_cost"] <= 0.1 and o["costs"] == costs
    log = tmp_path / "decisions.jsonl"
    recs = json.loads(test.read_text())[:120]
    log.write_text("".join(json.dumps({"router": "knn", "w": 0.5, "prompt": x["question"]}) + "\n" for x in recs))
    r = tela_cli("calibrate", "--router", out, "--traffic", log, "--budget", "0.05")
    assert r.exit_code == 0 and "120 requests router 'knn' routed" in r.output, r.output
    assert json.loads((out / "policy.json").read_text())["options"]["achieved_cost"] <= 0.05
    err = tela_cli.error("calibrate", "--router", out, "--data", test, "--strong-share", "0.3", "--budget", "1")
    assert "--strong-share" in err and "--budget" in err
