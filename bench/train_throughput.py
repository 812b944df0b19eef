"""Training throughput: the seed's recipe against tela's backend settings, same model, data, machine.

Both arms fine-tune the same base model (fresh copy each) on the same formatted examples from the
bundled MMLU sample (role-prefix, the seed's system prompt), with the same optimizer, learning rate
and effective batch (8), in this one process, on CPU, fp32:

- **seed**: every example padded to 2,048 tokens (``padding="max_length"``), loss on every
  non-pad token, batch 1 × gradient accumulation 8 (the seed's ``TrainingArguments``).
- **tela**: what ``tela_core.train.worker`` does: TRL ``SFTTrainer`` on prompt/completion data with
  loss on the completion only (score token + EOS), the LM head applied at those positions only
  (:mod:`tela_core.train.loss`), dynamic padding to the longest example of each batch, batch 8 ×
  accumulation 1.

DeepSpeed is left out of both arms (one process, one rank): it shards state across ranks and
does not change per-example compute, so the ratio isolates the recipe. Printed: examples/s of each
arm over its optimizer steps after the first (warm-up), the ratio, and the held-out cross-entropy of
the score token (the prediction a router makes) after each arm's training.

    .venv/bin/python bench/train_throughput.py                        # tiny Llama (fast)
    .venv/bin/python bench/train_throughput.py --model smollm2-135m --examples 16
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tela_core.data import sample_path
from tela_core.data.detect import open_source
from tela_core.models.resolve import resolve_model
from tela_core.plugins.discovery import get_registry
from tela_core.train.loss import sft_trainer_class
from tela_core.train.tokens import add_score_tokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_llama(tokenizer_dir: Path, out: Path) -> Path:
    """A randomly initialised Llama (hidden 256, 4 layers) with the given tokenizer, saved to ``out``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def examples(n_train: int, n_eval: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Formatted prompt/completion pairs (role-prefix) from the bundled sample."""
    records = list(open_source(sample_path(), "jsonl").read(sample_path()))
    fmt = get_registry().create("formatter", "role-prefix")
    rows = []
    for r in records[: n_train + n_eval]:
        f = fmt.format(r.messages)
        rows.append({"prompt": f.prompt, "completion": f.completion})
    return rows[:n_train], rows[n_train:]


def load(model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="sdpa")
    add_score_tokens(model, tok)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def _step_clock() -> Any:
    """A callback recording when each optimizer step ends; the first step (warm-up) is not timed."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            self.ends.append(time.perf_counter())

    return Clock()


def _examples_per_s(clock: Any, batch: int) -> float:
    ends = clock.ends
    if len(ends) < 2:
        raise SystemExit("need at least 2 optimizer steps per arm (--examples >= 16)")
    return (len(ends) - 1) * batch / (ends[-1] - ends[0])


def seed_arm(model_dir: Path, train: list[dict[str, Any]], out: Path, lr: float) -> tuple[Any, Any, float]:
    """The seed's recipe; returns (model, tokenizer, examples/s)."""
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model, tok = load(model_dir)

    def encode(ex: dict[str, Any]) -> dict[str, Any]:
        enc = tok(
            ex["prompt"] + ex["completion"] + tok.eos_token,
            max_length=2048,
            padding="max_length",
            truncation=True,
            add_special_tokens=False,
        )
        labels = [t if m else -100 for t, m in zip(enc["input_ids"], enc["attention_mask"])]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}

    ds = Dataset.from_list(train).map(encode, remove_columns=["prompt", "completion"])
    args = TrainingArguments(
        output_dir=str(out / "seed"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=8,
        num_train_epochs=1,
        learning_rate=lr,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=42,
        lr_scheduler_type="constant",
    )
    clock = _step_clock()
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[clock])
    trainer.train()
    del trainer
    torch.set_grad_enabled(True)
    return model, tok, _examples_per_s(clock, 8)


def tela_arm(model_dir: Path, train: list[dict[str, Any]], out: Path, lr: float) -> tuple[Any, Any, float]:
    """tela's backend settings; returns (model, tokenizer, examples/s)."""
    from datasets import Dataset
    from trl import SFTConfig

    model, tok = load(model_dir)
    args = SFTConfig(
        output_dir=str(out / "tela"),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        learning_rate=lr,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        completion_only_loss=True,
        max_length=2048,
        padding_free=False,
        packing=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=42,
        lr_scheduler_type="constant",
        shuffle_dataset=False,
    )
    clock = _step_clock()
    trainer = sft_trainer_class()(
        model=model, args=args, train_dataset=Dataset.from_list(train), processing_class=tok, callbacks=[clock]
    )
    trainer.train()
    return model, tok, _examples_per_s(clock, 8)


def score_token_loss(model: Any, tok: Any, rows: list[dict[str, Any]]) -> float:
    """Mean cross-entropy of the score token ``[[k]]`` after the prompt (full vocabulary)."""
    import torch

    model.eval()
    losses = []
    with torch.no_grad():
        for r in rows:
            ids = tok(r["prompt"], add_special_tokens=False, return_tensors="pt")["input_ids"]
            target = tok(r["completion"].strip(), add_special_tokens=False)["input_ids"][0]
            logits = model(input_ids=ids).logits[0, -1]
            losses.append(float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([target]))))
    return sum(losses) / len(losses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model", default="tiny", help="'tiny' (random Llama, SmolLM2 tokenizer), 'smollm2-135m', or a local HF dir"
    )
    ap.add_argument("--examples", type=int, default=64, help="training examples per arm (multiple of 8)")
    ap.add_argument("--eval", type=int, default=32, help="held-out examples for the score-token loss")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args()

    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if a.model == "tiny":
            model_dir = tiny_llama(resolve_model("smollm2-135m").path, tmpd / "tiny")
        else:
            model_dir = resolve_model(a.model).path
        train, held = examples(a.examples, a.eval)
        tela_model, tok, tela_eps = tela_arm(model_dir, train, tmpd, a.lr)
        tela_loss = score_token_loss(tela_model, tok, held)
        del tela_model
        seed_model, tok, seed_eps = seed_arm(model_dir, train, tmpd, a.lr)
        seed_loss = score_token_loss(seed_model, tok, held)
        lengths = [len(tok(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) for r in train]

    res = {
        "model": a.model,
        "examples": a.examples,
        "eval": a.eval,
        "threads": torch.get_num_threads(),
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "seed_examples_per_s": seed_eps,
        "tela_examples_per_s": tela_eps,
        "ratio": tela_eps / seed_eps,
        "seed_score_token_loss": seed_loss,
        "tela_score_token_loss": tela_loss,
    }
    print(
        f"model {a.model}, {a.examples} training examples per arm ({res['mean_tokens']:.0f} tokens mean, "
        f"{res['max_tokens']} max), {res['threads']} threads"
    )
    print(
        f"seed recipe (pad 2048, loss on all tokens, batch 1 x accum 8): {seed_eps:8.3f} ex/s  "
        f"score-token loss {seed_loss:.3f}"
    )
    print(
        f"tela (dynamic padding, completion-only loss, batch 8):        {tela_eps:8.3f} ex/s  "
        f"score-token loss {tela_loss:.3f}"
    )
    print(f"ratio: {res['ratio']:.1f}x")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
