"""Builtin plugin: the ``deepspeed-z3`` backend, a full fine-tune under DeepSpeed ZeRO-3.

The CLI process prepares the job; :func:`tela_core.train.launch_workers` starts one worker per
rank (:mod:`tela_deepspeed.worker`, TRL ``SFTTrainer``) with the ZeRO-3 config built here, or the
user's own JSON config. Weights are gathered on save, so the output dir holds consolidated HF
weights: no manual ``zero_to_fp32`` step. Works on 1..N CPU ranks (gloo) and on GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tela_core import Backend, TelaError, TrainJob, hookimpl

__all__ = ["DeepSpeedZ3Backend", "DeepSpeedOptions", "zero3_config"]


class DeepSpeedOptions(BaseModel):
    """Options of the ``deepspeed-z3`` backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    offload_optimizer: bool = False
    """Keep optimizer states in CPU memory (ZeRO-Offload)."""
    offload_params: bool = False
    """Keep parameters in CPU memory too (ZeRO-Infinity style)."""
    ds_config: Path | None = None
    """A DeepSpeed JSON config to use as is instead of the generated one ("auto" values allowed)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory (off by default: on CPU it only costs time)."""


def zero3_config(offload_optimizer: bool = False, offload_params: bool = False) -> dict[str, Any]:
    """A ZeRO-3 config whose batch sizes and optimizer follow the Trainer ("auto").

    ``stage3_gather_16bit_weights_on_model_save`` makes ``save_model`` write consolidated weights.
    With offload the default torch AdamW is kept (``zero_force_ds_cpu_optimizer: false``), which
    avoids JIT-compiling DeepSpeed's CPU Adam.
    """
    zero: dict[str, Any] = {
        "stage": 3,
        "overlap_comm": False,
        "contiguous_gradients": True,
        "stage3_gather_16bit_weights_on_model_save": True,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
    }
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }


def load_ds_config(path: Path) -> dict[str, Any]:
    """A user's DeepSpeed JSON config; a clear error if it is missing or not JSON."""
    p = Path(path)
    if not p.is_file():
        raise TelaError(f"{p}: DeepSpeed config not found")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TelaError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(cfg, dict):
        raise TelaError(f"{p}: expected a JSON object")
    cfg.setdefault("zero_force_ds_cpu_optimizer", False)
    return cfg


def worker_spec(job: TrainJob, deepspeed: dict[str, Any] | None, lora: dict[str, Any] | None) -> dict[str, Any]:
    """What :mod:`tela_deepspeed.worker` reads from ``worker.json``."""
    return {
        "model": job.model,
        "output_dir": str(job.output_dir),
        "train_file": str(job.train_file),
        "eval_file": str(job.eval_file) if job.eval_file else None,
        "trust_remote_code": job.trust_remote_code,
        "train": dict(job.config["train"]),
        "deepspeed": deepspeed,
        "lora": lora,
    }


class DeepSpeedZ3Backend(Backend):
    """Full fine-tune with DeepSpeed ZeRO-3 (optional CPU offload), consolidated weights on save."""

    name = "deepspeed-z3"
    description = "full fine-tune, DeepSpeed ZeRO-3 (CPU offload optional), N ranks, consolidated weights"
    Options = DeepSpeedOptions

    def check(self) -> None:
        """Fail before anything is written if the user's DeepSpeed config is unusable."""
        self.deepspeed_config()

    def deepspeed_config(self) -> dict[str, Any]:
        o = self.options
        if o.ds_config is not None:
            return load_ds_config(o.ds_config)
        return zero3_config(o.offload_optimizer, o.offload_params)

    def train(self, job: TrainJob) -> Path:
        from tela_core.train import launch_workers

        spec = worker_spec(job, self.deepspeed_config(), None)
        spec["train"]["gradient_checkpointing"] = self.options.gradient_checkpointing
        launch_workers(Path(job.config["run_dir"]), "tela_deepspeed.worker", spec, job.processes, job.hostfile,
                       quiet=bool(job.config.get("quiet")), nodes=job.config.get("nodes"))
        return job.output_dir


@hookimpl
def tela_register_backends(register):
    register(DeepSpeedZ3Backend)
