"""`tela route` and `tela calibrate` on a tiny real router artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def router(tiny_router: Path, tmp_path: Path) -> Path:
    """The kit's tiny router, copied: calibrate rewrites its policy.json."""
    return Path(shutil.copytree(tiny_router, tmp_path / "router"))


def prompts_file(path: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    words = "what why how many the capital of france prove theorem explain sky blue write poem".split()
    with open(path, "w") as fh:
        for i in range(n):
            q = " ".join(rng.choice(words, size=int(rng.integers(2, 30))))
            fh.write(json.dumps({"prompt": f"{q} #{i}"}) + "\n")
    return path


def test_route_prints_distribution_w_and_model(router, tela_cli):
    r = tela_cli("route", "--router", router, "What is the capital of France?", "Prove the Riemann hypothesis.")
    assert r.exit_code == 0, r.output
    assert "What is the capital" in r.output and "[[5]]" in r.output
    assert "threshold" in r.output
    assert any(m in r.output for m in ("weak", "strong"))


def test_route_json_follows_the_saved_policy(router, tela_cli):
    from tela_core.routing.artifact import write_policy

    for t, want in ((0.0, "strong"), (1.0, "weak")):
        write_policy(router, "threshold", {"threshold": t}, ["mixtral", "gpt-4"])
        r = tela_cli("route", "--router", router, "--json", "a", "b c d")
        assert r.exit_code == 0, r.output
        rows = [json.loads(line) for line in r.output.strip().splitlines()]
        assert [row["prompt"] for row in rows] == ["a", "b c d"]
        for row in rows:
            assert sum(row["probs"]) == pytest.approx(1.0, abs=1e-5)
            assert row["w"] == pytest.approx(1 - row["probs"][3] - row["probs"][4], abs=1e-5)
            assert row["model"] == {"strong": "gpt-4", "weak": "mixtral"}[want]


def test_route_reads_a_file_and_stdin(router, tmp_path, tela_cli):
    f = prompts_file(tmp_path / "p.jsonl", 3)
    r = tela_cli("route", "--router", router, "--file", f, "--json")
    assert r.exit_code == 0, r.output
    assert len(r.output.strip().splitlines()) == 3
    r = tela_cli("route", "--router", router, "--json", input='plain question one\n{"prompt": "json two"}\n\n"three"\n')
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["prompt"] for x in r.output.strip().splitlines()] == [
        "plain question one",
        "json two",
        "three",
    ]


def test_route_errors(router, tmp_path, tela_cli):
    r = tela_cli("route", "--router", tmp_path / "missing", "q")
    assert r.exit_code == 2 and "router directory not found" in r.output
    r = tela_cli("route", "--router", tmp_path, "q")
    assert r.exit_code == 2 and "not a tela router" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n')
    r = tela_cli("route", "--router", router, "--file", bad)
    assert r.exit_code == 2 and f"{bad}:2" in r.output
    r = tela_cli("route", "--router", router, input="")
    assert r.exit_code == 2 and "no prompts" in r.output
    (router / "policy.json").write_text(
        json.dumps({"name": "threshold", "options": {"threshold": 1.5}, "models": ["a", "b"]})
    )
    r = tela_cli("route", "--router", router, "q")
    assert r.exit_code == 2 and "threshold" in r.output and "less than or equal to 1" in r.output


def test_calibrate_hits_target_share_and_saves_policy(router, tmp_path, isolated_cache, tela_cli):
    f = prompts_file(tmp_path / "cal.jsonl", 40)
    r = tela_cli("calibrate", "--router", router, "--data", f, "--strong-share", "0.25")
    assert r.exit_code == 0, r.output
    policy = json.loads((router / "policy.json").read_text())
    assert policy["name"] == "calibrated" and policy["models"] == ["weak", "strong"]
    opts = policy["options"]
    assert opts["strong_share"] == 0.25 and opts["calibration_prompts"] == 40
    assert f"threshold {opts['threshold']:.6f}" in r.output
    # routing the calibration prompts with the saved policy sends the target share to strong
    r = tela_cli("route", "--router", router, "--file", f, "--json")
    models = [json.loads(x)["model"] for x in r.output.strip().splitlines()]
    assert models.count("strong") == 10
    assert opts["achieved_share"] == pytest.approx(0.25)
    assert list((isolated_cache / "scores").glob("*.npz"))  # scores were cached


def test_calibrate_rejects_bad_share_and_keeps_policy(router, tmp_path, tela_cli):
    before = (router / "policy.json").read_text()
    f = prompts_file(tmp_path / "cal.jsonl", 3)
    for share in ("1.5", "-0.2"):
        r = tela_cli("calibrate", "--router", router, "--data", f, "--strong-share", share)
        assert r.exit_code == 2 and "[0, 1]" in r.output
    r = tela_cli("calibrate", "--router", router, "--data", tmp_path / "none.jsonl", "--strong-share", "0.5")
    assert r.exit_code == 2 and "not found" in r.output
    assert (router / "policy.json").read_text() == before


@pytest.mark.slow
def test_route_calibrate_eval_on_a_router_trained_by_tela_run(trained_router, tmp_path, isolated_cache, tela_cli):
    """`tela run` (real DeepSpeed, tiny Llama: the session's ``trained_router``) -> route -> calibrate
    -> eval, as a user would."""
    out = Path(shutil.copytree(trained_router.path, tmp_path / "run"))  # calibrate rewrites its policy

    r = tela_cli("route", "--router", out, "--json", "What is the capital of France?", "Which gas do plants absorb?")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.strip().splitlines()]
    probs = np.array([row["probs"] for row in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    # the training labels are 1, 3 and 5 only (docs/metrics.md mapping), mostly 5: training moved the
    # score distribution there, away from the untrained model's near-uniform one
    assert (probs[:, 4] > 0.35).all(), probs

    cal = tmp_path / "cal.jsonl"
    prompts_file(cal, 30)
    r = tela_cli("calibrate", "--router", out, "--data", cal, "--strong-share", "0.3")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "policy.json").read_text())["options"]["achieved_share"] == pytest.approx(0.3, abs=1 / 30)

    from tela_core.data import sample_path as sp

    r = tela_cli("eval", "--router", out, "--data", sp("mmlu_heldout_sample.jsonl"), "--output", tmp_path / "eval")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [x["name"] for x in rep["routers"]] == ["run", "random", "oracle"] and rep["n"] == 300
    assert 0.0 < rep["policy"]["point"]["strong_share"] < 1.0
