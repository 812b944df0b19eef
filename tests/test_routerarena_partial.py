"""RouterArena folders whose model files cover different prompts (issue 28 item 4: a record with
some models missing is valid training data): a prompt two or more models answered is kept with the
others absent from its outcomes; a router among N models trains on all of them and keeps every
model; a router between two models trains on the prompts that have both of its pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tela_core.plugins.discovery import get_registry
from tela_core.testkit.helpers import needs_public_data, public_data, run_cli

ARENA = public_data("routerarena", "routerarena-sub10")
HAIKU, GEMINI, MID = "claude-3-haiku-20240307", "gemini-2.0-flash-001", "mid-model"


def _line(gid: str, score: float, cost: float) -> str:
    ev = {"score": score, "inference_cost": cost}
    return json.dumps({"global_index": gid, "question": f"Question {gid}?", "evaluation_result": ev})


def _folder(d: Path, files: dict[str, list[tuple[str, float]]]) -> Path:
    d.mkdir(parents=True)
    (d / "cost.json").write_text("{}", encoding="utf-8")
    for model, rows in files.items():
        text = "".join(_line(g, s, 0.001 * (i + 1)) + "\n" for i, (g, s) in enumerate(rows))
        (d / f"{model}.jsonl").write_text(text, encoding="utf-8")
    return d


def test_prompts_two_models_answered_are_kept_with_the_others_absent(tmp_path: Path) -> None:
    d = _folder(
        tmp_path / "arena",
        {
            "weakm": [("A_1", 0.0), ("A_2", 1.0), ("A_3", 0.0)],
            "midm": [("A_1", 1.0), ("A_2", 0.0), ("B_5", 1.0)],
            "strongm": [("A_1", 1.0), ("A_3", 1.0), ("B_4", 1.0)],
        },
    )
    src = get_registry().create("source", "routerarena", {"weak_model": "weakm", "strong_model": "strongm"})
    recs = {r.id: r for r in src.read(d)}
    assert sorted(recs) == ["A_1", "A_2", "A_3"]  # B_4 and B_5: one model each, nothing to compare
    assert recs["A_1"].outcomes == {"weakm": 0.0, "midm": 1.0, "strongm": 1.0}
    assert recs["A_2"].outcomes == {"weakm": 1.0, "midm": 0.0}  # strongm did not answer: absent, not 0
    assert set(recs["A_2"].costs) == {"weakm", "midm"}
    assert recs["A_3"].outcomes == {"weakm": 0.0, "strongm": 1.0}
    assert recs["A_2"].label is None and recs["A_1"].label == 1 and recs["A_3"].label == 1  # a label needs the pair
    assert src.stats == {"models": 3, "missing_some_models": 2, "skipped_answered_by_one_model": 2}


def _arena_with_a_third_model(tmp: Path, first: int = 120, n: int = 300) -> Path:
    """The public RouterArena sample's two models on its first ``n`` prompts, haiku lacking the first
    40, and a third model (its scores derived from gemini's) on the first ``first`` prompts only."""
    assert ARENA is not None
    d = tmp / "arena3"
    d.mkdir()
    (d / "cost.json").write_bytes((ARENA / "cost.json").read_bytes())
    lines = {m: (ARENA / f"{m}.jsonl").read_text(encoding="utf-8").splitlines()[:n] for m in (HAIKU, GEMINI)}
    (d / f"{HAIKU}.jsonl").write_text("\n".join(lines[HAIKU][40:]) + "\n", encoding="utf-8")
    (d / f"{GEMINI}.jsonl").write_text("\n".join(lines[GEMINI]) + "\n", encoding="utf-8")
    mid = []
    for i, line in enumerate(lines[GEMINI][:first]):
        obj: dict[str, Any] = json.loads(line)
        ev = dict(obj["evaluation_result"])
        ev["score"] = 1.0 - float(ev["score"]) if i % 3 == 0 else float(ev["score"])
        ev["inference_cost"] = 1e-5
        obj["evaluation_result"] = ev
        mid.append(json.dumps(obj))
    (d / f"{MID}.jsonl").write_text("\n".join(mid) + "\n", encoding="utf-8")
    return d


@needs_public_data("routerarena", "routerarena-sub10")
@pytest.mark.usefixtures("isolated_cache")
def test_a_router_among_n_models_trains_on_every_prompt_and_a_pair_on_those_with_both(tmp_path: Path) -> None:
    data = _arena_with_a_third_model(tmp_path)
    recs = list(get_registry().create("source", "routerarena", {}).read(data))
    assert len(recs) == 300  # the 40 haiku lacks still have gemini and the third model
    assert sum(set(r.outcomes) == {HAIKU, GEMINI, MID} for r in recs) == 80

    res = run_cli("run", "--family", "embedding-knn", "--data", data, "-o", tmp_path / "knn", "--set", "family.k=10")
    assert res.exit_code == 0, res.output
    models = json.loads((tmp_path / "knn" / "models.json").read_text())["models"]
    assert sorted(models) == sorted([HAIKU, GEMINI, MID])
    assert "300 read, 300 trained on" in res.output

    # a pair named: the prompts with both of it, and every model's outcomes still predicted
    pair = ["--set", f"family.weak={HAIKU}", "--set", f"family.strong={GEMINI}", "--set", "family.k=10"]
    res = run_cli("run", "--family", "embedding-knn", "--data", data, "-o", tmp_path / "knn2", *pair)
    assert res.exit_code == 0, res.output
    assert "40 of 300 records lack the weak or the strong model's outcome" in res.output
    models = json.loads((tmp_path / "knn2" / "models.json").read_text())["models"]
    assert sorted(models) == sorted([HAIKU, GEMINI, MID])  # the third model, missing on some, is kept

    res = run_cli("run", "--family", "length", "--data", data, "-o", tmp_path / "len")
    assert res.exit_code == 0, res.output
    assert "40 of 300 records lack the weak or the strong model's outcome" in res.output
    policy = json.loads((tmp_path / "len" / "policy.json").read_text())
    assert policy["models"] == [HAIKU, GEMINI]

    # judged on the prompts each can be judged on: the pair's, or every model's
    res = run_cli("eval", "--router", tmp_path / "len", "--data", data, "-o", tmp_path / "ev-pair")
    assert res.exit_code == 0, res.output
    notes = json.loads((tmp_path / "ev-pair" / "report.json").read_text())["source_notes"]
    assert notes["records_left_out_incomplete"] == 40
    res = run_cli("eval", "--router", tmp_path / "knn", "--data", data, "-o", tmp_path / "ev-all")
    assert res.exit_code == 0, res.output
    assert '"records_left_out_incomplete": 220' in (tmp_path / "ev-all" / "nmodel.json").read_text()


@needs_public_data("routerarena", "routerarena-sub10")
def test_the_two_model_sample_reads_as_before() -> None:
    assert ARENA is not None
    src = get_registry().create("source", "routerarena", {})
    recs = list(src.read(ARENA))
    assert len(recs) == 809 and all(set(r.outcomes) == {HAIKU, GEMINI} and r.label for r in recs)
    assert src.stats == {"models": 2, "missing_some_models": 0, "skipped_answered_by_one_model": 0}
