"""Builtin plugin: the ``deepspeed-z3`` backend, a full fine-tune under DeepSpeed ZeRO-3.

The CLI process prepares the job; :func:`tela_core.train.run_worker` starts one worker per
rank (the shared :mod:`tela_core.train.worker`, TRL ``SFTTrainer``) with tela's ZeRO-3 config
(:func:`tela_core.train.zero3_config`) or the user's own JSON config. Weights are gathered on
save, so the output dir holds consolidated HF weights: no manual ``zero_to_fp32`` step. Works on
1..N CPU ranks (gloo) and on GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tela_core import Backend, TrainJob, hookimpl
from tela_core.train import load_ds_config, run_worker, zero3_config

__all__ = ["DeepSpeedZ3Backend", "DeepSpeedOptions"]


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
        run_worker(job, deepspeed=self.deepspeed_config(), gradient_checkpointing=self.options.gradient_checkpointing)
        return job.output_dir


@hookimpl
def tela_register_backends(register):
    register(DeepSpeedZ3Backend)
