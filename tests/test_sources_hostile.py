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
from tela_core.testkit.helpers import build_tiny_router, registered_plugin, run_cli

SAMPLE = sample_path()  # 400 training-side MMLU prompts
HELDOUT = sample_path("mmlu_heldout_sample.jsonl")  # 300 prompts of the held-out subjects


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
        r = run_cli("run", "--data", SAMPLE, "--data", SAMPLE, "--data", HELDOUT, "--backend", "test-hostile-rows",
                    "--model", tiny_model, "-o", out)
    assert r.exit_code == 0, r.output
    train, evals = lines(out / ".tela" / "train.jsonl"), lines(out / ".tela" / "eval.jsonl")
    assert evals and not {e["prompt"] for e in evals} & {t["prompt"] for t in train}
    assert len(train) + len(evals) == 1100  # nothing dropped: the repeated prompts train
    m = json.loads((out / "tela.json").read_text())
    assert (m["data"]["train"], m["data"]["eval"]) == (len(train), len(evals))
