"""``tela run --backend lora``: score-token rows train, the adapter is merged into a plain model,
alone and under DeepSpeed ZeRO-3 on 2 ranks (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train_deepspeed import base_args, check_artifact

from tela_core.testkit.helpers import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tiny_model: Path) -> dict:
    """The untrained model's score-token rows (once for the module: it never changes). Loaded here,
    where transformers built it (tiny_model): a fresh process is for what training wrote."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    emb = AutoModelForCausalLM.from_pretrained(tiny_model).get_input_embeddings().weight
    ids = [tok(f"[[{k}]]", add_special_tokens=False)["input_ids"][0] for k in range(1, 6)]
    return {"score_rows": emb[ids].tolist()}


@pytest.mark.parametrize("processes, deepspeed", [(1, False), (2, True)], ids=["alone", "zero3-2ranks"])
def test_lora_merged_artifact(tiny_model: Path, base: dict, tmp_path: Path, processes: int, deepspeed: bool) -> None:
    out = tmp_path / "lora"
    args = [a if a != "deepspeed-z3" else "lora" for a in base_args(tiny_model, out, processes)]
    # tela's CLI in this process (the ranks are launched as always), as the other LoRA run below
    res = run_cli(
        *args,
        "--set",
        "backend.r=4",
        "--set",
        "backend.alpha=8",
        "--set",
        f"backend.deepspeed={str(deepspeed).lower()}",
    )
    assert res.exit_code == 0, res.output[-3000:]
    info = check_artifact(out, processes, backend="lora")
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["backend"]["options"]["r"] == 4 and manifest["backend"]["options"]["merge"] is True
    assert manifest["backend"]["options"]["deepspeed"] is deepspeed
    # merged: a plain model, no adapter files
    assert not (out / "adapter_config.json").exists()
    # the score-token rows were trained (they differ from the base model's)
    assert info["score_rows"] != base["score_rows"]


def test_lora_unmerged_adapter_scores_like_the_merged_model(tiny_model: Path, tmp_path: Path) -> None:
    """``merge=false`` leaves a PEFT adapter; the score-token scorer loads it over the base model
    and gives the same w as the same adapter merged and saved."""
    import numpy as np

    from tela_core.routing.router import Router
    from tela_core.train import merge_adapter

    out = tmp_path / "adapter"
    args = [a if a != "deepspeed-z3" else "lora" for a in base_args(tiny_model, out, 1)]
    res = run_cli(*args, "--set", "backend.r=4", "--set", "backend.merge=false")
    assert res.exit_code == 0, res.output[-3000:]
    assert (out / "adapter_config.json").exists() and not (out / "config.json").exists()
    prompts = ["What is 2 + 2?", "Prove Fermat's last theorem for n = 3."]
    w_adapter = Router.load(out).scorer.score(prompts).w
    merged = tmp_path / "merged"
    merged.mkdir()
    for f in out.iterdir():  # tokenizer, manifest and policy; the merge writes the weights
        if f.is_file() and not f.name.startswith("adapter_"):
            (merged / f.name).write_bytes(f.read_bytes())
    merge_adapter(str(tiny_model), out, merged)
    np.testing.assert_allclose(w_adapter, Router.load(merged).scorer.score(prompts).w, atol=1e-5)
