"""The five score tokens, added to a tokenizer and a model the same way in every process.

New embedding rows start from the embedding of the digit they stand for ("1".."5") rather than
at random, so every rank, every rerun and the LoRA merge step (a separate process) build the very
same base model, and training starts from distinct, meaningful rows.
"""

from __future__ import annotations

from typing import Any

from tela_core.data.prompts import SCORE_TOKENS, score_token_ids

__all__ = ["add_score_tokens"]


def add_score_tokens(model: Any, tokenizer: Any) -> list[int]:
    """Make ``[[1]]``..``[[5]]`` special tokens of ``tokenizer`` and give ``model`` rows for them.

    Returns their ids. Rows the tokenizer already had are left untouched; rows created here are set
    deterministically (see module doc). Needs a model not yet partitioned by DeepSpeed.
    """
    import torch

    vocab = tokenizer.get_vocab()
    missing = [t for t in SCORE_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": list(SCORE_TOKENS)}, replace_extra_special_tokens=False
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = score_token_ids(tokenizer)
    old_rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > old_rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new = [(k, i) for k, i in enumerate(ids, start=1) if i >= old_rows]
    if new:
        with torch.no_grad():
            layers = [model.get_input_embeddings().weight]
            out = model.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != layers[0].data_ptr():
                layers.append(out.weight)
            for weight in layers:
                mean = weight[:old_rows].mean(dim=0)
                for k, i in new:
                    digit = tokenizer(str(k), add_special_tokens=False)["input_ids"]
                    digit = [d for d in digit if d < old_rows]
                    weight[i] = weight[digit].mean(dim=0) if digit else mean
    return ids
