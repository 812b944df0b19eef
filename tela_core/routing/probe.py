"""A linear probe on any prompt features: the shared part of ``embedding-linear`` and ``lm-probe``.

:class:`LinearProbeScorer` fits w = σ(a·x + b) to a family's target, where x are the features
its subclass computes for a prompt (a sentence embedding, an LM's hidden state, your own). A
subclass only implements :meth:`~LinearProbeScorer.features` and declares ``name`` and an
``Options`` with a ``C`` field; fitting, saving (``linear.json``) and scoring are here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from tela_core.components import LoadContext, Scores
from tela_core.infra.io import atomic_write_json
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data
from tela_core.schema.records import Record

__all__ = ["ProbeOptions", "LinearProbeScorer"]


class ProbeOptions(TargetOptions):
    """A probe's options: the target options and the regression's strength. Subclass it to add
    what your features need (an encoder name, a layer)."""

    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")


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
        from sklearn.linear_model import LogisticRegression

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        x = np.asarray(self.features([r.prompt for r in train]), dtype=np.float64)
        mu, sd = np.zeros(x.shape[1]), np.ones(x.shape[1])
        if self.standardize:
            mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
            x = (x - mu) / sd
        # Soft targets in [0, 1]: duplicate each row as a positive and a negative with weights y, 1 − y.
        xx = np.concatenate([x, x])
        yy = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
        sw = np.concatenate([data.y, 1.0 - data.y])
        keep = sw > 0
        clf = LogisticRegression(C=self.options.C, max_iter=2000)
        clf.fit(xx[keep], yy[keep], sample_weight=sw[keep])
        # σ(a·(x − μ)/σ + b) = σ((a/σ)·x + b − a·μ/σ): save coefficients for the raw features.
        self._coef = (clf.coef_[0] / sd).astype(np.float64)
        self._bias = float(clf.intercept_[0] - (clf.coef_[0] * mu / sd).sum())
        atomic_write_json(out / "linear.json", {"coef": self._coef.tolist(), "bias": self._bias})
        return self.finish_fit(out, len(train), data.meta)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        import numpy as np

        self.check_manifest(artifact_dir, context)
        path = Path(artifact_dir) / "linear.json"
        d = read_json(path)
        self._coef = np.asarray(artifact_field(d, path, "coef", list), dtype=np.float64)
        self._bias = float(artifact_field(d, path, "bias", (int, float)))

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        x = np.asarray(self.features(prompts), dtype=np.float64)
        return Scores(w=1.0 / (1.0 + np.exp(-(x @ self._coef + self._bias))))
