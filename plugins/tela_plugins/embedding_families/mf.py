"""``matrix-factorization``: RouteLLM's MF idea on cached sentence embeddings.

Each model m has a learnt vector v_m; a prompt embedding e is projected to the same space by a
learnt matrix W. The model's predicted log-odds of answering well is ``v_m · (W e) + b_m``, fitted
to every model's outcomes at once (so N models share one projection, which is the point of the
factorisation: what makes a prompt hard is mostly shared across models). ``score`` gives every
model's predicted quality (``Scores.quality``) for the N-model policies; N-model records that lack
some models' outcomes are valid training data (the missing ones are left out of the loss).
Two-model routing reads w from the weak and strong models' predictions (see ``target``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core.components import LoadContext, Scores
from tela_core.data.records import Record
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.models.embedders import EmbedderOptions, UsesEmbedder
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data
from tela_plugins.embedding_families.store import load_npz, save_npz, w_from_model_probs

__all__ = ["MatrixFactorizationScorer"]


class MFOptions(TargetOptions, EmbedderOptions):
    dim: int = Field(64, ge=1, description="size of the shared prompt/model space")
    epochs: int = Field(200, ge=1, description="full-batch Adam steps")
    lr: float = Field(0.01, gt=0, description="Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="L2 on all parameters")
    seed: int = Field(0, description="torch seed for the initialisation")


class MatrixFactorizationScorer(UsesEmbedder, FamilyScorer):
    """Low-rank model × prompt interaction over sentence embeddings, one logistic head per model."""

    name = "matrix-factorization"
    description = "RouteLLM-style MF: model vectors · projected prompt embedding, per-model P(correct)"
    Options = MFOptions

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import torch

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        if data.outcomes is None or not data.models:
            raise TelaError("matrix-factorization needs per-model outcomes (an outcome data source)")
        x = torch.tensor(self.embed([r.prompt for r in train]), dtype=torch.float32)
        o = torch.tensor(data.outcomes, dtype=torch.float32)
        g = torch.Generator().manual_seed(self.options.seed)
        d, m, k = x.shape[1], o.shape[1], self.options.dim
        W = (torch.randn(d, k, generator=g) / d**0.5).requires_grad_()
        V = (torch.randn(m, k, generator=g) / k**0.5).requires_grad_()
        full = data.observed is None or bool(data.observed.all())
        mask = None if full else torch.tensor(data.observed, dtype=torch.float32)
        # a model's prior log-odds from the outcomes it has (N-model records may lack some)
        prior = (o.mean(0) if mask is None else (o * mask).sum(0) / mask.sum(0).clamp(min=1)).clamp(1e-3, 1 - 1e-3)
        b = torch.log(prior / (1 - prior)).clone().requires_grad_()
        opt = torch.optim.Adam([W, V, b], lr=self.options.lr, weight_decay=self.options.weight_decay)
        lossf = torch.nn.BCEWithLogitsLoss(reduction="mean" if mask is None else "none")
        for _ in range(self.options.epochs):
            opt.zero_grad()
            loss = lossf((x @ W) @ V.T + b, o)
            if mask is not None:  # missing outcomes are left out of the loss
                loss = (loss * mask).sum() / mask.sum()
            loss.backward()
            opt.step()
        self._W, self._V, self._b = W.detach().numpy(), V.detach().numpy(), b.detach().numpy()
        self.models, self._meta = data.models, data.meta
        save_npz(out / "mf.npz", W=self._W, V=self._V, b=self._b)
        atomic_write_json(out / "models.json", {"models": data.models, **data.meta})
        return self.finish_fit(out, len(train), {**data.meta, "final_loss": float(loss.item())})

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir, context)
        z = load_npz(Path(artifact_dir) / "mf.npz", expect=("W", "V", "b"))
        self._W, self._V, self._b = z["W"], z["V"], z["b"]
        info_path = Path(artifact_dir) / "models.json"
        self._meta = read_json(info_path)
        self.models = [str(m) for m in artifact_field(self._meta, info_path, "models", list)]

    def add_model(self, records: Sequence[Record], model: str, output_dir: Path) -> dict[str, Any]:
        """Fit only what a new ``model`` needs from its ``records`` into ``output_dir`` (a copy of
        this router): ``tela run --add-to`` (:mod:`tela_plugins.embedding_families.extend`)."""
        from tela_plugins.embedding_families.extend import add_model_mf

        return add_model_mf(self, records, model, Path(output_dir))

    def predict_models(self, prompts: Sequence[str]) -> Any:
        """(n, len(self.models)) predicted P(model answers well) per prompt."""
        import numpy as np

        x = self.embed(prompts)
        z = (x @ self._W) @ self._V.T + self._b
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        p = self.predict_models(prompts)
        return Scores(w=w_from_model_probs(p, self.models, self._meta), quality=p, models=tuple(self.models))
