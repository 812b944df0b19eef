"""tela-acme end to end through the installed `tela` command, on the bundled MMLU sample as acme-csv.

Train on the 400-prompt sample (42 subjects), judge on 300 prompts of 15 other subjects: register →
train (`tela zoo`, `tela run` with a family and with the backend) → calibrate and route with the
budget policy → evaluate → `tela acme summary`.
"""

from __future__ import annotations

import json
import shutil

import pytest
from acme_cli import tela, tela_json

MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def test_one_plugin_provides_every_kind_and_a_command():
    plugins = {p["name"]: p for p in tela_json("plugins", "list", "--json")}
    acme = plugins["acme"]
    assert acme["distribution"] == "tela-acme" and not acme["broken"], acme["error"]
    assert acme["provides"] == {
        "source": ["acme-csv"],
        "formatter": ["acme-compact"],
        "backend": ["acme-ngram"],
        "scorer": ["acme-tfidf", "acme-ngram"],
        "policy": ["acme-budget"],
        "upstream": ["acme-ollama"],
        "command": ["acme"],
    }
    shown = tela("plugins", "show", "policy", "acme-budget").stdout
    assert "strong_share: float (default 0.2)" in shown and "never send a prompt with w below" in shown.lower()


def test_source_is_detected_over_routellm_csv_and_labels_follow_the_pair(data):
    summary = tela_json("data", "check", "--json", data["train"])
    assert summary["source"] == "acme-csv" and summary["records"] == 400 and summary["groups"] == 42
    # Same labels as the seed JSONL the CSV came from: weak right 5, only strong right 1, both wrong 3.
    assert summary["labels"] == {"1": 74, "2": 0, "3": 61, "4": 0, "5": 265}
    assert summary["models"][GPT4]["mean_cost"] == pytest.approx(0.003)
    # --weak-model/--strong-model reach the source's weak_model/strong_model options: labels follow.
    flipped = tela_json("data", "check", "--json", "--weak-model", GPT4, "--strong-model", MIXTRAL, data["train"])
    assert flipped["labels"]["5"] == 314  # GPT-4 right on 314 of 400


def test_source_bad_input_is_one_line_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "prompt,correct:a,correct:b\nWhat is 2 + 2?,true,false\nName a prime.,true,maybe\n", encoding="utf-8"
    )
    proc = tela("data", "check", bad, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"Error: {bad}:3: correct:b: 'maybe' is not true/false or a number in [0, 1]"
    no_models = tmp_path / "none.csv"
    no_models.write_text("prompt,answer\nhi,x\n", encoding="utf-8")
    proc = tela("data", "check", "--source", "acme-csv", no_models, check=False)
    assert proc.returncode == 2 and "no correct:<model> column" in proc.stderr


def test_n_model_data_is_unlabelled_until_a_pair_is_named(tmp_path):
    three = tmp_path / "three.csv"
    three.write_text("prompt,correct:a,correct:b,correct:c\nhi,true,false,1\n\nho,0.5,1,0\n", encoding="utf-8")
    summary = tela_json("data", "check", "--json", three)
    assert summary["unlabelled"] == 2 and summary["notes"]["blank_lines_skipped"] == 1
    assert "no pair named" in summary["notes"]["unlabelled"]
    summary = tela_json("data", "check", "--json", "--weak-model", "b", "--strong-model", "c", three)
    assert summary["unlabelled"] == 0 and summary["labels"]["1"] == 1  # "hi": b wrong, c right


def test_formatter_options_cut_long_questions_in_the_middle(data):
    out = tela(
        "data",
        "preview",
        "--formatter",
        "acme-compact",
        "--n",
        "1",
        "--set",
        "formatter.max_chars=40",
        "--set",
        'formatter.prefix="Q: "',
        data["train"],
    ).stdout
    # The first record, "Which of the following is incorrectly named?\nA. CaCl2 ... dichromate\nAnswer:",
    # cut to 40 characters: 24 from the start (1 - tail_share), the marker, 16 from the end.
    assert "Q: Which of the following i [...] chromate\nAnswer:\nScore: [[5]]" in out
    assert "[Question]" not in out and "Prediction:" not in out  # no seed template or system prompt


def test_tfidf_family_beats_random_on_held_out_subjects(tfidf_router, data, tmp_path):
    manifest = json.loads((tfidf_router / "tela.json").read_text())
    assert manifest["scorer"] == "acme-tfidf" and (manifest["weak"], manifest["strong"]) == (MIXTRAL, GPT4)
    report = tela_json("eval", "--router", tfidf_router, "--data", data["heldout"], "-o", tmp_path / "ev", "--json")
    apgr = {r["name"]: r["apgr"] for r in report["routers"]}
    assert apgr[tfidf_router.name] > apgr["random"] + 0.05, apgr  # 0.606 vs 0.491 when written


def test_zoo_trains_tfidf_with_options_and_the_artifact_reloads(data, tmp_path):
    tela(
        "zoo",
        "--data",
        data["train"],
        "--families",
        "random,acme-tfidf",
        "--set",
        "acme-tfidf.ngram_max=1",
        "--set",
        "acme-tfidf.C=4",
        "-o",
        tmp_path / "zoo",
    )
    router = tmp_path / "zoo" / "routers" / "acme-tfidf"
    opts = json.loads((router / "tela.json").read_text())["scorer_options"]
    assert (opts["ngram_max"], opts["C"]) == (1, 4.0)
    rows = [
        json.loads(line)
        for line in tela(
            "route",
            "--router",
            router,
            "--json",
            "Evaluate the integral of x^2 from 0 to 3.",
            "Which organ pumps blood?",
        ).stdout.splitlines()
    ]
    assert all(0.0 <= r["w"] <= 1.0 and r["model"] in (MIXTRAL, GPT4) for r in rows)


def test_tfidf_is_an_ensemble_member_with_the_ensembles_target(data, tmp_path):
    tela(
        "zoo",
        "--data",
        data["train"],
        "--families",
        "ensemble",
        "--set",
        'ensemble.members=["length","acme-tfidf"]',
        "--set",
        "ensemble.folds=3",
        "--set",
        "ensemble.target=gain",
        "-o",
        tmp_path / "zoo",
    )
    router = tmp_path / "zoo" / "routers" / "ensemble"
    member = json.loads((router / "members" / "1-acme-tfidf" / "tela.json").read_text())
    assert member["scorer_options"]["target"] == "gain" and (member["target"], member["strong"]) == ("gain", GPT4)
    assert "w" in json.loads(tela("route", "--router", router, "--json", "What is 2 + 2?").stdout)


def test_budget_policy_calibrates_a_ceiling_and_routes_by_it(tfidf_router, data, tmp_path):
    proc = tela("route", "--router", tfidf_router, "--policy", "acme-budget", "What is 2 + 2?", check=False)
    assert proc.returncode == 2 and "has no threshold yet" in proc.stderr
    router = tmp_path / "router"
    shutil.copytree(tfidf_router, router)
    tela(
        "calibrate", "--router", router, "--data", data["heldout"], "--strong-share", "0.25", "--policy", "acme-budget"
    )
    saved = json.loads((router / "policy.json").read_text())
    assert saved["name"] == "acme-budget" and saved["models"] == [MIXTRAL, GPT4]
    assert saved["options"]["achieved_share"] <= 0.25 and saved["options"]["calibration_prompts"] == 300
    report = tela_json("eval", "--router", router, "--data", data["heldout"], "-o", tmp_path / "ev", "--json")
    assert report["policy"]["name"] == "acme-budget" and report["policy"]["point"]["strong_share"] <= 0.25
    # A floor on w: with min_w above every score nothing goes strong, whatever the budget.
    report = tela_json(
        "eval",
        "--router",
        router,
        "--data",
        data["heldout"],
        "-o",
        tmp_path / "ev2",
        "--json",
        "--policy",
        "acme-budget",
        "--set",
        "policy.threshold=1.01",
    )
    assert report["policy"]["point"]["strong_share"] == 0.0
    rows = [json.loads(x) for x in tela("route", "--router", router, "--json", "What is 2 + 2?").stdout.splitlines()]
    assert rows[0]["threshold"] == pytest.approx(saved["options"]["threshold"])


def test_backend_trains_a_score_router_that_uses_its_formatter_options(data, tiny_model, tmp_path):
    router = tmp_path / "ngram"
    tela(
        "run",
        "--data",
        data["train"],
        "--family",
        "acme-ngram",
        "--backend",
        "acme-ngram",
        "--model",
        tiny_model,
        "--formatter",
        "acme-compact",
        "--set",
        "formatter.max_chars=300",
        "--set",
        "backend.ngram_max=1",
        "-o",
        router,
    )
    manifest = json.loads((router / "tela.json").read_text())
    assert manifest["scorer"] == "acme-ngram" and manifest["formatter_options"] == {"max_chars": 300}
    assert json.loads((router / "policy.json").read_text())["models"] == [MIXTRAL, GPT4]  # tela's, the data's pair
    assert json.loads((router / "metrics.json").read_text())["train_examples"] == 360
    row = json.loads(tela("route", "--router", router, "--json", "Evaluate the integral of x^2 from 0 to 3.").stdout)
    assert len(row["probs"]) == 5 and sum(row["probs"]) == pytest.approx(1.0, abs=1e-4)
    assert row["w"] == pytest.approx(sum(row["probs"][:3]), abs=1e-4)  # the seed's w = 1 - P([[4]]) - P([[5]])
    assert "E" in tela("route", "--router", router, "--policy", "tiers", "What is 2 + 2?").stdout
    report = tela_json("eval", "--router", router, "--data", data["heldout"], "-o", tmp_path / "ev", "--json")
    apgr = {r["name"]: r["apgr"] for r in report["routers"]}
    assert apgr["ngram"] > apgr["random"], apgr  # 0.594 vs 0.491 when written
    from tela_core import Router

    assert Router.load(router).scorer.formatter.options.max_chars == 300  # scored as it was trained


def test_acme_summary_reads_a_router_without_loading_it(tfidf_router):
    info = tela_json("acme", "summary", "--json", tfidf_router)
    assert (info["family"], info["family_plugin"], info["weak"], info["strong"]) == (
        "acme-tfidf",
        "acme",
        MIXTRAL,
        GPT4,
    )
    # tela run saves the operating point it chose on records the router did not train on (tela 0.2)
    assert info["policy"]["name"] == "calibrated" and info["files"] >= 4
    text = tela("acme", "summary", tfidf_router).stdout
    assert f"{tfidf_router}: family acme-tfidf (plugin acme)" in text


def test_acme_summary_of_a_folder_that_is_not_a_router(tmp_path):
    proc = tela("acme", "summary", tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1
