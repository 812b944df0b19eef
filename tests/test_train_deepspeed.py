"""End to end: ``tela run --backend deepspeed-z3`` on a tiny Llama, 1 and 2 CPU ranks (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from training_support import TrainedRun

from tela_core.data import sample_path
from tela_core.testkit.helpers import run_cli

pytestmark = pytest.mark.slow

# Loads an artifact in a fresh process (no DeepSpeed state) and reports what a user relies on.
RELOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d)
ids = {t: tok(t, add_special_tokens=False)["input_ids"] for t in ["[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]"]}
emb = model.get_input_embeddings().weight
out = model(**tok(["USER:\nhi\n\nASSISTANT:\n"], return_tensors="pt"))
print(json.dumps({"ids": ids, "special": [t in tok.all_special_tokens for t in ids], "rows": emb.shape[0],
                  "vocab": len(tok), "logits": list(out.logits.shape), "finite": bool(torch.isfinite(out.logits).all()),
                  "score_rows": emb[[v[0] for v in ids.values()]].tolist()}))
"""


def reload(artifact: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", RELOAD, str(artifact)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def base_args(model: Path, out: Path, processes: int, sample: int = 24) -> list[str]:
    return [
        "run",
        "--data",
        str(sample_path()),
        "--formatter",
        "role-prefix",
        "--backend",
        "deepspeed-z3",
        "--model",
        str(model),
        "--output",
        str(out),
        "--processes",
        str(processes),
        "--sample",
        str(sample),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "2048",
        "--learning-rate",
        "1e-3",
        "--save-steps",
        "0",
    ]


def check_artifact(out: Path, processes: int, backend: str = "deepspeed-z3") -> dict:
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["scorer"] == "score-token"
    assert manifest["formatter"] == "role-prefix"
    assert manifest["formatter_options"] == manifest["config"]["formatter_options"] == {}
    assert manifest["backend"]["name"] == backend
    assert manifest["data"]["train"] + manifest["data"]["eval"] == manifest["data"]["sample"]
    assert manifest["config"]["processes"] == processes
    assert "tela" in manifest["plugins"]
    policy = json.loads((out / "policy.json").read_text())
    # the operating point tela run chose on the held-out records (or the fixed 0.5 when none were held out)
    assert policy["name"] in ("calibrated", "threshold") and "operating_point" in policy
    # the router routes between the data's models, not placeholder names
    assert policy["models"] == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert (manifest["weak"], manifest["strong"]) == tuple(policy["models"])
    assert not (out / ".tela" / "checkpoints").exists()  # finished: resumable state cleaned up
    info = reload(out)
    assert all(len(v) == 1 for v in info["ids"].values()), info["ids"]
    assert all(info["special"])
    assert info["rows"] >= info["vocab"] and info["finite"]
    return info


def test_one_rank(trained_router: TrainedRun) -> None:
    out = trained_router.path
    assert trained_router.result.stdout.strip() == str(out)
    check_artifact(out, 1)
    # consolidated weights, not ZeRO shards: one plain safetensors file a user can load
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("global_step*")) and not (out / "zero_to_fp32.py").exists()
    attempt = json.loads((out / ".tela" / "attempts.jsonl").read_text().splitlines()[-1])
    assert attempt["world_size"] == 1 and attempt["resumed_from"] is None
    # same command again (in this process: it stops before any launch): nothing to redo, nothing changed
    args = trained_router.args[1:]
    again = run_cli(*args)
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output
    # a different config on the same dir is refused without --force
    other_args = list(args)
    other_args[other_args.index("--sample") + 1] = "20"
    other = run_cli(*other_args)
    assert other.exit_code == 2 and "different config" in other.output and "--force" in other.output, other.output


def test_two_ranks_train_on_different_examples(two_rank_router: TrainedRun) -> None:
    out = two_rank_router.path  # 24 records, all trained on: 3 steps of 2 ranks x 4
    check_artifact(out, 2)
    seen = {
        json.loads(p.read_text())["rank"]: json.loads(p.read_text())["ids"]
        for p in (out / ".tela" / "seen").glob("rank*.json")
    }
    assert sorted(seen) == [0, 1]
    n_train = json.loads((out / "tela.json").read_text())["data"]["train"]
    assert len(seen[0]) == len(seen[1]) == n_train // 2
    attempt = json.loads((out / ".tela" / "attempts.jsonl").read_text().splitlines()[-1])
    assert attempt["world_size"] == 2 and attempt["train_examples_used"] == n_train
    assert set(seen[0]).isdisjoint(seen[1])  # without the accelerate fix both ranks see the same batches
    assert set(seen[0]) | set(seen[1]) == set(range(n_train))
