"""``model2vec``: static embeddings (a vector per token, averaged), model2vec's format and runtime.

By default the model is distilled from the local all-MiniLM-L6-v2 (model2vec's distillation runs
MiniLM once over each of its ~30,000 vocabulary tokens, then PCA to ``pca_dims`` and Zipf
weighting: no download, about a minute or two on a CPU) and kept in ``$TELA_CACHE/models/``;
later runs load it from there, offline, without torch. ``model`` names any other model2vec
model instead: a local folder, or a name found in the local Hugging Face cache first.

Embedding a prompt is a tokenizer pass and a mean of rows: tens of microseconds, against tens of
milliseconds for MiniLM's forward pass on a CPU, at some cost in routing quality
(docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Embedder
from tela_core.models.embedders import require

from .common import built_once, l2_normalise, local_model, minilm_path, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["Model2VecEmbedder", "distill_minilm"]

INSTALL = "pip install 'tela[model2vec]'"

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


class Model2VecOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Optional[str] = Field(None, description="a model2vec model: a local folder, or a name looked up in the local "
                                 "Hugging Face cache first (default: distilled once from the local all-MiniLM-L6-v2)")
    pca_dims: int = Field(256, ge=8, description="vector size of the distilled model (PCA of MiniLM's token vectors); "
                          "ignored with model")


def distill_minilm(source: str, folder: Path, pca_dims: int) -> None:
    """Distil a model2vec static model from the sentence-transformers model in ``source`` into
    ``folder`` (model2vec's own distillation; it needs torch, transformers and skeletoken)."""
    distill = require("model2vec.distill", "model2vec", INSTALL).distill
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        model = distill(model_name=source, pca_dims=pca_dims, device="cpu")
    model.save_pretrained(str(folder))


class Model2VecEmbedder(Embedder):
    """Static token embeddings averaged per prompt (model2vec), distilled from MiniLM by default."""

    name = "model2vec"
    description = "static embeddings (model2vec), distilled once from the local MiniLM, or a model2vec model you name"
    Options = Model2VecOptions
    install = INSTALL

    def model_folder(self) -> str:
        """The model's folder: the named one, or the distilled MiniLM (built once)."""
        require("model2vec", self.name, self.install)
        name = getattr(self.options, "model", None)
        if name:
            return local_model(str(name), "model2vec model")
        source = minilm_path()
        dims = int(getattr(self.options, "pca_dims", 256))
        tag = f"model2vec-all-MiniLM-L6-v2-{model_fingerprint(source)}-pca{dims}"
        return str(built_once(tag, lambda f: distill_minilm(source, f, dims),
                              "static embeddings distilled from all-MiniLM-L6-v2 (model2vec, ~1-2 min on a CPU)"))

    def _model(self) -> Any:
        folder = self.model_folder()
        with _LOCK:
            if folder not in _MODELS:
                from model2vec import StaticModel

                _MODELS[folder] = StaticModel.from_pretrained(folder, force_download=False)
        return _MODELS[folder]

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        out = self._model().encode(list(texts), show_progress_bar=False, use_multiprocessing=False)
        return l2_normalise(out)  # type: ignore[return-value]
