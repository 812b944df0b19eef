"""``embedding-linear``: logistic (or ridge, for ``gain``) regression on cached sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tela_core.data.records import Record
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

    def add_model(self, records: Sequence[Record], model: str, output_dir: Path) -> dict[str, Any]:
        """Fit only a new ``model``'s head from its ``records`` into ``output_dir`` (a copy of this
        router): ``tela run --add-to`` (:mod:`tela_plugins.embedding_families.extend`)."""
        from tela_plugins.embedding_families.extend import add_model_linear

        return add_model_linear(self, records, model, Path(output_dir))
