"""A linear probe on any prompt features: the shared part of ``embedding-linear`` and ``lm-probe``.

:class:`LinearProbeScorer` fits w = σ(a·x + b) to a family's target, where x are the features
its subclass computes for a prompt (a sentence embedding, an LM's hidden state, your own). A
subclass only implements :meth:`~LinearProbeScorer.features` and declares ``name`` and an
``Options`` with a ``C`` field; fitting, saving (``linear.json``) and scoring are here.

With more than two models in the outcomes (or ``per_model=true``) the probe also fits one head
per model, σ(a_m·x + b_m) ≈ the model's quality, each on the records that have that model's
outcome: ``score`` then fills ``Scores.quality`` for the N-model policies.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tela_core.components import LoadContext, Scores
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data
from tela_core.schema.records import Record

__all__ = ["ProbeOptions", "LinearProbeScorer"]


class ProbeOptions(TargetOptions):
    """A probe's options: the target options and the regression's strength. Subclass it to add
    what your features need (an encoder name, a layer)."""

    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    per_model: bool | None = Field(
        None,
        description="also fit one head per model (each model's predicted quality, for the N-model "
        "policies); default: when the outcomes name more than two models",
    )


class LinearProbeScorer(FamilyScorer):
    """A linear probe: w = σ(a·x + b) fitted to the target (soft targets via sample weights).

    ``Options`` is a :class:`ProbeOptions` subclass. The artifact's ``linear.json`` holds the
    coefficients for the raw features, so scoring needs no saved scaling.
    """

    #: Fit on z-scored features (then fold the scaling into the saved coefficients). Unit-norm
    #: sentence embeddings do not need it; raw LM hidden states (``lm-probe``) do.
    standardize: ClassVar[bool] = False
    Options: ClassVar[type[ProbeOptions]] = ProbeOptions
    options: ProbeOptions

    @abstractmethod
    def features(self, prompts: Sequence[str]) -> Any:
        """(n, d) feature rows of ``prompts``, the same at train and score time; a subclass
        implements it (and caches what is costly to compute)."""

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        x = np.asarray(self.features([r.prompt for r in train]), dtype=np.float64)
        mu, sd = np.zeros(x.shape[1]), np.ones(x.shape[1])
        if self.standardize:
            mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
            x = (x - mu) / sd
        self._coef, self._bias = _soft_logistic(x, data.y, ~np.isnan(data.y), self.options.C, mu, sd)
        saved: dict[str, Any] = {"coef": self._coef.tolist(), "bias": self._bias}
        self.models, self._heads = list(data.models), None
        per_model = self.options.per_model
        if data.outcomes is not None and (per_model or (per_model is None and len(data.models) > 2)):
            # one head per model on the outcomes it has (N-model records may lack some)
            assert data.observed is not None
            fitted = [
                _soft_logistic(x, data.outcomes[:, j], data.observed[:, j], self.options.C, mu, sd)
                for j in range(len(data.models))
            ]
            self._heads = (np.stack([c for c, _ in fitted]), np.array([b for _, b in fitted]))
            saved["heads"] = {
                "models": self.models,
                "coef": self._heads[0].tolist(),
                "bias": self._heads[1].tolist(),
            }
        atomic_write_json(out / "linear.json", saved)
        if self._heads is not None:
            atomic_write_json(out / "models.json", {"models": self.models, **data.meta})
        return self.finish_fit(out, len(train), data.meta)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        import numpy as np

        self.check_manifest(artifact_dir, context)
        path = Path(artifact_dir) / "linear.json"
        d = read_json(path)
        self._coef = np.asarray(artifact_field(d, path, "coef", list), dtype=np.float64)
        self._bias = float(artifact_field(d, path, "bias", (int, float)))
        self._heads, self.models = None, []
        if "heads" in d:
            h = artifact_field(d, path, "heads", dict)
            models = [str(m) for m in artifact_field(h, path, "models", list)]
            coef = np.asarray(artifact_field(h, path, "coef", list), dtype=np.float64)
            bias = np.asarray(artifact_field(h, path, "bias", list), dtype=np.float64)
            if coef.shape != (len(models), len(self._coef)) or bias.shape != (len(models),):
                raise TelaError(f"{path}: damaged router file: the heads' shapes disagree; train the router again")
            self._heads, self.models = (coef, bias), models

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        x = np.asarray(self.features(prompts), dtype=np.float64)
        w = 1.0 / (1.0 + np.exp(-(x @ self._coef + self._bias)))
        if getattr(self, "_heads", None) is None:
            return Scores(w=w)
        return Scores(w=w, quality=self._predict(x), models=tuple(self.models))

    def predict_models(self, prompts: Sequence[str]) -> Any:
        """(n, len(self.models)) each model's predicted quality (a router fitted with per-model heads)."""
        import numpy as np

        if getattr(self, "_heads", None) is None:
            raise TelaError(f"{self.name}: this router has no per-model heads (train it with per_model=true)")
        return self._predict(np.asarray(self.features(prompts), dtype=np.float64))

    def _predict(self, x: Any) -> Any:
        import numpy as np

        coef, bias = self._heads  # type: ignore[misc]
        return 1.0 / (1.0 + np.exp(-(x @ coef.T + bias)))


def _soft_logistic(x: Any, y: Any, rows: Any, C: float, mu: Any, sd: Any) -> tuple[Any, float]:
    """(coef, bias) of σ(coef·x + bias) fitted to soft targets ``y`` in [0, 1] on ``rows`` (each row
    a positive and a negative with weights y, 1 − y), for the raw (unscaled) features: the fit is on
    (x − μ)/σ, and σ(a·(x − μ)/σ + b) = σ((a/σ)·x + b − a·μ/σ)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    xr, yr = x[rows], np.asarray(y, dtype=np.float64)[rows]
    if not len(xr):
        raise TelaError("no training record has the outcome this probe learns")
    xx = np.concatenate([xr, xr])
    yy = np.concatenate([np.ones(len(xr)), np.zeros(len(xr))])
    sw = np.concatenate([yr, 1.0 - yr])
    keep = sw > 0
    if len(set(yy[keep])) < 2:  # every row the same class: a constant head at that class
        p = float(np.clip(yr.mean(), 1e-4, 1 - 1e-4))
        return np.zeros(x.shape[1]), float(np.log(p / (1 - p)))
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(xx[keep], yy[keep], sample_weight=sw[keep])
    return (clf.coef_[0] / sd).astype(np.float64), float(clf.intercept_[0] - (clf.coef_[0] * mu / sd).sum())
