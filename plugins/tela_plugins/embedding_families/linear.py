"""``embedding-linear``: logistic (or ridge, for ``gain``) regression on cached sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tela_core.models.embedders import EmbedderOptions, UsesEmbedder
from tela_core.routing.probe import LinearProbeScorer, ProbeOptions

__all__ = ["LinearScorer"]


class LinearOptions(ProbeOptions, EmbedderOptions):
    """The probe's options and the embedder's."""


class LinearScorer(UsesEmbedder, LinearProbeScorer):
    """A linear probe on sentence embeddings: w = σ(a·e + b) fitted to the target."""

    name = "embedding-linear"
    description = "logistic regression on cached prompt embeddings (any embedder)"
    Options = LinearOptions

    def features(self, prompts: Sequence[str]) -> Any:
        """Cached embeddings of ``prompts`` from the chosen embedder."""
        return self.embed(prompts)
