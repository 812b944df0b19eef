"""The public Router API (`tela_core.Router`): load, score, route, decide; and what loading a
router folder may and may not do (no code from the folder without the user's opt-in)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tela_core import Decision, Router, TelaError, get_registry
from tela_core.data import sample_path
from tela_core.data.detect import open_source
from tela_core.routing.artifact import write_manifest, write_policy
from tela_core.testkit.helpers import TelaCli

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
SHORT, LONG = "What is 2 + 2?", "Prove that " + "a long and winding statement " * 40


@pytest.fixture(scope="module")
def length_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `length` router trained on the bundled MMLU sample (longer prompt -> higher w)."""
    out = tmp_path_factory.mktemp("routers") / "length"
    records = list(open_source(sample_path()).read(sample_path()))
    get_registry().create("family", "length", {}).fit(records, out, {"weak": WEAK, "strong": STRONG})
    return out


def test_route_uses_the_saved_policy_and_the_datas_model_names(length_router: Path) -> None:
    r = Router.load(length_router)
    assert r.models == [WEAK, STRONG] and r.name == "length"
    w = r.score([SHORT, LONG])
    assert w.shape == (2,) and 0 <= w[0] < w[1] <= 1
    t = r.threshold
    assert t is not None
    expected = [STRONG if x >= t else WEAK for x in w]
    assert r.route([SHORT, LONG]) == expected
    decisions = r.decide([SHORT, LONG])
    assert all(isinstance(d, Decision) for d in decisions)
    assert [d.model for d in decisions] == expected and [d.threshold for d in decisions] == [t, t]
    np.testing.assert_allclose([d.w for d in decisions], w)


def test_a_threshold_overrides_the_policy(length_router: Path) -> None:
    r = Router.load(length_router)
    assert r.route([SHORT, LONG], threshold=0.0) == [STRONG, STRONG]
    assert r.route([SHORT, LONG], threshold=1.0 + 0.0) == [WEAK if w < 1 else STRONG for w in r.score([SHORT, LONG])]
    mid = float(np.mean(r.score([SHORT, LONG])))
    assert r.route([SHORT, LONG], threshold=mid) == [WEAK, STRONG]
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(TelaError, match="threshold must be in"):
            r.route([SHORT], threshold=bad)
    assert r.route([]) == []
    with pytest.raises(TypeError, match="not one string"):
        r.route(SHORT)  # type: ignore[arg-type]


def test_another_policy_from_the_caller(length_router: Path) -> None:
    r = Router.load(length_router, policy="threshold", policy_options={"threshold": 0.0})
    assert r.route([SHORT, LONG]) == [STRONG, STRONG] and r.threshold == 0.0
    with pytest.raises(TelaError, match="unknown policy 'nope'; registered policies: .*threshold"):
        Router.load(length_router, policy="nope")


def test_router_without_policy_file_routes_between_the_manifests_models(length_router: Path, tmp_path: Path) -> None:
    d = shutil.copytree(length_router, tmp_path / "r")
    (d / "policy.json").unlink()
    assert Router.load(d).models == [WEAK, STRONG]


def test_format_version_is_checked(length_router: Path, tmp_path: Path) -> None:
    for version, msg in (
        (99, "newer than this tela reads"),
        ("one", "must be a format version"),
        (None, "must be a format version"),
    ):
        d = shutil.copytree(length_router, tmp_path / f"v{version}")
        m = json.loads((d / "tela.json").read_text())
        m["tela_artifact"] = version
        (d / "tela.json").write_text(json.dumps(m))
        with pytest.raises(TelaError, match=msg):
            Router.load(d)


def test_a_missing_plugin_is_named_from_the_manifest(tmp_path: Path, tela_cli: TelaCli) -> None:
    write_manifest(tmp_path, scorer="nowhere-family")
    m = json.loads((tmp_path / "tela.json").read_text())
    m["plugins"]["tela-nowhere"] = "0.1.0"
    (tmp_path / "tela.json").write_text(json.dumps(m))
    with pytest.raises(TelaError, match=r"unknown family 'nowhere-family'.*made with tela-nowhere 0\.1\.0"):
        Router.load(tmp_path)
    res = tela_cli("route", "--router", tmp_path, "hi")
    assert res.exit_code == 2 and "tela-nowhere 0.1.0" in res.output and "Traceback" not in res.output


# -- no code from a router folder unless the user allows it --------------------------------------------

EVIL = """
from pathlib import Path
Path(MARKER).write_text("router code ran")
from transformers import LlamaConfig, LlamaForCausalLM

class EvilConfig(LlamaConfig):
    model_type = "llama"

class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
"""


@pytest.fixture()
def evil_router(tiny_router: Path, tmp_path: Path) -> Path:
    """A score-token router whose config names Python code of its own (auto_map): code that, if
    imported, leaves a file RAN in the router folder (a copy of the test kit's tiny_router)."""
    d = Path(shutil.copytree(tiny_router, tmp_path / "evil"))
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "evil.py").write_text(EVIL.replace("MARKER", repr(str(d / "RAN"))))
    return d


@pytest.mark.slow
def test_router_code_never_runs_without_the_users_flag(
    evil_router: Path, monkeypatch: pytest.MonkeyPatch, tela_cli: TelaCli
) -> None:
    monkeypatch.delenv("TELA_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(TelaError, match="ships its own Python code .*--trust-remote-code"):
        Router.load(evil_router)
    for cmd in (
        ["route", "--router", evil_router, "hi"],
        ["calibrate", "--router", evil_router, "--data", sample_path(), "--strong-share", "0.5"],
        ["eval", "--router", evil_router, "--data", sample_path(), "-o", evil_router.parent / "ev"],
    ):
        res = tela_cli(*cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert "--trust-remote-code" in res.output and "Traceback" not in res.output
    assert not (evil_router / "RAN").exists()


@pytest.mark.slow
def test_a_manifest_cannot_grant_itself_trust(evil_router: Path, tmp_path: Path) -> None:
    """Older tela read trust_remote_code from the router's own tela.json: it must no longer count."""
    m = json.loads((evil_router / "tela.json").read_text())
    m["trust_remote_code"] = True
    m["config"] = {"trust_remote_code": True}
    (evil_router / "tela.json").write_text(json.dumps(m))
    with pytest.raises(TelaError, match="--trust-remote-code"):
        Router.load(evil_router)
    assert not (evil_router / "RAN").exists()


@pytest.mark.slow
def test_the_users_flag_lets_the_code_run(evil_router: Path) -> None:
    try:
        Router.load(evil_router, trust_remote_code=True)
    except TelaError:
        pass  # the stand-in code is not a working model; what matters is that it was allowed to run
    assert (evil_router / "RAN").exists()


# -- the CLI goes through the same object ------------------------------------------------------------


def test_route_cli_policy_and_threshold_options(length_router: Path, tela_cli: TelaCli) -> None:
    res = tela_cli("route", "--router", length_router, "--json", "--threshold", "0", SHORT, LONG)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["model"] for r in rows] == [STRONG, STRONG] and rows[0]["threshold"] == 0.0
    res = tela_cli(
        "route", "--router", length_router, "--json", "--policy", "threshold", "--set", "policy.threshold=1.0", SHORT
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["model"] == WEAK
    res = tela_cli("route", "--router", length_router, "--set", "family.k=3", SHORT)
    assert res.exit_code == 2 and "policy options only" in res.output


def test_calibrate_refuses_a_policy_that_does_not_calibrate(
    length_router: Path, tmp_path: Path, tela_cli: TelaCli
) -> None:
    d = shutil.copytree(length_router, tmp_path / "r")
    res = tela_cli(
        "calibrate", "--router", d, "--data", sample_path(), "--strong-share", "0.3", "--policy", "threshold"
    )
    assert res.exit_code == 2 and "does not calibrate" in res.output and "calibrated" in res.output
    res = tela_cli("calibrate", "--router", d, "--data", sample_path(), "--strong-share", "0.3")
    assert res.exit_code == 0, res.output
    r = Router.load(d)
    assert r.policy_spec["name"] == "calibrated" and r.models == [WEAK, STRONG]
    share = float(
        np.mean([m == STRONG for m in r.route([x.prompt for x in open_source(sample_path()).read(sample_path())])])
    )
    assert abs(share - 0.3) < 0.05


def test_write_policy_round_trip(tmp_path: Path, length_router: Path) -> None:
    d = shutil.copytree(length_router, tmp_path / "r")
    write_policy(d, "threshold", {"threshold": 0.25}, [WEAK, STRONG])
    assert Router.load(d).threshold == 0.25
    (d / "policy.json").write_text(json.dumps({"name": "threshold", "options": {}, "models": "gpt"}))
    with pytest.raises(TelaError, match="'models' must be a list"):
        Router.load(d)


def test_score_batch_size_is_its_own_option(length_router: Path, tela_cli: TelaCli) -> None:
    """`--score-batch-size` is the scoring batch (run's `--batch-size` is the training batch); the
    old spelling still works on route/eval/calibrate, with a note."""
    res = tela_cli("route", "--router", length_router, "--json", "--score-batch-size", "2", SHORT)
    assert res.exit_code == 0 and "note:" not in res.output
    res = tela_cli("route", "--router", length_router, "--json", "--batch-size", "2", SHORT)
    assert res.exit_code == 0 and "now --score-batch-size" in res.output
    res = tela_cli("eval", "--help")
    assert "--score-batch-size" in res.output and "--batch-size " not in res.output


def test_score_batch_size_survives_a_family_that_reloads_its_options(tmp_path: Path) -> None:
    """lm-probe (like the other baseline families) re-reads its saved options in load(); the
    caller's score batch size must still reach the loaded scorer."""
    write_manifest(tmp_path, scorer="lm-probe", scorer_options={"batch_size": 8, "layer": 12}, weak=WEAK, strong=STRONG)
    (tmp_path / "linear.json").write_text(json.dumps({"coef": [0.0] * 4, "bias": 0.0}))
    assert Router.load(tmp_path).scorer.options.batch_size == 8
    assert Router.load(tmp_path, score_batch_size=3).scorer.options.batch_size == 3
