"""The N-model path used carelessly or with hostile input: model names with odd knob values, serve
configs that do not add up, logs without answers, records without costs. Each test is a bug that was
found this way; none asks a remote API (no upstream is called)."""

from __future__ import annotations

import pytest

from tela_core.serve.chat import RequestError, Target, parse_model

ROUTERS = {"mf", "knn9"}
KNOBS = {"knn9": "lam"}


@pytest.mark.parametrize(
    "model, target",
    [
        ("router-knn9-1e-05", Target("knn9", 1e-05)),  # a small λ written as Python prints it
        ("router-knn9-2.5E-3", Target("knn9", 2.5e-3)),
        ("router-mf-1e-3", Target("mf", 1e-3)),  # a two-model threshold alike
        ("router-knn9-1000", Target("knn9", 1000.0)),
    ],
)
def test_a_value_in_scientific_notation_with_a_negative_exponent_routes(model, target):
    assert parse_model(model, ROUTERS, (), KNOBS) == target


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e309", "-0x10", "0x10", "1_000", "", "-1", " 3", "Infinity"])
def test_a_bad_knob_value_is_a_400_naming_the_knob_not_a_threshold(raw):
    with pytest.raises(RequestError) as ei:
        parse_model(f"router-knn9-{raw}", ROUTERS, (), KNOBS)
    e = ei.value
    assert (e.status, e.code) == (400, "invalid_threshold")
    assert "lam" in e.message and "[0, 1]" not in e.message  # a budget of 5 or a λ of 3 is fine


def test_the_served_names_say_which_knob_an_nmodel_router_takes():
    with pytest.raises(RequestError) as ei:
        parse_model("router-nope", ROUTERS, ["small"], KNOBS)
    assert "router-knn9-LAM" in ei.value.message and "router-mf-THRESHOLD" in ei.value.message


def test_a_serve_config_that_lists_an_upstream_twice_is_refused(tmp_path):
    """Two router models on one upstream: the second is never asked, its fallback retries the same
    endpoint and x-tela-quality (keyed by upstream) loses a model. One line naming the key."""
    from tela_core.serve.config import ConfigError, build_config

    (tmp_path / "r").mkdir()
    ups = "".join(f"  u{i}: {{base_url: 'http://127.0.0.1:9/v1', model: m{i}}}\n" for i in range(3))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"routers:\n  r: {{path: {tmp_path / 'r'}, upstreams: [u0, u1, u1]}}\nupstreams:\n{ups}")
    with pytest.raises(ConfigError, match=r"serve.yaml: routers.r.upstreams: u1 is listed more than once"):
        build_config(cfg)


def test_collect_only_logged_from_a_log_without_answers_is_an_error_not_an_empty_success(tmp_path):
    """A decision log (prompts, no answers) given where the shadow log belongs: exit 0 with nothing
    written left `tela judge` to fail on a folder that is not there. Now exit 2 saying which log."""
    import json

    from tela_core.testkit.helpers import run_cli

    log = tmp_path / "decisions.jsonl"
    line = {"id": "a-1", "router": "r", "chosen": "m0", "upstream": "u0", "status": 200, "prompt": "What is 2+2?"}
    log.write_text(json.dumps(line) + "\n")
    ups = "".join(f"  u{i}: {{base_url: 'http://127.0.0.1:9/v1', model: m{i}}}\n" for i in range(3))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"upstreams:\n{ups}")
    res = run_cli("collect", "--from-log", log, "--config", cfg, "--only-logged", "-o", tmp_path / "answers")
    assert res.exit_code == 2, res.output
    assert "decisions.jsonl: holds no answer" in res.output and "shadow log" in res.output
    assert not (tmp_path / "answers").exists()


def _nim9_records(path, n=200, costs=True):
    """``n`` records of LLMRouter's public 9-model data, three models kept, with or without costs."""
    import json

    from tela_core.plugins import get_registry
    from tela_core.testkit.helpers import public_data

    nim9 = public_data("llmrouter-nim9", "llmrouter")
    if nim9 is None:
        pytest.skip("needs LLMRouter's public data (tela data get llmrouter)")
    keep = ["gemma-2-9b-it", "llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct"]
    src = get_registry().create("source", "llmrouter-json", {})
    with path.open("w", encoding="utf-8") as f:
        for r in list(src.records(nim9 / "dcrouter_preprocessed_train.json"))[:n]:
            obj = r.to_json()
            obj["outcomes"] = {m: obj["outcomes"][m] for m in keep}
            obj["costs"] = {m: obj["costs"][m] for m in keep} if costs else None
            f.write(json.dumps({k: v for k, v in obj.items() if v is not None}) + "\n")
    return path


@pytest.mark.parametrize("costs, rule", [(False, None), (True, "share=0.3")])
def test_nmodel_records_a_run_cannot_weigh_give_a_router_on_its_pair_as_it_says(tmp_path, costs, rule):
    """Records of three models without costs (judged answers collected without prices), or a
    two-model rule (share=P): tela run said the router 'routes between its weak/strong pair' but
    saved cost-aware over the three models, without costs (every route an error) or at the
    default λ with the rule ignored. Now it routes the pair, at the rule's point."""
    from tela_core import Router
    from tela_core.routing.artifact import read_manifest, read_policy
    from tela_core.testkit.helpers import run_cli

    data = _nim9_records(tmp_path / "records.jsonl", costs=costs)
    out = tmp_path / "router"
    args = ["run", "--family", "embedding-knn", "--data", data, "--output", out, "--set", "family.k=20"]
    res = run_cli(*args, *(["--operating-point", rule] if rule else []))
    assert res.exit_code == 0, res.output
    pair = read_manifest(out)["w_pair"]
    assert f"routes between its weak/strong pair {pair[0]} < {pair[1]}" in res.output
    spec = read_policy(out)
    assert spec["models"] == pair and spec["name"] == "calibrated"
    if rule:
        assert spec["options"]["strong_share"] == 0.3
    assert set(Router.load(out).route(["What is 2+2?", "Prove Fermat's last theorem."])) <= set(pair)


def test_records_whose_models_all_cost_nothing_train_a_router_that_routes(tmp_path):
    """Every cost 0 (self-hosted models entered without prices): the knee's budget was $0 and
    tela run died on 'bad options for policy budget: budget: Input should be greater than 0'."""
    import json

    from tela_core import Router
    from tela_core.testkit.helpers import run_cli

    data = _nim9_records(tmp_path / "records.jsonl")
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    data.write_text("".join(json.dumps({**r, "costs": dict.fromkeys(r["costs"], 0.0)}) + "\n" for r in rows))
    out = tmp_path / "router"
    res = run_cli("run", "--family", "embedding-knn", "--data", data, "--output", out, "--set", "family.k=20")
    assert res.exit_code == 0, res.output
    router = Router.load(out)
    assert len(router.models) == 3 and router.policy.name == "budget"
    decisions = router.decide(["What is 2+2?", "Prove Fermat's last theorem."])
    for d in decisions:  # nothing to save: the best predicted quality
        assert d.quality is not None and d.quality[d.model] == max(d.quality.values())


@pytest.fixture(scope="module")
def knn3(tmp_path_factory):
    """An embedding-knn router over three nim9 models (with costs): its saved policy is budget."""
    from tela_core.testkit.helpers import run_cli

    tmp = tmp_path_factory.mktemp("knn3")
    data = _nim9_records(tmp / "records.jsonl")
    out = tmp / "router"
    res = run_cli("run", "--family", "embedding-knn", "--data", data, "--output", out, "--set", "family.k=20")
    assert res.exit_code == 0, res.output
    return out, data


def test_calibrate_a_budget_below_the_cheapest_model_says_it_is_not_met(knn3, tmp_path):
    """--budget below what the cheapest model costs was saved with 'spends $X' and no word that X is
    over the budget: every request then goes to the cheapest model, which the user should know."""
    import json
    import shutil

    from tela_core.testkit.helpers import run_cli

    router, data = knn3
    d = tmp_path / "router"
    shutil.copytree(router, d)
    cheap = json.loads(data.read_text().splitlines()[0])["costs"]["gemma-2-9b-it"]  # $ per request
    res = run_cli("calibrate", "--router", d, "--data", data, "--budget", f"{cheap * 1000 / 10:.6g}")  # a tenth
    assert res.exit_code == 0, res.output
    assert "is below what the cheapest choice costs" in res.output and "gemma-2-9b-it" in res.output
    res = run_cli("calibrate", "--router", d, "--data", data, "--budget", "1000")  # above the priciest: no warning
    assert res.exit_code == 0 and "below what" not in res.output


def test_the_n_upstreams_section_of_deployment_md_defines_the_upstreams_its_commands_name():
    """Its `tela judge --config serve.yaml --judge-model judge` stopped at 'no upstream named judge':
    the section's serve.yaml had none. Every upstream its commands and routers name is in it."""
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = doc[doc.index("## N upstreams") :]
    section = section[: section.index("\n## ", 3)]
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    named = re.findall(
        r"--(?:judge-model|model) ([\w.-]+)(?=\s)", re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    )
    assert named and set(named) <= set(config["upstreams"])
    for r in config["routers"].values():
        assert set(r["upstreams"]) <= set(config["upstreams"])


def test_judge_join_with_records_of_other_prompts_is_an_error_not_a_silent_no_op(tmp_path):
    """`tela judge --join RECORDS` on a new model's answers, RECORDS being another run's (other
    prompts): nothing matched, and the records were written with the new model's outcome alone,
    exit 0. Now one line naming the file."""
    import json

    from tela_core.collect.inputs import PromptRow
    from tela_core.infra.errors import InputError
    from tela_core.judging.plan import read_join

    rows = [PromptRow(id=f"p{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(3)]
    other = tmp_path / "records.jsonl"
    recs = [
        {
            "id": f"q{i}",
            "prompt": f"other {i}",
            "messages": [{"role": "user", "content": f"other {i}"}],
            "outcomes": {"a": 1.0},
        }
        for i in range(2)
    ]
    other.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(InputError, match=r"records.jsonl: --join: none of its 2 records is a prompt of these answers"):
        read_join(other, rows)
    same = tmp_path / "same.jsonl"  # one prompt in common: joined
    same.write_text(json.dumps({**recs[0], "id": "p1", "prompt": "question 1", "messages": rows[1].messages}) + "\n")
    assert set(read_join(same, rows)) == {"p1"}


def test_serve_refuses_at_start_an_nmodel_router_that_cannot_route(knn3, tmp_path):
    """A router whose policy lacks one model's cost (hand-edited, or an older tela run) passed
    `tela serve --check` and became ready, then answered every request 500 with a traceback in the
    log. It is refused when it loads: one line naming the config key and the folder."""
    import json
    import shutil

    pytest.importorskip("starlette")
    from tela_core.serve.config import ConfigError, build_config
    from tela_core.serve.served_routers import load_router

    d = tmp_path / "router"
    shutil.copytree(knn3[0], d)
    spec = json.loads((d / "policy.json").read_text())
    del spec["options"]["costs"][spec["models"][1]]
    (d / "policy.json").write_text(json.dumps(spec))
    ups = "".join(f"  {m}: {{base_url: 'http://127.0.0.1:9/v1'}}\n" for m in spec["models"])
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"routers:\n  nm: {{path: {d}}}\nupstreams:\n{ups}")
    with pytest.raises(
        ConfigError, match=rf"serve.yaml: routers.nm: .*router: cannot route: .*none for {spec['models'][1]}"
    ):
        load_router(build_config(cfg), "nm")


def test_the_serve_banner_counts_the_paid_shadow_calls_of_shadow_models(tmp_path):
    """shadow_models: 8 said 'also sent to the model not chosen': eight paid calls per shadowed
    request were announced as one."""
    from tela_core.cli.serve_cmd import _logging_lines
    from tela_core.serve.config import build_config

    (tmp_path / "r").mkdir()
    ups = "".join(f"  u{i}: {{base_url: 'http://127.0.0.1:9/v1', model: m{i}}}\n" for i in range(9))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"routers:\n  r: {{path: {tmp_path / 'r'}}}\nupstreams:\n{ups}"
        "shadow: 0.5\nshadow_models: 8\nshadow_log: shadow.jsonl\n"
    )
    banner = _logging_lines(build_config(cfg))[0]
    assert "up to 8 of the models not chosen" in banner and "the model not chosen" not in banner


def test_an_nmodel_knob_may_be_a_numpy_number_as_a_threshold_may(knn3):
    """Router.decide(prompts, threshold=np.int64(1)) or an np.float32 from an array of budgets:
    'must be a number' for an N-model router, while a two-model router takes them."""
    import numpy as np

    from tela_core import Router

    router = Router.load(knn3[0])
    for value in (np.int64(1), np.float32(0.05)):
        assert router.decide(["What is 2+2?"], threshold=value)[0].knob == {router.knob: float(value)}
    for bad in (True, "0.5", np.bool_(True)):
        with pytest.raises(Exception, match="must be a number"):
            router.decide(["What is 2+2?"], threshold=bad)


def test_calibrate_strong_share_refuses_a_router_among_n_models(knn3, tmp_path):
    """--strong-share on a router among three models replaced its N-model policy by a two-model one
    between its first and last model, which its w (read off another pair of models) does not
    describe: on nim9 'target 0.3' gave 0.65. Now exit 2 pointing at --budget; nothing saved."""
    import shutil

    from tela_core.testkit.helpers import run_cli

    router, data = knn3
    d = tmp_path / "router"
    shutil.copytree(router, d)
    before = (d / "policy.json").read_text()
    res = run_cli("calibrate", "--router", d, "--data", data, "--strong-share", "0.3")
    assert res.exit_code == 2 and "routes among 3 models" in res.output and "--budget" in res.output
    assert (d / "policy.json").read_text() == before


def test_route_shows_the_lambda_a_request_budget_is_routed_with(knn3):
    """`tela route --threshold B` on a budget router routed at the λ read off its curve for B but
    printed the saved λ (that of another budget) in its title."""
    from tela_core import Router
    from tela_core.testkit.helpers import run_cli

    router = Router.load(knn3[0])
    assert router.policy.name == "budget" and router.policy.options.lam > 0
    res = run_cli("route", "--router", knn3[0], "--threshold", "1000", "What is 2+2?")
    assert res.exit_code == 0, res.output
    assert "policy budget (budget 1000, lam 0)" in res.output  # any model is within $1,000 per 1,000


def test_eval_all_models_says_which_model_it_left_out(knn3, tmp_path):
    """One record without one model's cost took that model out of the whole N-model report (its
    header then says 2 models), with no word of which or why: the router's policy was judged among
    models it does not route among."""
    import json

    from tela_core.testkit.helpers import run_cli

    router, data = knn3
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()][:60]
    del rows[7]["costs"]["llama-3.1-8b-instruct"]
    part = tmp_path / "eval.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run_cli("eval", "--router", router, "--data", part, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "out" / "nmodel.md").read_text(encoding="utf-8")
    assert "2 models" in md and "Left out: llama-3.1-8b-instruct, whose outcome or cost some records lack" in md


def test_deployment_md_knob_examples_give_the_best_predicted_quality(knn3):
    """The model-name table said `router-knn9-0` gives the best predicted quality whatever it costs;
    with the policy tela run saves (budget) it is a 400 (a budget must be > 0). Each example, with
    the policy it names (default: the saved one), does what the row says."""
    import re
    from pathlib import Path

    from tela_core import Router

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deployment.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `router-NAME-VALUE`"))
    examples = re.findall(r"`router-knn9-([\d.]+)`(?: with `([\w-]+)`)?", row)
    assert examples
    prompts = ["What is 2+2?", "Prove that there are infinitely many primes."]
    for value, policy in examples:
        router = Router.load(knn3[0], policy=policy or None)
        for d in router.decide(prompts, threshold=float(value)):
            assert d.quality is not None and d.quality[d.model] == max(d.quality.values()), (value, policy)


def test_a_run_on_too_few_prompts_does_not_call_its_training_prompts_held_out(tmp_path):
    """Too few prompts for folds: the N-model point is chosen on the router's predictions of its own
    training prompts, and tela run said 'on 6 held-out prompts (...)'."""
    from tela_core.testkit.helpers import run_cli

    data = _nim9_records(tmp_path / "records.jsonl", n=6)
    res = run_cli("run", "--family", "embedding-knn", "--data", data, "--output", tmp_path / "router")
    assert res.exit_code == 0, res.output
    assert "its training prompts, not held out" in res.output and "held-out prompts (" not in res.output


def test_a_policy_that_lists_a_model_twice_is_refused_when_the_router_loads(knn3, tmp_path):
    """policy.json 'models': [a, a, c] (hand-edited) routed silently among a, a and c: b was never
    chosen and a served twice. One line naming the file."""
    import json
    import shutil

    from tela_core import Router, TelaError

    d = tmp_path / "router"
    shutil.copytree(knn3[0], d)
    spec = json.loads((d / "policy.json").read_text())
    spec["models"][1] = spec["models"][0]
    (d / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(TelaError, match=rf"policy.json: 'models' lists {spec['models'][0]} more than once"):
        Router.load(d)


def test_eval_policy_threshold_on_a_router_among_many_is_refused_not_ignored(knn3, tmp_path):
    """`tela eval --policy threshold` on a router saved with an N-model policy judged the saved
    policy and said nothing of the flag; a two-model policy cannot route among three models."""
    from tela_core.testkit.helpers import one_error_line, run_cli

    router, data = knn3
    res = run_cli("eval", "--router", router, "--data", data, "--policy", "threshold", "-o", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "--policy threshold routes between two models" in one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_collect_only_logged_keeps_the_models_the_log_answered_with_not_every_upstream(tmp_path):
    """--only-logged without --model listed every upstream of the config (the judge's too) as a model
    and counted its answers missing; the models are those the log's answers came from."""
    import json

    from tela_core.testkit.helpers import run_cli

    log = tmp_path / "shadow.jsonl"
    lines = [
        {
            "id": f"a-{i}",
            "router": "r",
            "chosen": "weak",
            "messages": [{"role": "user", "content": f"What is {i}+2?"}],
            "answers": {"weak": {"text": "4", "model": "m0"}, "strong": {"text": "four", "model": "m1"}},
            "upstreams": {"weak": "u0", "strong": "u1"},
        }
        for i in range(3)
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ups = "".join(f"  u{i}: {{base_url: 'http://127.0.0.1:9/v1', model: m{i}}}\n" for i in range(2))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"upstreams:\n{ups}  judge: {{base_url: 'http://127.0.0.1:9/v1', model: gpt-4o-mini}}\n")
    res = run_cli("collect", "--from-log", log, "--config", cfg, "--only-logged", "-o", tmp_path / "answers", "--json")
    assert res.exit_code == 0, res.output
    assert "3 prompts x 2 models (m0, m1)" in res.output and "gpt-4o-mini" not in res.output
    summary = json.loads((tmp_path / "answers" / "summary.json").read_text())
    assert set(summary["models"]) == {"u0", "u1"} and summary["missing"] == 0 and summary["answers"] == 6


def test_the_serve_banner_does_not_say_the_model_not_chosen_over_n_models(tmp_path):
    """With one shadow call per request a 9-model router's banner said 'sent to the model not
    chosen', as if there were one; it now says one model other than the chosen one."""
    from tela_core.cli.serve_cmd import _logging_lines
    from tela_core.serve.config import build_config

    (tmp_path / "r").mkdir()
    ups = "".join(f"  u{i}: {{base_url: 'http://127.0.0.1:9/v1', model: m{i}}}\n" for i in range(9))
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"routers:\n  r: {{path: {tmp_path / 'r'}}}\nupstreams:\n{ups}shadow: 0.5\nshadow_log: shadow.jsonl\n"
    )
    banner = _logging_lines(build_config(cfg))[0]
    assert "the model not chosen" not in banner and "one model other than the chosen one" in banner
    assert "one per request" in banner


def test_collect_says_1_model_not_1_models(tmp_path):
    import json

    from tela_core.testkit.helpers import run_cli

    log = tmp_path / "shadow.jsonl"
    line = {
        "id": "a",
        "messages": [{"role": "user", "content": "Hi?"}],
        "answers": {"u0": {"text": "hi", "model": "m0"}},
    }
    log.write_text(json.dumps(line) + "\n")
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("upstreams:\n  u0: {base_url: 'http://127.0.0.1:9/v1', model: m0}\n")
    res = run_cli("collect", "--from-log", log, "--config", cfg, "--only-logged", "-o", tmp_path / "answers")
    assert res.exit_code == 0, res.output
    assert "1 prompt x 1 model (m0)" in res.output


def test_run_summary_says_an_nmodel_family_predicts_each_models_quality(knn3):
    """`tela run` on N-model data printed 'family: embedding-knn (target weak-wrong)', a two-model
    target the router does not learn; it now says how many models' quality it predicts."""
    from tela_core.cli.run_cmd import summary_lines

    family = next(line for line in summary_lines(knn3[0]) if line.startswith("  family:"))
    assert family == "  family:  embedding-knn (predicts 3 models' quality)", family
