"""LoRA adapters trained by the shared worker: applied to their base model and merged.

The ``lora`` backend merges an adapter into the base weights after training (``merge: true``);
the score-token family loads a ``merge: false`` artifact (the adapter alone) the same way at
inference. Both rebuild the base model exactly as the worker did (:func:`add_score_tokens`) before
the adapter is applied. torch, transformers and peft are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .tokens import add_score_tokens

__all__ = ["load_merged", "merge_adapter"]


def load_merged(
    base_model: str, adapter_dir: Path, tokenizer_dir: Path, trust_remote_code: bool = False, dtype: Any = None
) -> Any:
    """The base model with the score tokens added as the worker added them, the adapter applied and
    merged in memory. ``tokenizer_dir`` holds the trained tokenizer (with ``[[1]]``..``[[5]]``)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code
    )
    base_tok = AutoTokenizer.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    add_score_tokens(model, base_tok)
    if len(base_tok) != len(tokenizer):
        raise RuntimeError(f"tokenizer mismatch after adding score tokens: {len(base_tok)} != {len(tokenizer)}")
    model.config.pad_token_id = tokenizer.pad_token_id
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def merge_adapter(base_model: str, adapter_dir: Path, output_dir: Path, trust_remote_code: bool = False) -> None:
    """Merge the adapter into the base weights and save a plain model into ``output_dir``.

    Runs in the CLI process after the workers have exited (never in a DeepSpeed-initialised one).
    """
    load_merged(base_model, adapter_dir, output_dir, trust_remote_code).save_pretrained(str(output_dir))
