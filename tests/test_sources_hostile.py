"""Several sources in one run, used carelessly: the same questions in two sources, bad model maps,
weights and protocols. Each case here was a silently wrong run or a misleading message before it
was fixed. Real data: the bundled MMLU samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tela_core import Backend, hookimpl
from tela_core.data import sample_path
from tela_core.testkit.helpers import build_tiny_router, one_error_line, registered_plugin, run_cli

SAMPLE = sample_path()  # 400 training-side MMLU prompts
HELDOUT = sample_path("mmlu_heldout_sample.jsonl")  # 300 prompts of the held-out subjects
MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


class RowsBackend(Backend):
    """Writes a tiny (untrained) score-token router so the run completes: under test are the rows
    tela hands a backend (train.jsonl / eval.jsonl)."""

    name = "test-hostile-rows"
    description = "writes a tiny router"

    def train(self, job: Any) -> Path:
        tiny = build_tiny_router(job.output_dir.parent / (job.output_dir.name + "-tiny"))
        for f in Path(tiny).iterdir():
            if f.is_file() and f.name not in ("tela.json", "policy.json"):
                shutil.copy2(f, job.output_dir / f.name)
        return job.output_dir


class RowsPlugin:
    @hookimpl
    def tela_register_backends(self, register: Any) -> None:
        register(RowsBackend)


def test_a_question_in_two_sources_is_never_on_both_sides_of_the_eval_split(tmp_path: Path, tiny_model: Path) -> None:
    """The same questions in two sources (the seed's MMLU sample beside RouteLLM's MMLU outcomes share
    401 prompts): the index split held 72 of 80 eval prompts that were also training rows, so the
    eval loss was measured on trained prompts."""
    out = tmp_path / "r"
    with registered_plugin(RowsPlugin(), "hostile-rows"):
        r = run_cli(
            "run",
            "--data",
            SAMPLE,
            "--data",
            SAMPLE,
            "--data",
            HELDOUT,
            "--backend",
            "test-hostile-rows",
            "--model",
            tiny_model,
            "-o",
            out,
        )
    assert r.exit_code == 0, r.output
    train, evals = lines(out / ".tela" / "train.jsonl"), lines(out / ".tela" / "eval.jsonl")
    assert evals and not {e["prompt"] for e in evals} & {t["prompt"] for t in train}
    assert len(train) + len(evals) == 1100  # nothing dropped: the repeated prompts train
    m = json.loads((out / "tela.json").read_text())
    assert (m["data"]["train"], m["data"]["eval"]) == (len(train), len(evals))


def test_a_model_missing_from_some_records_is_named_with_the_first_record(tmp_path: Path) -> None:
    """Outcomes of 'big' on 270 of 300 records: the error said "strong model 'big' is not in the
    outcomes; models: small", which is false and sends the user looking for a typo."""
    rows = []
    for i, obj in enumerate(lines(HELDOUT)):
        obj["outcomes"] = {"small": obj["outcomes"][MIXTRAL], "big": obj["outcomes"][GPT4]}
        if i % 10 == 3:
            del obj["outcomes"]["big"]
        rows.append(json.dumps(obj))
    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(rows) + "\n", encoding="utf-8")
    first = lines(HELDOUT)[3]["id"]
    mapped = one_error_line(
        run_cli(
            "run",
            "--family",
            "length",
            "--data",
            SAMPLE,
            "--data",
            partial,
            "--set",
            "source2.models.weak=small",
            "--set",
            "source2.models.strong=big",
            "-o",
            tmp_path / "r",
        )
    )
    assert f"strong model 'big' has no outcome in 30 of 300 records (first: record {first})" in mapped
    assert "not in the outcomes" not in mapped
    assert "those records lack its outcome" in mapped and "map them" not in mapped  # no map fixes that
    alone = one_error_line(run_cli("run", "--family", "length", "--data", partial, "-o", tmp_path / "r"))
    assert f"'big' has no outcome in 30 of 300 records (first: record {first})" in alone
    assert not (tmp_path / "r").exists()


def labels_only(tmp_path: Path) -> Path:
    """The bundled sample as labels only (seed JSONL without outcomes or costs): the same prompts and labels."""
    out = tmp_path / "labels.jsonl"
    rows = [{k: v for k, v in obj.items() if k not in ("outcomes", "costs")} for obj in lines(SAMPLE)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def test_a_labels_only_source_beside_outcomes_is_named_when_the_target_needs_outcomes(tmp_path: Path) -> None:
    """The error named a record ("record high_school_chemistry/107: no outcomes") and not the file."""
    labels = labels_only(tmp_path)
    line = one_error_line(
        run_cli("run", "--family", "length", "--data", SAMPLE, "--data", labels, "-o", tmp_path / "r")
    )
    assert f"{labels} (source2): its records carry 1..5 labels only" in line
    assert "--set family.target=label" in line and "drop this source" in line
    assert not (tmp_path / "r").exists()
    line = one_error_line(run_cli("run", "--family", "length", "--data", labels, "-o", tmp_path / "r"))
    assert line.startswith(f"Error: {labels}: its records carry 1..5 labels only")


def test_the_same_prompt_and_label_with_and_without_outcomes_is_no_conflict(tmp_path: Path) -> None:
    """A labels-only copy of a source beside the source: every prompt was reported as 'conflicting',
    though every label agrees (the labels-only record just has no outcomes to compare)."""
    r = run_cli(
        "run",
        "--family",
        "length",
        "--data",
        SAMPLE,
        "--data",
        labels_only(tmp_path),
        "--set",
        "family.target=label",
        "-o",
        tmp_path / "r",
    )
    assert r.exit_code == 0, r.output
    assert "conflicting" not in r.output
    flipped = tmp_path / "flipped.jsonl"
    rows = lines(labels_only(tmp_path))[:10]
    for row in rows:
        row["messages"][-1]["content"] = "[[1]]" if "[[5]]" in row["messages"][-1]["content"] else "[[5]]"
    flipped.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    r = run_cli(
        "run",
        "--family",
        "length",
        "--data",
        SAMPLE,
        "--data",
        flipped,
        "--set",
        "family.target=label",
        "-o",
        tmp_path / "r2",
    )
    assert r.exit_code == 0, r.output
    assert "warning: 10 prompt(s) occur more than once with conflicting labels" in r.output
