"""Builtin plugin: the ``lora`` backend, PEFT LoRA adapters (alone or under DeepSpeed ZeRO-3).

The score-token rows of the embedding (and of an untied LM head) train too, through PEFT's
``trainable_token_indices``: new tokens would otherwise stay at their initial values and the five
scores could not be told apart. With ``merge`` (the default) the adapter is merged into the base
weights in a fresh process after training, so the artifact loads like a full model.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tela_core import Backend, TrainJob, hookimpl
from tela_core.train import LoraSettings, merge_adapter, run_worker, zero3_config

__all__ = ["LoraBackend", "LoraOptions"]


class LoraOptions(BaseModel):
    """Options of the ``lora`` backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    r: int = Field(16, ge=1)
    """LoRA rank."""
    alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA branch."""
    target_modules: list[str] | str = "all-linear"
    """Module names to adapt, or "all-linear"."""
    merge: bool = True
    """Merge the adapter into the base weights on save (the artifact then loads like a full model)."""
    deepspeed: bool = False
    """Train under DeepSpeed ZeRO-3 (multi-rank sharding of the frozen base model)."""
    offload_optimizer: bool = False
    """With ``deepspeed``: keep optimizer states in CPU memory."""
    offload_params: bool = False
    """With ``deepspeed``: keep parameters in CPU memory."""

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: list[str] | str) -> list[str] | str:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and (not v or not all(x.strip() for x in v))):
            raise ValueError('name the modules to adapt, or "all-linear"')
        return v


class LoraBackend(Backend):
    """PEFT LoRA with trainable score-token rows; merge-and-save by default."""

    name = "lora"
    description = "PEFT LoRA (rank/alpha/dropout/targets), score-token rows trained, merged on save"
    Options = LoraOptions

    def train(self, job: TrainJob) -> Path:
        o = self.options
        ds = zero3_config(o.offload_optimizer, o.offload_params) if o.deepspeed else None
        lora = LoraSettings(r=o.r, alpha=o.alpha, dropout=o.dropout, target_modules=o.target_modules)
        result = run_worker(job, deepspeed=ds, lora=lora)
        if result.get("rank0") is False:  # multi-node: the adapter was saved on the node holding rank 0
            return job.output_dir
        assert job.run_dir is not None  # tela run sets it
        adapter = job.run_dir / "adapter"
        if o.merge:
            merge_adapter(job.model, adapter, job.output_dir, job.trust_remote_code)
        else:
            import shutil

            for f in adapter.iterdir():
                if f.is_file():
                    shutil.copy2(f, job.output_dir / f.name)
        return job.output_dir


@hookimpl
def tela_register_backends(register):
    register(LoraBackend)
