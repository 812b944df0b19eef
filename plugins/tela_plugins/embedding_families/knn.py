"""``embedding-knn``: w = the (similarity-weighted) mean target of the k nearest training prompts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tela_core.components import LoadContext, Scores
from tela_core.data.records import Record
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.models.embedders import EmbedderOptions, UsesEmbedder
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data
from tela_plugins.embedding_families.store import load_npz, save_npz

__all__ = ["KnnScorer"]


class KnnOptions(TargetOptions, EmbedderOptions):
    k: int = Field(50, ge=1, description="number of neighbours")
    weighting: Literal["uniform", "similarity"] = Field(
        "uniform", description="uniform | similarity (softmax of cosine / temperature)"
    )
    temperature: float = Field(0.05, gt=0, description="softmax temperature for weighting=similarity")


class KnnScorer(UsesEmbedder, FamilyScorer):
    """Nearest neighbours over cached sentence embeddings (cosine). Also predicts each model's
    accuracy on a prompt as its neighbours' mean outcome (:meth:`predict_models`), which the
    N-model cost-aware policy uses."""

    name = "embedding-knn"
    description = "kNN over cached prompt embeddings (any embedder); mean target of the k nearest prompts"
    Options = KnnOptions

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        emb = self.embed([r.prompt for r in train])
        outcomes = data.outcomes if data.outcomes is not None else np.zeros((len(train), 0))
        save_npz(
            out / "knn.npz",
            emb=emb.astype(np.float16),
            y=data.y.astype(np.float32),
            outcomes=outcomes.astype(np.float32),
        )
        atomic_write_json(out / "models.json", {"models": data.models, **data.meta})
        self._set(emb, data.y, outcomes, data.models)
        return self.finish_fit(out, len(train), data.meta)

    def _set(self, emb: Any, y: Any, outcomes: Any, models: list[str]) -> None:
        import numpy as np

        self._emb = np.asarray(emb, dtype=np.float32)
        self._y = np.asarray(y, dtype=np.float64)
        self._outcomes = np.asarray(outcomes, dtype=np.float64)
        self.models = list(models)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir, context)
        path = Path(artifact_dir) / "knn.npz"
        z = load_npz(path, expect=("emb", "y", "outcomes"))
        n = len(z["emb"])
        if z["emb"].ndim != 2 or n == 0 or z["y"].shape != (n,) or len(z["outcomes"]) != n:
            raise TelaError(
                f"{path}: damaged router file: array shapes disagree "
                f"(emb {z['emb'].shape}, y {z['y'].shape}, outcomes {z['outcomes'].shape}); train the router again"
            )
        info_path = Path(artifact_dir) / "models.json"
        models = artifact_field(read_json(info_path), info_path, "models", list)
        self._set(z["emb"], z["y"], z["outcomes"], [str(m) for m in models])

    def _neighbour_weights(self, prompts: Sequence[str]) -> tuple[Any, Any]:
        """(indices (n, k), weights (n, k) summing to 1) of each prompt's neighbours."""
        import numpy as np

        q = self.embed(prompts)
        k = min(self.options.k, len(self._emb))
        idx = np.empty((len(q), k), dtype=np.int64)
        wts = np.empty((len(q), k), dtype=np.float64)
        for s in range(0, len(q), 1024):
            sims = q[s : s + 1024] @ self._emb.T
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(sims, part, axis=1)
            if self.options.weighting == "similarity":
                z = (top - top.max(axis=1, keepdims=True)) / self.options.temperature
                w = np.exp(z)
            else:
                w = np.ones_like(top)
            idx[s : s + 1024] = part
            wts[s : s + 1024] = w / w.sum(axis=1, keepdims=True)
        return idx, wts

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        idx, wts = self._neighbour_weights(prompts)
        return Scores(w=np.clip((self._y[idx] * wts).sum(axis=1), 0.0, 1.0))

    def predict_models(self, prompts: Sequence[str]) -> Any:
        """(n, len(self.models)) predicted outcome of every model on every prompt."""
        idx, wts = self._neighbour_weights(prompts)
        return (self._outcomes[idx] * wts[..., None]).sum(axis=1)
