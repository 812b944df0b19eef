"""``lm-probe``: a logistic-regression probe on a small causal LM's hidden states.

The same probe as ``embedding-linear`` (:class:`tela_core.routing.probe.LinearProbeScorer`), but its features are the
mean-pooled hidden states of one middle layer of SmolLM2-135M-Instruct (by default) instead of a sentence embedding.
The LM is only *read*, never trained: one forward pass through its first ``layer`` blocks per prompt, cached by
content hash, so training costs one pass over the training prompts plus a few seconds of logistic regression, and a
routing decision costs one truncated forward pass.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core.data.records import Record
from tela_core.routing.probe import LinearProbeScorer, ProbeOptions
from tela_plugins.lm_probe.features import DEFAULT_LM, lm_features

__all__ = ["LmProbeScorer"]


class LmProbeOptions(ProbeOptions):
    model: str = Field(DEFAULT_LM, description="causal LM to read: an alias (smollm2-135m), a HF model dir or a .gguf")
    layer: int = Field(12, ge=0, description="decoder block whose output is pooled (0 = token embeddings)")
    max_tokens: int = Field(256, ge=8, description="keep each prompt's last N tokens")
    batch_size: int = Field(8, ge=1, description="prompts per forward pass (length-sorted)")
    C: float = Field(0.01, gt=0, description="inverse L2 strength of the logistic regression (on z-scored features)")
    max_train: int | None = Field(
        None, ge=1, description="cap on training prompts (seeded sample) to bound the LM pass"
    )
    seed: int = Field(0, description="seed of the max_train sample")


class LmProbeScorer(LinearProbeScorer):
    """w = σ(a·h + b), h = mean-pooled layer-``layer`` hidden state of a causal LM."""

    name = "lm-probe"
    description = "logistic probe on a small causal LM's mid-layer hidden states (SmolLM2-135M; cached)"
    Options = LmProbeOptions
    standardize = True

    def features(self, prompts: Sequence[str]) -> Any:
        """Mean-pooled layer-``layer`` hidden states of ``prompts`` (cached by content hash)."""
        o = self.options
        return lm_features(prompts, [o.layer], o.model, max_tokens=o.max_tokens, batch_size=o.batch_size)[o.layer]

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        self.merge_options(config)
        cap = self.options.max_train
        if cap is not None and len(train) > cap:
            train = random.Random(self.options.seed).sample(list(train), cap)
        return super().fit(train, output_dir, {})
