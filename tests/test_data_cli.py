"""``tela data check/sample/convert/preview`` as a user runs them, and the bundled samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tela_core.data import sample_path
from tela_core.data.sampling import MMLU_HELDOUT_SUBJECTS
from tela_core.testkit.helpers import TelaCli, needs_public_data, public_data, run_cli

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
MMLU = public_data("routellm-mmlu") or Path("routellm-mmlu")


def check_json(path: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("data", "check", path, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mmlu"
    d.mkdir()
    (d / "mmlu_anatomy.csv").write_text(
        f'prompt,{WEAK},{STRONG}\n"Bones?\nA. 206\nB. 12",True,True\nMuscles?,False,True\nNerves?,False,False\n'
    )
    (d / "mmlu_sociology.csv").write_text(f"prompt,{WEAK},{STRONG}\nSociety?,True,False\nNorms?,False,True\n")
    return d


def test_convert_round_trips_through_check(csv_folder: Path, tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "seed.jsonl"
    result = tela_cli("data", "convert", csv_folder, out)
    assert result.exit_code == 0, result.output
    assert "wrote 5 records (routellm-csv)" in result.output
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) == {"messages", "prompt", "outcomes", "group", "id"}
    assert first["prompt"] == "Bones?\nA. 206\nB. 12"
    assert first["messages"][-1] == {"role": "assistant", "content": "[[5]]"}
    original = check_json(csv_folder)
    converted = check_json(out)
    assert original["source"] == "routellm-csv" and converted["source"] == "jsonl"
    for key in ("records", "labels", "groups", "models"):
        assert converted[key] == original[key], key
    assert converted["labels"] == {"1": 2, "2": 0, "3": 1, "4": 0, "5": 2}
    assert converted["models"][WEAK]["mean_outcome"] == pytest.approx(2 / 5)


def test_convert_pair_options_and_refusals(csv_folder: Path, tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "seed.jsonl"
    assert tela_cli("data", "convert", csv_folder, out, "--weak-model", STRONG, "--strong-model", WEAK).exit_code == 0
    labels = [json.loads(x)["messages"][-1]["content"] for x in out.read_text().splitlines()]
    assert labels == ["[[5]]", "[[5]]", "[[3]]", "[[1]]", "[[5]]"]
    before = out.read_bytes()
    refused = tela_cli("data", "convert", csv_folder, out)
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.output
    assert out.read_bytes() == before
    assert tela_cli("data", "convert", csv_folder, out, "--force").exit_code == 0
    assert out.read_bytes() != before
    bad_model = tela_cli("data", "convert", csv_folder, tmp_path / "x.jsonl", "--weak-model", "nope")
    assert bad_model.exit_code == 2 and "weak model 'nope' is not in the data; models:" in bad_model.output
    assert not (tmp_path / "x.jsonl").exists()


def test_unknown_source_and_formatter_list_registered(csv_folder: Path, tmp_path: Path, tela_cli: TelaCli) -> None:
    r = tela_cli("data", "convert", "--source", "nope", csv_folder, tmp_path / "o.jsonl")
    assert r.exit_code == 2 and "unknown source 'nope'" in r.output and "routellm-csv" in r.output
    assert not (tmp_path / "o.jsonl").exists()
    r = tela_cli("data", "preview", "--formatter", "nope", sample_path())
    assert r.exit_code == 2 and "unknown formatter 'nope'" in r.output and "role-prefix" in r.output


def test_check_prints_histogram_and_model_accuracy(csv_folder: Path, tela_cli: TelaCli) -> None:
    r = tela_cli("data", "check", csv_folder)
    assert r.exit_code == 0, r.output
    assert "5 records" in r.output and "[[5]]" in r.output and "40.0%" in r.output
    assert "gpt-4-1106-preview (strong)" in r.output


def test_preview_shows_the_training_text(tmp_path: Path, tela_cli: TelaCli) -> None:
    r = tela_cli("data", "preview", "--formatter", "role-prefix", sample_path(), "--n", "2")
    assert r.exit_code == 0, r.output
    assert r.output.count("SYSTEM:\n[Instruction]") == 2
    assert "USER:\n[Question]\n" in r.output and "\n\nPrediction:\n\n\nASSISTANT:\n[[" in r.output
    r = tela_cli("data", "preview", "--formatter", "chat-template", sample_path())
    assert r.exit_code == 2 and "needs a tokenizer" in r.output


def test_bundled_samples_follow_the_mmlu_protocol() -> None:
    train = check_json(sample_path())
    held = check_json(sample_path("mmlu_heldout_sample.jsonl"))
    assert train["records"] == 400 and train["groups"] == 42
    assert held["records"] == 300 and held["groups"] == 15
    train_lines = [json.loads(x) for x in sample_path().read_text(encoding="utf-8").splitlines()]
    held_lines = [
        json.loads(x) for x in sample_path("mmlu_heldout_sample.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert not {x["group"] for x in train_lines} & set(MMLU_HELDOUT_SUBJECTS)
    assert {x["group"] for x in held_lines} <= set(MMLU_HELDOUT_SUBJECTS)
    assert not {x["prompt"] for x in train_lines} & {x["prompt"] for x in held_lines}
    assert all(set(x["outcomes"]) == {WEAK, STRONG} for x in train_lines + held_lines)


@needs_public_data("routellm-mmlu")
def test_bundled_samples_are_reproducible(tmp_path: Path) -> None:
    from tela_core.data.make_sample import build

    build(MMLU, tmp_path)
    for name in ("mmlu_sample.jsonl", "mmlu_heldout_sample.jsonl"):
        assert (tmp_path / name).read_bytes() == sample_path(name).read_bytes(), name
    contaminated = {
        json.loads(x)["eval_prompt"] for x in (MMLU / "contaminated_prompts.jsonl").read_text().splitlines()
    }
    assert not contaminated & {json.loads(x)["prompt"] for x in sample_path().read_text().splitlines()}
