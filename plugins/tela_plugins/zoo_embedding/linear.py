"""``embedding-linear``: logistic (or ridge, for ``gain``) regression on cached sentence embeddings."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from pydantic import Field

from tela_core.routing.probe import LinearProbeScorer, ProbeOptions

from tela_plugins.zoo_embedding.store import embed_prompts

__all__ = ["LinearScorer"]


class LinearOptions(ProbeOptions):
    embedding_model: Optional[str] = Field(None, description="sentence encoder (default all-MiniLM-L6-v2)")


class LinearScorer(LinearProbeScorer):
    """A linear probe on sentence embeddings: w = σ(a·e + b) fitted to the target."""

    name = "embedding-linear"
    description = "logistic regression on cached MiniLM sentence embeddings"
    Options = LinearOptions

    def features(self, prompts: Sequence[str]) -> Any:
        """Cached sentence embeddings of ``prompts``."""
        return embed_prompts(prompts, self.options.embedding_model)
