"""DeepSpeed configs for the training worker: tela's ZeRO-3 config, or the user's own JSON file.

Both builtin backends use them (``deepspeed-z3`` always, ``lora`` with ``deepspeed: true``); the
worker hands the config to the Trainer, which starts DeepSpeed. DeepSpeed is not imported here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tela_core.infra.errors import TelaError

__all__ = ["zero3_config", "load_ds_config"]


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
