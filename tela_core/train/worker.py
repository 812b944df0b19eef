"""The training worker: one process per rank, started by the launcher (torchrun or deepspeed).

``python -m tela_core.train.worker RUN_DIR`` reads ``RUN_DIR/worker.json`` (a
:class:`tela_core.train.WorkerSpec`, written by :func:`tela_core.train.run_worker`) and
fine-tunes the base model with TRL's ``SFTTrainer`` on prompt/completion JSONL: loss on the
completion only (the score token and EOS), dynamic padding to the longest example of each batch,
fp32 on CPU, bf16 on GPUs that have it. Both builtin backends run it: ``deepspeed-z3`` (a full
fine-tune under ZeRO-3) and ``lora`` (PEFT adapters, alone or under ZeRO-3).

Only the launcher imports this module (in the worker processes); the CLI process never does.

What it leaves, all under ``RUN_DIR`` unless said otherwise:
- ``checkpoints/checkpoint-N``: resumable checkpoints (a rerun continues from the newest one);
- ``progress.jsonl``: rank 0's step, loss and epoch, which the CLI turns into a progress bar;
- ``seen/rank{R}.json``: the example ids each rank trained on (proof of sharding);
- ``attempts.jsonl``: one line per finished attempt (resumed from which checkpoint, losses);
- full fine-tune: consolidated weights + tokenizer in the output dir; LoRA: the adapter in
  ``RUN_DIR/adapter`` (merged in a fresh process by the backend).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tela_core.infra.io import dumps_json, json_line, split_jsonl

from .loss import sft_trainer_class
from .spec import LoraSettings, WorkerSpec
from .tokens import add_score_tokens

__all__ = [
    "main",
    "last_complete_checkpoint",
    "sft_config",
    "ProgressLog",
    "RecordingCollator",
    "attempt_record",
    "record_attempt",
]


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` that was fully written (a kill mid-save leaves a partial one)."""
    if not ckpt_dir.is_dir():
        return None
    done = []
    for d in ckpt_dir.glob("checkpoint-*"):
        suffix = d.name.split("-", 1)[1]
        if suffix.isdigit() and (d / "trainer_state.json").is_file():
            done.append((int(suffix), d))
    return max(done)[1] if done else None


def _attn_implementation() -> str:
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _append_json(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json_line(obj, nonfinite="null") + "\n")  # a loss that went NaN is logged as null
        fh.flush()


def die_with_parent() -> None:
    """Linux: end this rank when its launcher dies (torchrun puts ranks in their own sessions, so
    killing ``tela run`` would otherwise leave them training, and writing, in the background)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:  # the launcher is already gone
        os._exit(1)


def init_distributed(spec: WorkerSpec) -> None:
    """Set up the process group this rank trains in, before anything builds a Trainer."""
    import torch

    if spec.deepspeed is not None:
        # accelerate 1.15 without a GPU believes there is one process: every rank would train on
        # the same batches. Building the distributed state ourselves (gloo on CPU) and telling the
        # Trainer to use it (``use_configured_state`` in :func:`sft_config`) makes each rank take its shard.
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    if spec.deepspeed is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import accelerate

        accelerate.PartialState(backend="nccl" if torch.cuda.is_available() else "gloo")


def load_model(spec: WorkerSpec, bf16: bool) -> tuple[Any, Any, list[int]]:
    """(tokenizer, model, score-token ids): the base model with the score tokens added.

    Called before the DeepSpeed config exists: ``from_pretrained`` under an active ZeRO-3 config
    partitions parameters at load time, and the score-token rows must be set on full tensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model, trust_remote_code=spec.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        spec.model,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation=_attn_implementation(),
        trust_remote_code=spec.trust_remote_code,
    )
    score_ids = add_score_tokens(model, tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model, score_ids


def apply_lora(model: Any, lora: LoraSettings, score_ids: list[int]) -> Any:
    """``model`` wrapped in PEFT LoRA adapters, the score-token rows of the embedding (and of an
    untied LM head) trainable too. Called before the DeepSpeed config exists: under an active
    ZeRO-3 config PEFT takes a CUDA-only path to set up the trainable token rows (peft 0.21)."""
    from peft import LoraConfig, get_peft_model

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tokens: list[int] | dict[str, list[int]] = score_ids if tied else {"embed_tokens": score_ids, "lm_head": score_ids}
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        trainable_token_indices=tokens,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_rows(path: Path | None) -> Any:
    """The prompt/completion JSONL at ``path`` as a ``datasets.Dataset`` whose rows carry their
    line index as ``tela_idx`` (None when there is no file)."""
    if path is None:
        return None
    from datasets import Dataset

    rows = [json.loads(line) for line in split_jsonl(Path(path).read_text(encoding="utf-8"))]
    return Dataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"], "tela_idx": i} for i, r in enumerate(rows)]
    )


def sft_config(spec: WorkerSpec, ckpt_dir: Path, on_gpu: bool, bf16: bool) -> Any:
    """TRL's ``SFTConfig`` for ``spec``: loss on the completion only, no packing, a checkpoint every
    ``save_steps`` (the newest kept), a log line every step, fp32 on CPU and bf16 where the GPU has it."""
    from trl import SFTConfig

    t = spec.train
    return SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        # transformers 5 reads a warmup_steps below 1 as the share of all steps (it has no warmup_ratio)
        warmup_steps=t.warmup_ratio,
        seed=t.seed,
        max_length=t.max_length,
        completion_only_loss=True,
        padding_free=False,
        packing=False,
        remove_unused_columns=False,  # keep tela_idx, so each rank can record what it saw
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=spec.gradient_checkpointing,
        logging_steps=1,
        logging_strategy="steps",
        save_strategy="steps" if t.save_steps > 0 else "no",
        save_steps=max(1, t.save_steps),
        save_total_limit=1,
        eval_strategy="no",
        prediction_loss_only=True,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=(not on_gpu and spec.deepspeed is None),
        deepspeed=spec.deepspeed,
        accelerator_config={"use_configured_state": True} if spec.deepspeed is not None else None,
        ddp_find_unused_parameters=False,
    )


class ProgressLog:
    """What the Trainer's events leave: rank 0 appends a JSON line per logged step to
    ``RUN/progress.jsonl`` (the CLI's progress bar); at the end each rank writes the example ids it
    trained on (:attr:`seen`, filled by :class:`RecordingCollator`) to ``RUN/seen/rank{R}.json``.

    The Trainer gets it as a ``TrainerCallback`` through :func:`progress_callback`."""

    def __init__(self, run: Path, rank: int, world: int) -> None:
        self.run, self.rank, self.world = run, rank, world
        self.seen: list[int] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            _append_json(
                self.run / "progress.jsonl",
                {"event": "begin", "step": state.global_step, "max_steps": state.max_steps, "time": time.time()},
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if state.is_world_process_zero and logs:
            _append_json(
                self.run / "progress.jsonl",
                {
                    "event": "log",
                    "step": state.global_step,
                    "max_steps": state.max_steps,
                    "epoch": state.epoch,
                    "loss": logs.get("loss"),
                    "time": time.time(),
                },
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        seen_dir = self.run / "seen"
        seen_dir.mkdir(exist_ok=True)
        record = {"rank": self.rank, "world": self.world, "ids": self.seen}
        (seen_dir / f"rank{self.rank}.json").write_text(dumps_json(record) + "\n", encoding="utf-8")


def progress_callback(run: Path, rank: int, world: int) -> Any:
    """A :class:`ProgressLog` that is also a ``transformers.TrainerCallback`` (whose no-op methods
    answer the events it does not handle)."""
    from transformers import TrainerCallback

    cls = type("ProgressCallback", (ProgressLog, TrainerCallback), {})
    return cls(run, rank, world)


class RecordingCollator:
    """The Trainer's collator, noting each example's ``tela_idx`` in ``seen`` on the way (proof of
    sharding) and handing on only the columns the model takes."""

    KEEP = ("input_ids", "labels", "seq_lengths")

    def __init__(self, base: Any, seen: list[int]) -> None:
        self.base, self.seen = base, seen

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        self.seen.extend(int(e["tela_idx"]) for e in examples)
        return self.base([{k: v for k, v in e.items() if k in self.KEEP} for e in examples])


def attempt_record(
    resume: Path | None, trainer: Any, world: int, train_examples: int, train_seconds: float, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The line ``attempts.jsonl`` (and ``trained.json``) gets for a finished attempt."""
    return {
        "resumed_from": resume.name if resume else None,
        "global_step": trainer.state.global_step,
        "world_size": world,
        "train_examples": train_examples,
        # examples whose completion did not fit in max_length are dropped by TRL
        "train_examples_used": len(trainer.train_dataset),
        "train_seconds": train_seconds,
        "metrics": metrics,
        "finished": time.time(),
    }


def save_weights(trainer: Any, spec: WorkerSpec, run: Path) -> None:
    """Save, from every rank, the adapter (LoRA: into ``RUN/adapter``) or the weights (a full
    fine-tune: consolidated, ``stage3_gather_16bit_weights_on_model_save``, into the output dir)."""
    trainer.save_model(str(run / "adapter" if spec.lora is not None else spec.output_dir))


def record_attempt(run: Path, record: dict[str, Any]) -> None:
    """Rank 0, once training is complete: append ``record`` to ``attempts.jsonl`` and write
    ``trained.json``, so a rerun (after a kill during post-processing, say) does not train again."""
    _append_json(run / "attempts.jsonl", record)
    (run / "trained.json").write_text(dumps_json(record) + "\n", encoding="utf-8")


def main(run_dir: str) -> None:
    """Train one rank. See the module docstring for inputs and outputs."""
    die_with_parent()
    run = Path(run_dir)
    spec = WorkerSpec.read(run)
    init_distributed(spec)
    import torch

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    on_gpu = torch.cuda.is_available()
    bf16 = bool(on_gpu and torch.cuda.is_bf16_supported())
    torch.manual_seed(spec.train.seed)
    tokenizer, model, score_ids = load_model(spec, bf16)
    if spec.lora is not None:
        model = apply_lora(model, spec.lora, score_ids)
    train_ds, eval_ds = load_rows(spec.train_file), load_rows(spec.eval_file)
    ckpt_dir = run / "checkpoints"
    progress = progress_callback(run, rank, world)

    trainer = sft_trainer_class()(
        model=model,
        args=sft_config(spec, ckpt_dir, on_gpu, bf16),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=[progress],
    )
    trainer.data_collator = RecordingCollator(trainer.data_collator, progress.seen)
    resume = last_complete_checkpoint(ckpt_dir)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.time() - t0
    metrics: dict[str, Any] = dict(result.metrics)
    if eval_ds is not None and len(eval_ds) > 0:
        metrics.update(trainer.evaluate())
    save_weights(trainer, spec, run)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(spec.output_dir))
        record_attempt(run, attempt_record(resume, trainer, world, len(train_ds), train_seconds, metrics))


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
