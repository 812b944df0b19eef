"""The training worker: one process per rank, started by the launcher (torchrun or deepspeed).

``python -m tela_core.train.worker RUN_DIR`` reads ``RUN_DIR/worker.json`` (written by a backend
with :func:`tela_core.train.worker_spec`, see :func:`tela_core.train.launch_workers`) and
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
from pathlib import Path
from typing import Any

from tela_core.infra.io import dumps_json, json_line, split_jsonl

__all__ = ["main", "last_complete_checkpoint"]


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


def main(run_dir: str) -> None:
    """Train one rank. See the module docstring for inputs and outputs."""
    die_with_parent()
    run = Path(run_dir)
    spec = json.loads((run / "worker.json").read_text(encoding="utf-8"))
    train_cfg: dict[str, Any] = spec["train"]
    ds_config: dict[str, Any] | None = spec.get("deepspeed")
    lora: dict[str, Any] | None = spec.get("lora")
    output_dir = Path(spec["output_dir"])

    if ds_config is not None:
        # accelerate 1.15 without a GPU believes there is one process: every rank would train on
        # the same batches. Building the distributed state ourselves (gloo on CPU) and telling the
        # Trainer to use it makes each rank take its own shard.
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    import torch

    if ds_config is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import accelerate

        accelerate.PartialState(backend="nccl" if torch.cuda.is_available() else "gloo")

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig

    from .tokens import add_score_tokens

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    on_gpu = torch.cuda.is_available()
    bf16 = bool(on_gpu and torch.cuda.is_bf16_supported())
    torch.manual_seed(int(train_cfg["seed"]))

    # Load before the DeepSpeed config exists: from_pretrained under an active ZeRO-3 config
    # partitions parameters at load time, and the score-token rows must be set on full tensors.
    tokenizer = AutoTokenizer.from_pretrained(spec["model"], trust_remote_code=spec.get("trust_remote_code", False))
    model: Any = AutoModelForCausalLM.from_pretrained(  # Any: PEFT may wrap it below
        spec["model"],
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation=_attn_implementation(),
        trust_remote_code=spec.get("trust_remote_code", False),
    )
    score_ids = add_score_tokens(model, tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id

    def load(path: str | None) -> Dataset | None:
        if not path:
            return None
        rows = [json.loads(line) for line in split_jsonl(Path(path).read_text(encoding="utf-8"))]
        return Dataset.from_list(
            [{"prompt": r["prompt"], "completion": r["completion"], "tela_idx": i} for i, r in enumerate(rows)]
        )

    train_ds = load(spec["train_file"])
    eval_ds = load(spec.get("eval_file"))

    if lora is not None:
        from peft import LoraConfig, get_peft_model

        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        tokens: list[int] | dict[str, list[int]] = score_ids if tied else {"embed_tokens": score_ids, "lm_head": score_ids}
        peft_config = LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            trainable_token_indices=tokens,
            task_type="CAUSAL_LM",
        )
        # Wrap now, before the DeepSpeed config exists: under an active ZeRO-3 config PEFT takes a
        # CUDA-only path to set up the trainable token rows (peft 0.21).
        model = get_peft_model(model, peft_config)

    ckpt_dir = run / "checkpoints"
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=int(train_cfg["batch_size"]),
        per_device_eval_batch_size=int(train_cfg["batch_size"]),
        gradient_accumulation_steps=int(train_cfg["grad_accum"]),
        num_train_epochs=float(train_cfg["epochs"]),
        max_steps=int(train_cfg.get("max_steps") or -1),
        learning_rate=float(train_cfg["learning_rate"]),
        warmup_steps=float(train_cfg.get("warmup_ratio", 0.0)),
        lr_scheduler_type=str(train_cfg.get("lr_scheduler", "linear")),
        weight_decay=float(train_cfg.get("weight_decay", 0.0)),
        seed=int(train_cfg["seed"]),
        max_length=int(train_cfg["max_length"]),
        completion_only_loss=True,
        padding_free=False,
        packing=False,
        remove_unused_columns=False,  # keep tela_idx, so each rank can record what it saw
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=bool(train_cfg.get("gradient_checkpointing", False)),
        logging_steps=1,
        logging_strategy="steps",
        save_strategy="steps" if int(train_cfg["save_steps"]) > 0 else "no",
        save_steps=max(1, int(train_cfg["save_steps"])),
        save_total_limit=1,
        eval_strategy="no",
        prediction_loss_only=True,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=(not on_gpu and ds_config is None),
        deepspeed=ds_config,
        accelerator_config={"use_configured_state": True} if ds_config is not None else None,
        ddp_find_unused_parameters=False,
    )

    seen: list[int] = []
    progress = run / "progress.jsonl"

    class Progress(TrainerCallback):
        """Rank 0 appends one JSON line per logged step, which the CLI turns into a progress bar."""

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            if state.is_world_process_zero:
                _append_json(progress, {"event": "begin", "step": state.global_step, "max_steps": state.max_steps, "time": time.time()})

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if state.is_world_process_zero and logs:
                _append_json(
                    progress,
                    {"event": "log", "step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                     "loss": logs.get("loss"), "time": time.time()},
                )

        def on_train_end(self, args, state, control, **kw):  # noqa: ANN001
            seen_dir = run / "seen"
            seen_dir.mkdir(exist_ok=True)
            (seen_dir / f"rank{rank}.json").write_text(dumps_json({"rank": rank, "world": world, "ids": seen}) + "\n", encoding="utf-8")

    from .loss import sft_trainer_class

    trainer_cls = sft_trainer_class()
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=[Progress()],
    )
    base_collator = trainer.data_collator

    def recording_collator(examples: list[dict[str, Any]]) -> dict[str, Any]:
        seen.extend(int(e["tela_idx"]) for e in examples)
        return base_collator([{k: v for k, v in e.items() if k in ("input_ids", "labels", "seq_lengths")} for e in examples])

    trainer.data_collator = recording_collator

    resume = last_complete_checkpoint(ckpt_dir)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.time() - t0
    metrics: dict[str, Any] = dict(result.metrics)
    if eval_ds is not None and len(eval_ds) > 0:
        metrics.update(trainer.evaluate())

    if lora is not None:
        trainer.save_model(str(run / "adapter"))
    else:
        # stage3_gather_16bit_weights_on_model_save gathers the partitions: consolidated weights.
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        record = {
            "resumed_from": resume.name if resume else None,
            "global_step": trainer.state.global_step,
            "world_size": world,
            "train_examples": len(train_ds),  # type: ignore[arg-type]  # the train file is never None
            # examples whose completion did not fit in max_length are dropped by TRL
            "train_examples_used": len(trainer.train_dataset),
            "train_seconds": train_seconds,
            "metrics": metrics,
            "finished": time.time(),
        }
        _append_json(run / "attempts.jsonl", record)
        # training is complete: a rerun (e.g. after a kill during post-processing) does not redo it
        (run / "trained.json").write_text(dumps_json(record) + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
