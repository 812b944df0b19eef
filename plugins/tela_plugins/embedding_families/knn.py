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


#: cosine from which a training prompt counts as the same prompt (option ``exact``)
EXACT_COSINE = 0.9995
#: most stored prompts whose neighbourhoods make the reference of ``Scores.coverage``
COVERAGE_SAMPLE = 512


class KnnOptions(TargetOptions, EmbedderOptions):
    k: int = Field(50, ge=1, description="number of neighbours")
    weighting: Literal["uniform", "similarity"] = Field(
        "uniform", description="uniform | similarity (softmax of cosine / temperature)"
    )
    temperature: float = Field(0.05, gt=0, description="softmax temperature for weighting=similarity")
    exact: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="weight of a training prompt's own outcomes when a prompt was seen (near) verbatim in "
        "training (cosine >= 0.9995), the neighbours' mean taking the rest; 0: off",
    )


class KnnScorer(UsesEmbedder, FamilyScorer):
    """Nearest neighbours over cached sentence embeddings (cosine). Also predicts each model's
    accuracy on a prompt as its neighbours' mean outcome (``Scores.quality``, :meth:`predict_models`),
    which the N-model policies use; neighbours without a model's outcome (N-model records that
    lack it) are left out of that model's mean.

    ``Scores.coverage``: how close a prompt's k neighbours are (their mean cosine), as the share of
    the stored prompts whose own k nearest other stored prompts are no closer on average (up to
    :data:`COVERAGE_SAMPLE` of them, evenly spaced, measured once when the router first scores).
    A prompt from a subject the router never saw sits near 0; a typical training-like one near the
    middle. ``tela serve``'s ``uncertainty`` shadow sampling asks about the least covered ones."""

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
        arrays = {
            "emb": emb.astype(np.float16),
            "y": data.y.astype(np.float32),
            "outcomes": outcomes.astype(np.float32),
        }
        if data.observed is not None and not data.observed.all():
            # N-model records that lack some models' outcomes (NaN y where the pair is missing)
            arrays["observed"] = data.observed
        save_npz(out / "knn.npz", **arrays)
        atomic_write_json(out / "models.json", {"models": data.models, **data.meta})
        self._set(emb, data.y, outcomes, data.models, arrays.get("observed"))
        return self.finish_fit(out, len(train), data.meta)

    def _set(self, emb: Any, y: Any, outcomes: Any, models: list[str], observed: Any = None) -> None:
        import numpy as np

        self._emb = np.asarray(emb, dtype=np.float32)
        self._y = np.asarray(y, dtype=np.float64)
        self._outcomes = np.asarray(outcomes, dtype=np.float64)
        self._observed = None if observed is None else np.asarray(observed, dtype=bool)
        self.models = list(models)
        self._coverage_ref: Any = None  # measured when first needed (_coverage)

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
        observed = z.get("observed")
        if len(models) != z["outcomes"].shape[1] or (observed is not None and observed.shape != z["outcomes"].shape):
            raise TelaError(
                f"{path}: damaged router file: {len(models)} models in models.json, outcomes of "
                f"{z['outcomes'].shape[1]}; train the router again"
            )
        self._set(z["emb"], z["y"], z["outcomes"], [str(m) for m in models], observed)

    def _neighbour_weights(self, prompts: Sequence[str]) -> tuple[Any, Any]:
        """(indices (n, k), weights (n, k) summing to 1) of each prompt's neighbours."""
        idx, wts, _ = self._neighbours(prompts)
        return idx, wts

    def _neighbours(self, prompts: Sequence[str]) -> tuple[Any, Any, Any]:
        """(indices (n, k), weights (n, k) summing to 1, mean cosine (n,)) of each prompt's neighbours."""
        import numpy as np

        q = self.embed(prompts)
        k = min(self.options.k, len(self._emb))
        idx = np.empty((len(q), k), dtype=np.int64)
        wts = np.empty((len(q), k), dtype=np.float64)
        near = np.empty(len(q), dtype=np.float64)
        for s in range(0, len(q), 1024):
            sims = q[s : s + 1024] @ self._emb.T
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(sims, part, axis=1)
            near[s : s + 1024] = top.mean(axis=1)
            if self.options.weighting == "similarity":
                z = (top - top.max(axis=1, keepdims=True)) / self.options.temperature
                w = np.exp(z)
            else:
                w = np.ones_like(top)
            w = w / w.sum(axis=1, keepdims=True)
            if self.options.exact > 0:  # a prompt seen in training: its own outcomes count `exact`
                same = top >= EXACT_COSINE
                hit = same.any(axis=1)
                e = self.options.exact
                w[hit] = (1 - e) * w[hit] + e * same[hit] / same[hit].sum(axis=1, keepdims=True)
            idx[s : s + 1024] = part
            wts[s : s + 1024] = w
        return idx, wts, near

    def _coverage(self, near: Any) -> Any:
        """``Scores.coverage`` of prompts whose neighbours' mean cosine is ``near`` (class doc);
        None with fewer than two stored prompts."""
        import numpy as np

        n = len(self._emb)
        if n < 2:
            return None
        if getattr(self, "_coverage_ref", None) is None:
            k = min(self.options.k, n - 1)
            pick = np.unique(np.linspace(0, n - 1, min(COVERAGE_SAMPLE, n)).round().astype(np.int64))
            means = []
            for s in range(0, len(pick), 64):
                rows = pick[s : s + 64]
                sims = self._emb[rows] @ self._emb.T
                sims[np.arange(len(rows)), rows] = -np.inf  # a stored prompt is not its own neighbour
                means.append((-np.partition(-sims, k - 1, axis=1)[:, :k]).mean(axis=1))
            self._coverage_ref = np.sort(np.concatenate(means))
        ref = self._coverage_ref
        return np.searchsorted(ref, np.asarray(near, dtype=np.float64), side="right") / len(ref)

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        idx, wts, near = self._neighbours(prompts)
        if self._observed is None:
            w = (self._y[idx] * wts).sum(axis=1)
        else:
            w = _masked_mean(self._y[idx], ~np.isnan(self._y[idx]), wts, fallback=0.5)
        coverage = self._coverage(near)
        if not self.models or len(self.models) < 2:
            return Scores(w=np.clip(w, 0.0, 1.0), coverage=coverage)
        return Scores(
            w=np.clip(w, 0.0, 1.0), quality=self._quality(idx, wts), models=tuple(self.models), coverage=coverage
        )

    def add_model(self, records: Sequence[Record], model: str, output_dir: Path) -> dict[str, Any]:
        """Fit only what a new ``model`` needs from its ``records`` into ``output_dir`` (a copy of
        this router): ``tela run --add-to`` (:mod:`tela_plugins.embedding_families.extend`)."""
        from tela_plugins.embedding_families.extend import add_model_knn

        return add_model_knn(self, records, model, Path(output_dir))

    def predict_models(self, prompts: Sequence[str]) -> Any:
        """(n, len(self.models)) predicted outcome of every model on every prompt."""
        idx, wts = self._neighbour_weights(prompts)
        return self._quality(idx, wts)

    def _quality(self, idx: Any, wts: Any) -> Any:
        """Neighbours' weighted mean outcome of each model; with N-model records that lack some
        outcomes, the mean of the neighbours that have one (the model's training mean if none has)."""
        import numpy as np

        if self._observed is None:
            return (self._outcomes[idx] * wts[..., None]).sum(axis=1)
        obs = self._observed
        prior = (self._outcomes * obs).sum(axis=0) / np.maximum(obs.sum(axis=0), 1)
        return _masked_mean(self._outcomes[idx], obs[idx], wts[..., None], fallback=prior)


def _masked_mean(values: Any, observed: Any, wts: Any, fallback: Any) -> Any:
    """Weighted mean over axis 1 of the observed ``values`` (weights renormalised over them);
    ``fallback`` where none is observed."""
    import numpy as np

    wts = np.broadcast_to(wts, values.shape) * observed
    total = wts.sum(axis=1)
    num = (np.where(observed, values, 0.0) * wts).sum(axis=1)
    return np.where(total > 0, num / np.where(total > 0, total, 1.0), fallback)
