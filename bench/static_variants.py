"""The levers of the default static embedder, measured: variants of MiniLM's static token vectors
through ``bench/default_embedder.py`` (every embedding family, MMLU / flywheel / nim9).

MiniLM is run once over its 29,525 vocabulary tokens (model2vec's distillation with no PCA and
no weighting, kept in ``$TELA_CACHE/models/``); each variant is then made from that table in
numpy, in seconds, as an in-process embedder ``static-variant`` with options:

- ``pca``: PCA to this many dimensions (centred and rotated, as model2vec's PCA), or none;
- ``centre``: subtract the token vectors' mean (with ``pca`` none; a PCA centres anyway);
- ``sif``: the SIF coefficient of the Zipf weighting a / (a + p(rank)) (none: no weighting);
- ``whiten``: partial ZCA whitening of the token vectors, each principal direction scaled by
  λ^(-whiten/2) (0: none).

``static-variant{"pca": 256, "sif": 0.0001}`` is model2vec's own distillation (the ``model2vec``
embedder's default before it became the families' default); ``static-variant{"centre": true,
"sif": 0.03}`` is the default ``model2vec`` model now (the same vectors as the real embedder,
up to float16 rounding). Arguments are ``bench/default_embedder.py``'s:

    TELA_TEST_DATA=DIR .venv/bin/python bench/static_variants.py --benchmarks mmlu \\
        --embedders 'static-variant{"pca":256,"sif":0.0001},static-variant{"centre":true,"sif":0.03}'
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import default_embedder  # noqa: E402

from tela_core import Embedder, hookimpl  # noqa: E402
from tela_plugins.embedders.common import built_once, minilm_path, model_fingerprint

_MODELS: dict[str, Any] = {}


def raw_table() -> Any:
    """MiniLM's static token vectors, no PCA, no weighting (built once)."""

    def build(folder: Path) -> None:
        from model2vec.distill import distill

        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            distill(
                model_name=source, pca_dims=None, sif_coefficient=None, quantize_to="float32", device="cpu"
            ).save_pretrained(str(folder))

    source = minilm_path()
    from model2vec import StaticModel

    return StaticModel.from_pretrained(
        str(
            built_once(
                f"model2vec-raw-all-MiniLM-L6-v2-{model_fingerprint(source)}",
                build,
                "MiniLM's raw static token vectors",
            )
        )
    )


class VariantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pca: int | None = None
    centre: bool = False
    sif: float | None = 1e-4
    whiten: float = 0.0


class StaticVariant(Embedder):
    name = "static-variant"
    description = "a variant of MiniLM's static token vectors (bench/static_variants.py)"
    Options = VariantOptions

    def _model(self) -> Any:
        key = json.dumps(self.options.model_dump(), sort_keys=True)
        if key not in _MODELS:
            from model2vec import StaticModel
            from model2vec.distill.inference import compute_weights

            raw = raw_table()
            emb = np.asarray(raw.embedding, dtype=np.float64)
            o: Any = self.options
            if o.pca:
                centred = emb - emb.mean(0)
                vals, vecs = np.linalg.eigh(centred.T @ centred / (len(emb) - 1))
                top = vecs[:, np.argsort(vals)[::-1][: o.pca]]
                emb = centred @ (top * np.sign(top[np.abs(top).argmax(0), range(top.shape[1])]))
            elif o.centre:
                emb = emb - emb.mean(0)
            if o.whiten:
                emb = emb - emb.mean(0)
                vals, vecs = np.linalg.eigh(emb.T @ emb / (len(emb) - 1))
                emb = emb @ (vecs * ((vals + 1e-6 * vals.max()) ** (-o.whiten / 2))[None, :]) @ vecs.T
            emb = emb * compute_weights(len(emb), o.sif)[:, None]
            _MODELS[key] = StaticModel(
                vectors=emb.astype(np.float16), tokenizer=raw.tokenizer, config=dict(raw.config), normalize=True
            )
        return _MODELS[key]

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.asarray(
            self._model().encode(list(texts), show_progress_bar=False, use_multiprocessing=False), dtype=np.float32
        )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class Plugin:
    @hookimpl
    def tela_register_embedders(self, register: Any) -> None:
        register(StaticVariant)


if __name__ == "__main__":
    from tela_core.testkit.helpers import registered_plugin

    with registered_plugin(Plugin(), "static-variants"):
        default_embedder.main()
