"""``tela zoo``: one command trains several families and writes one comparison report."""

from __future__ import annotations

import csv
import json

import pytest

from tela_core.testkit.helpers import TelaCli

WEAK, STRONG = "weak-llm", "strong-llm"


def _write_data(folder) -> None:
    folder.mkdir()
    for subject, hard in (("algebra", True), ("geography", False)):
        with open(folder / f"mmlu_{subject}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["prompt", WEAK, STRONG])
            for i in range(100):
                q = (
                    f"Solve for x: {i}x + {i + 3} = {2 * i + 7}. Give x to 3 decimals."
                    if hard
                    else f"Which country is city number {i} in?"
                )
                weak_ok = (not hard) or i % 5 == 0
                w.writerow([f"{q}\nA. one\nB. two\nC. three\nD. four\nAnswer:", weak_ok, hard or i % 4 != 0])


pytestmark = pytest.mark.usefixtures("isolated_cache")  # every zoo embeds into a cache of its own


def test_zoo_writes_one_report(tmp_path, tela_cli: TelaCli):
    data, out = tmp_path / "data", tmp_path / "zoo"
    _write_data(data)
    args = [
        "zoo",
        "--data",
        str(data),
        "--families",
        "length,random,prompt-features,embedding-knn",
        "--set",
        "embedding-knn.k=5",
        "--output",
        str(out),
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    ]
    r = tela_cli(*args)
    assert r.exit_code == 0, r.output
    assert "zoo_cmd.py" not in r.output and "\nlength: training on 180 records\n" in r.output  # plain lines
    res = json.loads((out / "results.json").read_text())
    assert [f["family"] for f in res["families"]] == ["length", "random", "prompt-features", "embedding-knn"]
    assert [b["family"] for b in res["baselines"]] == ["random", "oracle"]
    assert (res["weak"], res["strong"]) == (WEAK, STRONG)
    knn = next(f for f in res["families"] if f["family"] == "embedding-knn")
    assert knn["options"]["k"] == 5 and knn["train_seconds"] >= 0
    oracle = res["baselines"][1]
    assert all(f["apgr"] <= oracle["apgr"] + 1e-9 for f in res["families"])
    md = (out / "report.md").read_text()
    assert "| embedding-knn |" in md and "| oracle |" in md
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for fam in ("length", "random", "prompt-features", "embedding-knn"):
        assert json.loads((out / "routers" / fam / "tela.json").read_text())["scorer"] == fam
    # a second run refuses to replace the report ...
    r2 = tela_cli(*args)
    assert r2.exit_code == 2 and "--force" in r2.output
    # ... unless asked to
    assert tela_cli(*args[:4], "length", *args[7:], "--force").exit_code == 0


def test_zoo_bad_input_is_exit_2_without_output(tmp_path, tela_cli: TelaCli):
    data, out = tmp_path / "data", tmp_path / "zoo"
    _write_data(data)
    pair = ["--weak-model", WEAK, "--strong-model", STRONG]
    r = tela_cli("zoo", "--data", data, "--families", "length,nope", "--output", out, *pair)
    assert r.exit_code == 2 and "nope" in r.output and "embedding-knn" in r.output
    r = tela_cli("zoo", "--data", data, "--families", "length", "--option", "k=3", "--output", out, *pair)
    assert r.exit_code == 2 and "FAMILY.KEY=VALUE" in r.output
    r = tela_cli("zoo", "--data", data, "--families", "length", "--protocol", "mmlu-heldout", "--output", out, *pair)
    assert r.exit_code == 2 and "held-out" in r.output
    assert not out.exists()


def test_zoo_adds_a_trained_router_artifact(tmp_path, tiny_router, tela_cli: TelaCli):
    """A backend-trained family (score-token) is compared in the same report via --router."""
    data, out = tmp_path / "data", tmp_path / "zoo"
    _write_data(data)
    router = tiny_router
    pair = ["--weak-model", WEAK, "--strong-model", STRONG]
    r = tela_cli(
        "zoo", "--data", data, "--families", "length", "--router", f"score-token={router}", "--output", out, *pair
    )
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    rows = {f["family"]: f for f in res["families"]}
    assert set(rows) == {"length", "score-token"}
    st = rows["score-token"]
    assert st["options"]["artifact"] == str(router) and st["options"]["scorer"] == "score-token"
    assert st["train_seconds"] is None and st["n_eval"] == rows["length"]["n_eval"]
    assert "score-token" in (out / "report.md").read_text()


def test_zoo_refuses_a_backend_family_and_a_missing_router(tmp_path, tela_cli: TelaCli):
    data, out = tmp_path / "data", tmp_path / "zoo"
    _write_data(data)
    pair = ["--weak-model", WEAK, "--strong-model", STRONG]
    r = tela_cli("zoo", "--data", data, "--families", "score-token", "--output", out, *pair)
    assert r.exit_code == 2 and "--router score-token=RUN_DIR" in r.output
    r = tela_cli(
        "zoo", "--data", data, "--families", "length", "--router", f"st={tmp_path / 'nothing'}", "--output", out, *pair
    )
    assert r.exit_code == 2 and "nothing" in r.output
    assert not out.exists()


def test_a_family_that_fails_leaves_no_half_written_router(tmp_path, tiny_model, tela_cli: TelaCli):
    """lm-probe asked for a layer the model lacks (the kit's tiny_model has 2): exit 2, the reason,
    and no half-written report."""
    data, out = tmp_path / "data", tmp_path / "zoo"
    _write_data(data)
    r = tela_cli(
        "zoo",
        "--data",
        data,
        "--families",
        "length,lm-probe",
        "--set",
        f"lm-probe.model={tiny_model}",
        "--set",
        "lm-probe.layer=9",
        "--output",
        out,
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    )
    assert r.exit_code == 2, r.output
    assert "has 2 layers; lm-probe asked for layer 9" in r.output
    # the zoo is built out of sight and moved into place only when whole: nothing at OUTPUT, no stage
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".zoo")] == []
