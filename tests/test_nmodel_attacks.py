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
