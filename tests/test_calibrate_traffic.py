"""`tela calibrate --traffic`: the threshold comes from the router being calibrated, not from the
scores another version logged (issue 25, item 2); a shadow log is refused; few requests warn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tela_core import Router
from tela_core.data import sample_path

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def _prompts(n: int) -> list[str]:
    from tela_core.data.detect import open_source

    p = sample_path("mmlu_heldout_sample.jsonl")
    return [r.prompt for r in open_source(p, "jsonl").records(p)][:n]


@pytest.fixture
def router(tmp_path: Path, tela_cli) -> Path:
    out = tmp_path / "len"
    res = tela_cli("run", "--family", "length", "--data", sample_path(), "--output", out)
    assert res.exit_code == 0, res.output
    return out


def _log(path: Path, lines: list[dict]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"router": "len", "threshold": 0.5, "upstream": "small", "status": 200, "sticky": False, **ln})
            + "\n"
            for ln in lines
        )
    )
    return path


def test_logged_prompts_are_scored_again_by_the_router_being_calibrated(router, tmp_path, tela_cli):
    prompts = _prompts(200)
    # an older router logged these scores: all 0.9, they would put the threshold near 0.9
    log = _log(tmp_path / "d.jsonl", [{"w": 0.9, "prompt": p, "router_version": "0123456789ab"} for p in prompts])
    res = tela_cli("calibrate", "--router", router, "--traffic", log, "--strong-share", "0.3")
    assert res.exit_code == 0, res.output
    assert "scored again by this router" in res.output and "fewer than 100" not in res.output
    t = json.loads((router / "policy.json").read_text())["options"]["threshold"]
    w = Router.load(router).score(prompts)
    from tela_core import get_registry

    expected = get_registry().create("policy", "calibrated", {"strong_share": 0.3}).calibrate(w).options.threshold
    assert t == pytest.approx(expected) and (w >= t).mean() == pytest.approx(
        0.3, abs=0.02
    )  # this router's share, not the log's
    assert Router.load(router).threshold == pytest.approx(t) and t < 0.85


def test_a_log_of_another_version_without_prompts_is_refused(router, tmp_path, tela_cli):
    from tela_core.routing.artifact import router_version

    before = (router / "policy.json").read_text()
    log = _log(tmp_path / "d.jsonl", [{"w": x, "router_version": "0123456789ab"} for x in np.linspace(0, 1, 150)])
    res = tela_cli("calibrate", "--router", router, "--traffic", log, "--strong-share", "0.3")
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "d.jsonl:1:" in res.output and "router version 0123456789ab" in res.output
    assert router_version(router) in res.output and "log_prompts" in res.output
    assert (router / "policy.json").read_text() == before  # nothing written
    # the same scores logged by this very version are its own: used as they are
    mine = _log(
        tmp_path / "mine.jsonl",
        [{"w": float(x), "router_version": router_version(router)} for x in np.linspace(0, 1, 150)],
    )
    res = tela_cli("calibrate", "--router", router, "--traffic", mine, "--strong-share", "0.3")
    assert res.exit_code == 0 and "scores as logged by this router version" in res.output, res.output


def test_a_shadow_log_is_refused(router, tmp_path, tela_cli):
    shadow = tmp_path / "shadow.jsonl"
    shadow.write_text(
        json.dumps(
            {
                "request_id": "r1",
                "router": "len",
                "w": 0.4,
                "threshold": 0.5,
                "chosen": WEAK,
                "models": [WEAK, STRONG],
                "answers": {WEAK: {"text": "a"}, STRONG: {"text": "b"}},
            }
        )
        + "\n"
    )
    res = tela_cli("calibrate", "--router", router, "--traffic", shadow, "--strong-share", "0.3")
    assert (
        res.exit_code == 2 and "shadow.jsonl:1: this is a shadow log" in res.output and "decision log" in res.output
    ), res.output


def test_few_requests_warn(router, tmp_path, tela_cli):
    log = _log(tmp_path / "d.jsonl", [{"w": 0.5, "prompt": p} for p in _prompts(19)])
    res = tela_cli("calibrate", "--router", router, "--traffic", log, "--strong-share", "0.5")
    assert res.exit_code == 0, res.output
    assert "warning: this calibration rests on 19 prompts, fewer than 100" in res.output


def test_unversioned_logs_without_prompts_warn(router, tmp_path, tela_cli):
    log = _log(tmp_path / "d.jsonl", [{"w": float(x)} for x in np.linspace(0, 1, 150)])
    res = tela_cli("calibrate", "--router", router, "--traffic", log, "--strong-share", "0.3")
    assert res.exit_code == 0, res.output
    assert "150 logged requests name no router version and carry no prompt text" in res.output


def test_decisions_name_the_router_version(router):
    from tela_core.routing.artifact import router_version

    r = Router.load(router)
    d = r.decide(["What is 2 + 2?"])[0]
    assert d.router_version == router_version(router) == r.version and len(d.router_version) == 12
    # recalibrating keeps the version; retraining changes it
    from tela_core.routing.artifact import write_policy

    write_policy(router, "threshold", {"threshold": 0.2}, r.models)
    assert router_version(router) == r.version


def test_after_retraining_a_served_routers_log_calibrates_the_new_version(tmp_path, tela_cli):
    """The user's path: serve v1, retrain into v2, calibrate v2 on v1's traffic. With the prompts
    logged, v2 scores them itself; without them, v1's scores are refused for v2."""
    import httpx
    from serve_support import TelaServe, free_port, standin

    from tela_core.routing.artifact import router_version

    v1 = tmp_path / "v1"
    assert tela_cli("run", "--family", "length", "--data", sample_path(), "--output", v1).exit_code == 0
    prompts = _prompts(120)
    logs = {}
    with standin("small") as small, standin("big") as big:
        for mode, flags in (("text", ["--log-prompts"]), ("bare", [])):
            logs[mode] = tmp_path / f"decisions-{mode}.jsonl"
            server = TelaServe(
                [
                    "--router",
                    f"len={v1}",
                    "--weak",
                    f"{small}#small",
                    "--strong",
                    f"{big}#big",
                    "--decision-log",
                    str(logs[mode]),
                    *flags,
                ],
                free_port(),
            )
            try:
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    for p in prompts:
                        r = c.post(
                            "/v1/chat/completions",
                            json={"model": "router-len", "messages": [{"role": "user", "content": p}]},
                        )
                        assert r.status_code == 200, r.text
            finally:
                assert "Traceback" not in server.stop()
    lines = [json.loads(x) for x in logs["bare"].read_text().splitlines()]
    assert {ln["router_version"] for ln in lines} == {router_version(v1)}
    # v2: the same family trained on other data (the held-out sample): another version, other scores
    v2 = tmp_path / "v2"
    assert (
        tela_cli(
            "run", "--family", "length", "--data", sample_path("mmlu_heldout_sample.jsonl"), "--output", v2
        ).exit_code
        == 0
    )
    assert router_version(v2) != router_version(v1)
    res = tela_cli("calibrate", "--router", v2, "--traffic", logs["text"], "--strong-share", "0.25")
    assert res.exit_code == 0 and "scored again by this router" in res.output, res.output
    t = json.loads((v2 / "policy.json").read_text())["options"]["threshold"]
    assert (Router.load(v2).score(prompts) >= t).mean() == pytest.approx(0.25, abs=0.03)
    res = tela_cli("calibrate", "--router", v2, "--traffic", logs["bare"], "--strong-share", "0.25")
    assert (
        res.exit_code == 2 and f"router version {router_version(v1)}" in res.output and router_version(v2) in res.output
    )
