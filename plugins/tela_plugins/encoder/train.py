"""Training and scoring of ``encoder-classifier`` (imports torch and transformers)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tela_core.components import Scores
from tela_core.data.records import Record
from tela_core.infra.errors import TelaError
from tela_core.models.vector_cache import resolve_model
from tela_core.routing.targets import make_targets

__all__ = ["train_encoder", "load_encoder", "score_encoder"]


def _deepspeed_config(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec
    p = Path(spec)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TelaError(f"{p}: DeepSpeed config not found") from None
    except json.JSONDecodeError as e:
        raise TelaError(f"{p}: not a JSON DeepSpeed config: {e}") from None


def _prepare_deepspeed() -> None:
    """Make a plain single-process run (or one started by a launcher) work under DeepSpeed on CPU:
    the distributed env vars DeepSpeed expects, and accelerate told the real process group
    (otherwise accelerate 1.15 believes in one process and every rank trains the same data)."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    from accelerate import PartialState

    from tela_core.train.extensions import hold_extensions

    held = hold_extensions()  # DeepSpeed may build an op here, as the process group starts
    try:
        PartialState(backend="gloo")
    finally:
        if held is not None:
            os.close(held)


class _Dataset:
    def __init__(self, enc: dict[str, list[Any]], labels: list[Any]) -> None:
        self.enc, self.labels = enc, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.enc.items()}
        item["labels"] = self.labels[i]
        return item


def train_encoder(options: Any, records: Sequence[Record], model_dir: Path) -> dict[str, Any]:
    """Fine-tune the encoder on ``records``; save model and tokenizer to ``model_dir``."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    recs = list(records)
    if options.max_train and len(recs) > options.max_train:
        recs = random.Random(options.seed).sample(recs, options.max_train)
    y, meta = make_targets(recs, options.target, options.weak, options.strong)
    five = options.target == "label"
    base = resolve_model(options.base_model)
    tok = AutoTokenizer.from_pretrained(base)
    if five:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=5)
        labels: list[Any] = [int(r.label) - 1 for r in recs]  # type: ignore[arg-type]
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=1, problem_type="multi_label_classification"
        )
        labels = [[float(v)] for v in y]
    enc = tok([r.prompt for r in recs], truncation=True, max_length=options.max_length)
    ds = _Dataset(dict(enc), labels)
    ds_config = _deepspeed_config(options.deepspeed)
    kwargs: dict[str, Any] = {}
    if ds_config is not None:
        _prepare_deepspeed()
        kwargs.update(deepspeed=ds_config, accelerator_config={"use_configured_state": True})
    else:
        kwargs.update(use_cpu=not torch.cuda.is_available())
    scratch = model_dir.parent / ".trainer"
    args = TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        train_sampling_strategy="group_by_length",
        warmup_steps=0.06,
        weight_decay=0.01,
        seed=options.seed,
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        disable_tqdm=False,
        bf16=False,
        **kwargs,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
    result = trainer.train()
    trainer.save_model(str(model_dir))
    tok.save_pretrained(str(model_dir))
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    return {
        **meta,
        "train_records": len(recs),
        "train_loss": float(result.training_loss),
        "base_model": str(options.base_model or "all-MiniLM-L6-v2"),
        "deepspeed": ds_config is not None,
    }


def load_encoder(model_dir: Path) -> tuple[Any, Any]:
    """Load the fine-tuned classifier and its tokenizer for scoring."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (model_dir / "config.json").exists():
        raise TelaError(f"{model_dir}: no fine-tuned encoder here (config.json missing)")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(model_dir))


def score_encoder(model: Any, tok: Any, prompts: list[str], options: Any) -> Scores:
    """One forward pass per batch (prompts sorted by length to pad little)."""
    import numpy as np
    import torch

    n = len(prompts)
    if n == 0:
        return Scores(w=np.zeros(0))
    order = sorted(range(n), key=lambda i: len(prompts[i]))
    k = model.config.num_labels
    out = np.zeros((n, k))
    with torch.inference_mode():
        for s in range(0, n, options.score_batch_size):
            idx = order[s : s + options.score_batch_size]
            enc = tok(
                [prompts[i] for i in idx],
                truncation=True,
                max_length=options.max_length,
                padding=True,
                return_tensors="pt",
            )
            out[idx] = model(**enc).logits.float().numpy()
    if k == 1:
        return Scores(w=1.0 / (1.0 + np.exp(-out[:, 0])))
    p = np.exp(out - out.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return Scores(w=p[:, :3].sum(axis=1), probs=p)
