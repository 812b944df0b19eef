"""A freshly trained router's saved policy is an operating point chosen on scores of records it did
not train on (issue 25, item 1): `tela run` states it in a summary, `tela eval` flags a saved policy
that gains nothing, and too few prompts are called out (eval, zoo)."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

from tela_core.data import sample_path
from tela_core.infra.errors import TelaError

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def _policy(d: Path) -> dict:
    return json.loads((d / "policy.json").read_text())


def test_tela_run_saves_the_knee_chosen_out_of_fold_and_says_so(tmp_path, tela_cli):
    out = tmp_path / "len"
    res = tela_cli("run", "--family", "length", "--data", sample_path(), "--output", out)
    assert res.exit_code == 0, res.output
    policy = _policy(out)
    point = policy["operating_point"]
    assert policy["name"] == "calibrated" and point["rule"] == "knee" and point["note"] is None
    # chosen on one out-of-fold score per training prompt, never on the scores of what it trained on
    assert point["heldout"] == 400 and "out-of-fold" in point["heldout_what"]
    assert (
        0.1 <= point["strong_share"] <= 0.9 and point["pgr"] > point["strong_share"]
    )  # routes, and beats random there
    assert (
        policy["options"]["threshold"] == point["threshold"]
        and policy["options"]["achieved_share"] == point["strong_share"]
    )
    # the summary: records, pair, family, policy and where it lands on the held-out part
    assert "records: 400 read, 400 trained on" in res.output
    assert f"pair:    weak {WEAK}, strong {STRONG}" in res.output
    assert "family:  length" in res.output
    assert re.search(
        r"policy:  calibrated, threshold w >= [0-9.]+ \(rule: knee, the knee of the quality-cost curve\); "
        r"on 400 held-out prompts \(5-fold out-of-fold scores of the training records\): \d+% strong calls",
        res.output,
    )
    from tela_core import Router

    served = np.mean(
        [m == STRONG for m in Router.load(out).route([r.prompt for r in _records("mmlu_heldout_sample.jsonl")])]
    )
    assert 0.1 <= served <= 0.9  # served, it sends real traffic to both models


def _records(name: str) -> list:
    from tela_core.data.detect import open_source

    p = sample_path(name)
    return list(open_source(p, "jsonl").records(p))


def test_operating_point_rules_from_the_command_line(tmp_path, tela_cli):
    res = tela_cli(
        "run",
        "--family",
        "length",
        "--data",
        sample_path(),
        "--output",
        tmp_path / "s",
        "--operating-point",
        "share=0.3",
    )
    assert res.exit_code == 0, res.output
    point = _policy(tmp_path / "s")["operating_point"]
    assert point["rule"] == "share=0.3" and point["strong_share"] == pytest.approx(0.3, abs=0.03)
    res = tela_cli(
        "run",
        "--family",
        "length",
        "--data",
        sample_path(),
        "--output",
        tmp_path / "t",
        "--operating-point",
        "threshold=0.5",
    )
    assert res.exit_code == 0, res.output
    policy = _policy(tmp_path / "t")
    assert policy["name"] == "threshold" and policy["options"] == {"threshold": 0.5}
    for bad in ("share=1.5", "middle", "threshold=x"):
        res = tela_cli(
            "run", "--family", "length", "--data", sample_path(), "--output", tmp_path / "b", "--operating-point", bad
        )
        assert res.exit_code == 2 and "--operating-point" in res.output and "Traceback" not in res.output, res.output
        assert not (tmp_path / "b").exists()


def test_a_router_that_memorises_is_judged_on_prompts_it_did_not_see(tmp_path, tela_cli):
    """A family that scores its own training prompts perfectly and knows nothing else: on training
    scores its knee would look perfect; out of fold it does not beat random, and the run says so."""
    from tela_core import hookimpl
    from tela_core.routing.family import FamilyScorer, read_json, train_data
    from tela_core.testkit.helpers import registered_plugin

    class Memo(FamilyScorer):
        name = "test-memo"
        description = "remembers its training prompts"

        def fit(self, train, output_dir, config):
            self.merge_options(config)
            out = self.start_fit(train, output_dir)
            data = train_data(train, self.options.target, self.options.weak, self.options.strong)
            (out / "memo.json").write_text(json.dumps({r.prompt: float(y) for r, y in zip(train, data.y)}))
            return self.finish_fit(out, len(train), data.meta)

        def load(self, artifact_dir):
            self.check_manifest(artifact_dir)
            self.memo = read_json(Path(artifact_dir) / "memo.json")

        def score(self, prompts):
            from tela_core import Scores

            return Scores(w=np.array([self.memo.get(p, 0.5) for p in prompts]))

    @hookimpl
    def tela_register_scorers(register):
        register(Memo)

    with registered_plugin(types.SimpleNamespace(tela_register_scorers=tela_register_scorers), "test-memo"):
        res = tela_cli("run", "--family", "test-memo", "--data", sample_path(), "--output", tmp_path / "m")
        assert res.exit_code == 0, res.output
    point = _policy(tmp_path / "m")["operating_point"]
    assert point["target_share"] == 0.5 and "beat random" in point["note"] and point["note"] in res.output
    assert "gains nothing" in res.output  # it routes (almost) nothing on prompts it has not seen


def test_knee_share_and_fallbacks():
    from tela_core.routing.operating_point import choose_operating_point, parse_rule

    rng = np.random.default_rng(0)
    n = 2000
    need = rng.random(n) < 0.3  # the prompts where only the strong model is right
    weak = np.where(need, 0.0, 1.0)
    strong = np.ones(n)
    w = np.where(need, 0.6, 0.4) + rng.normal(0, 0.1, n)  # a good router
    knee = choose_operating_point(w, weak, strong, heldout_what="test")
    assert knee.rule == "knee" and knee.note is None and 0.25 <= knee.strong_share <= 0.4 and knee.pgr > 0.8
    assert knee.apgr > 0.75 and knee.heldout == n
    share = choose_operating_point(w, weak, strong, rule="share=0.6")
    assert share.strong_share == pytest.approx(0.6, abs=0.001) and share.target_share == 0.6
    fixed = choose_operating_point(w, weak, strong, rule="threshold=0.5")
    assert fixed.threshold == 0.5 and fixed.target_share is None
    backwards = choose_operating_point(-w, weak, strong)  # ranks the prompts that need the strong model last
    assert backwards.target_share == 0.5 and "does not beat random" in backwards.note
    no_outcomes = choose_operating_point(w)
    assert no_outcomes.target_share == 0.5 and "no per-model outcomes" in no_outcomes.note
    no_gap = choose_operating_point(w, strong, weak)
    assert no_gap.target_share == 0.5 and "no better than the weak one" in no_gap.note
    assert parse_rule(None) == ("knee", None) and parse_rule("share=0.25") == ("share", 0.25)
    with pytest.raises(TelaError, match="expected knee, share=P"):
        parse_rule("median")


def test_gains_nothing_rule():
    from tela_core.routing.operating_point import gains_nothing

    assert "almost all go to the weak one" in gains_nothing({"strong_share": 0.03, "pgr": 0.0})
    assert "almost none go to the weak one" in gains_nothing({"strong_share": 0.97, "pgr": 1.0})
    assert "PGR" in gains_nothing({"strong_share": 0.3, "pgr": 0.01})
    assert gains_nothing({"strong_share": 0.3, "pgr": 0.5}) is None


def _length_router(tmp_path: Path, tela_cli) -> Path:
    out = tmp_path / "len"
    assert tela_cli("run", "--family", "length", "--data", sample_path(), "--output", out).exit_code == 0
    return out


def test_eval_flags_a_saved_policy_that_gains_nothing(tmp_path, tela_cli):
    from tela_core.routing.artifact import write_policy

    router = _length_router(tmp_path, tela_cli)
    write_policy(router, "threshold", {"threshold": 1.0}, [WEAK, STRONG])  # sends (almost) nothing to the strong model
    res = tela_cli(
        "eval", "--router", router, "--data", sample_path("mmlu_heldout_sample.jsonl"), "--output", tmp_path / "ev"
    )
    assert res.exit_code == 0, res.output
    assert "warning: the router's saved policy (threshold) gains nothing from routing here" in res.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert "almost all go to the weak one" in report["policy"]["gains_nothing"]
    assert any("gains nothing" in w for w in report["warnings"])
    # the policy line is for people: rounded numbers, no Python dict
    assert re.search(
        r"saved policy threshold \(threshold w >= 1\.000\): \d+\.\d% of prompts to the strong model, "
        r"quality 0\.\d{3}, PGR -?\d\.\d{3}$",
        res.output,
        flags=re.M,
    ), res.output
    assert "{'threshold'" not in res.output and "{'threshold'" not in (tmp_path / "ev" / "report.md").read_text()
    # the oracle above 1, explained where it is printed
    oracle = next(r for r in report["routers"] if r["name"] == "oracle")
    assert (
        oracle["apgr"] > 1
        and "oracle APGR" in res.output
        and "weak model is right and the strong one wrong" in res.output
    )


def test_eval_and_calibrate_on_few_prompts_warn(tmp_path, tela_cli):
    router = _length_router(tmp_path, tela_cli)
    few = tmp_path / "few.jsonl"
    few.write_text("".join(sample_path("mmlu_heldout_sample.jsonl").read_text().splitlines(keepends=True)[:19]))
    res = tela_cli("eval", "--router", router, "--data", few, "--output", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "warning: this evaluation rests on 19 prompts, fewer than 100" in res.output
    assert "fewer than 100" in json.loads((tmp_path / "ev" / "report.json").read_text())["warnings"][0]
    res = tela_cli(
        "eval", "--router", router, "--data", sample_path("mmlu_heldout_sample.jsonl"), "--output", tmp_path / "ev300"
    )
    assert "fewer than 100" not in res.output
    res = tela_cli("calibrate", "--router", router, "--data", few, "--strong-share", "0.3")
    assert res.exit_code == 0 and "this calibration rests on 19 prompts, fewer than 100" in res.output, res.output


def test_zoo_on_few_eval_prompts_warns(tmp_path, tela_cli):
    res = tela_cli("zoo", "--data", sample_path(), "--families", "length", "--output", tmp_path / "zoo")
    assert res.exit_code == 0, res.output
    said = " ".join(re.sub(r"\S+\.py:\d+", "", res.output).split())  # rich's log: wrapped, with the caller's line
    assert "warning: the comparison rests on 40 prompts, fewer than 100" in said
