"""`tela eval`: baselines on real MMLU outcomes, a real (tiny) router, reports, cache and errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tela_core.testkit.helpers import needs_public_data, public_data

MMLU = public_data("routellm-mmlu") or Path("routellm-mmlu")
ARENA = public_data("routerarena", "routerarena-sub10") or Path("routerarena")
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
needs_mmlu = needs_public_data("routellm-mmlu")


@pytest.fixture
def router(tiny_router: Path, tmp_path: Path) -> Path:
    """The kit's tiny router, copied: a test here rewrites its policy.json."""
    return Path(shutil.copytree(tiny_router, tmp_path / "router"))


@pytest.fixture()
def outcome_csvs(tmp_path: Path) -> Path:
    """Two subjects of RouteLLM-shaped CSVs (with an ignored response column), 30 prompts."""
    d = tmp_path / "csvs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for subject in ("astronomy", "anatomy"):
        with open(d / f"mmlu_{subject}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["prompt", WEAK, STRONG, "gpt-4-1106-preview_response"])
            for i in range(15):
                weak = rng.random() < 0.5
                strong = weak or rng.random() < 0.6
                w.writerow([f"{subject} question {i}: " + "why " * int(rng.integers(1, 40)), weak, strong, "some text"])
    return d


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


@needs_mmlu
@pytest.mark.parametrize(
    "router_name, apgr, cpt50, cpt80",
    [("random", 0.488, 0.53, 0.82), ("oracle", 1.251, 0.05, 0.08)],
)
def test_baselines_on_mmlu_heldout_match_metrics_md(tmp_path, router_name, apgr, cpt50, cpt80, tela_cli):
    out = tmp_path / router_name
    r = tela_cli("eval", "--router", router_name, "--data", MMLU, "--protocol", "mmlu-heldout", "--output", out)
    assert r.exit_code == 0, r.output
    assert f"{apgr:.3f}" in r.output and "random" in r.output and "oracle" in r.output
    rep = read_report(out)
    assert rep["n"] == 3056 and rep["protocol"] == "mmlu-heldout"
    first = rep["routers"][0]
    assert first["name"] == router_name
    assert abs(first["apgr"] - (0.50 if router_name == "random" else 1.251)) <= (
        0.03 if router_name == "random" else 0.005
    )
    assert round(first["apgr"], 3) == apgr and round(first["cpt50"], 2) == cpt50 and round(first["cpt80"], 2) == cpt80
    assert len(first["pgr_grid"]) == 11 and first["pgr_grid"][0] == 0 and first["pgr_grid"][-1] == pytest.approx(1)
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| router | APGR |" in (out / "report.md").read_text()


def test_router_eval_writes_report_and_reuses_cached_scores(router, outcome_csvs, tmp_path, isolated_cache, tela_cli):
    out = tmp_path / "eval"
    r = tela_cli("eval", "--router", router, "--data", outcome_csvs, "--output", out)
    assert r.exit_code == 0, r.output
    rep = read_report(out)
    assert [x["name"] for x in rep["routers"]] == [router.name, "random", "oracle"]
    assert rep["n"] == 30 and rep["source"] == "routellm-csv" and rep["weak_model"] == WEAK
    assert rep["scoring"]["cached"] is False
    assert rep["policy"]["point"]["strong_share"] in {i / 30 for i in range(31)}
    for name in ("report.json", "report.md", "quality.png"):
        assert (out / name).is_file()
    # the same router and data again: scores come from the cache; the router's curve is unchanged
    r2 = tela_cli("eval", "--router", router, "--data", outcome_csvs, "--output", out, "--force")
    assert r2.exit_code == 0, r2.output
    rep2 = read_report(out)
    assert rep2["scoring"]["cached"] is True and "from cache" in r2.output
    assert rep2["routers"][0]["pgr_grid"] == rep["routers"][0]["pgr_grid"]
    # calibrating the router does not invalidate its cached scores
    (router / "policy.json").write_text(
        json.dumps({"name": "threshold", "options": {"threshold": 0.1}, "models": ["weak", "strong"]})
    )
    r3 = tela_cli("eval", "--router", router, "--data", outcome_csvs, "--output", out, "--force")
    assert (
        read_report(out)["scoring"]["cached"] is True and read_report(out)["policy"]["point"]["strong_share"] == 1.0
    ), r3.output


def test_existing_report_is_not_overwritten(outcome_csvs, tmp_path, tela_cli):
    out = tmp_path / "eval"
    assert tela_cli("eval", "--router", "random", "--data", outcome_csvs, "-o", out).exit_code == 0
    before = (out / "report.json").read_bytes()
    r = tela_cli("eval", "--router", "oracle", "--data", outcome_csvs, "-o", out)
    assert r.exit_code == 2 and "--force" in r.output
    assert (out / "report.json").read_bytes() == before


def test_bad_inputs_exit_2_and_write_nothing(router, outcome_csvs, tmp_path, tela_cli):
    out = tmp_path / "eval"
    cases = [
        (["--router", tmp_path / "nope", "--data", outcome_csvs], "router directory not found"),
        (["--router", tmp_path, "--data", outcome_csvs], "not a tela router"),
        (["--router", "random", "--data", tmp_path / "missing.csv"], "not found"),
        (["--router", "random", "--data", outcome_csvs, "--weak-model", "nobody"], "nobody"),
        (
            ["--router", "random", "--data", outcome_csvs, "--protocol", "mmlu-heldout", "--source", "jsonl"],
            "expected a JSONL file",
        ),
    ]
    no_outcomes = tmp_path / "plain.jsonl"
    from tela_core.data.records import seed_record

    no_outcomes.write_text(json.dumps(seed_record("q", 5).to_seed()) + "\n")
    cases.append((["--router", "random", "--data", no_outcomes], "no per-model outcomes"))
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(f"prompt,{WEAK},{STRONG}\nq1,True,False\nq2,maybe,True\n")
    cases.append((["--router", "random", "--data", bad_csv], f"{bad_csv}:3"))
    for args, msg in cases:
        r = tela_cli("eval", *args, "--output", out)
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output, (args, r.output)
        assert not out.exists()


def test_protocol_needs_mmlu_subjects(outcome_csvs, tmp_path, tela_cli):
    only_train = tmp_path / "train_only"
    only_train.mkdir()
    shutil.copy(outcome_csvs / "mmlu_anatomy.csv", only_train)
    r = tela_cli("eval", "--router", "random", "--data", only_train, "--protocol", "mmlu-heldout", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "held-out MMLU subject" in r.output
    r = tela_cli(
        "eval", "--router", "random", "--data", outcome_csvs, "--protocol", "mmlu-heldout", "-o", tmp_path / "o"
    )
    assert r.exit_code == 0, r.output
    assert read_report(tmp_path / "o")["n"] == 15  # astronomy only


@needs_public_data("routerarena", "routerarena-sub10")
def test_prices_give_cost_per_query(tmp_path, tela_cli):
    out = tmp_path / "arena"
    r = tela_cli("eval", "--router", "oracle", "--data", ARENA, "-o", out)
    assert r.exit_code == 0, r.output
    rep = read_report(out)
    orc = rep["routers"][0]
    assert rep["cost_weak"] is not None and len(orc["cost"]) == 11
    assert orc["cost"][0] == pytest.approx(rep["cost_weak"]) and orc["cost"][-1] == pytest.approx(rep["cost_strong"])
    assert "cost per query" in (out / "report.md").read_text()
