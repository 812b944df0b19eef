"""``ensemble``: a calibrated stack of other router families.

Member families (any registered scorer that trains through ``fit``, third-party ones included)
are first trained on all but one fold of the training *groups* (MMLU subjects when the source
sets ``Record.group``, else random folds) and scored on the held-out fold. A logistic regression
over the members' out-of-fold log-odds learns how much to trust each one — the "calibrated" in
calibrated ensemble: it is fitted on prompts of groups the members never saw, exactly the situation
at deployment on new subjects. Then every member is refitted on all the training records.

For N models, each model's predicted quality (``Scores.quality``) is the mean of the members'
that predict it (kNN, matrix-factorization, the linear heads).
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
from tela_core.routing.family import FamilyScorer, TargetOptions, read_json, train_data

__all__ = ["EnsembleScorer"]

DEFAULT_MEMBERS: list[dict[str, Any]] = [
    {"family": "embedding-knn", "options": {"k": 100}},
    {"family": "embedding-linear", "options": {}},
    {"family": "length", "options": {}},
]


class EnsembleOptions(TargetOptions):
    members: list[Any] = Field(
        default_factory=lambda: [dict(m) for m in DEFAULT_MEMBERS],
        description='member families: names, or {"family": NAME, "options": {...}}',
    )
    folds: int = Field(5, ge=2, description="group folds for the out-of-fold member scores")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the stacking regression")
    seed: int = Field(0, description="seed for assigning groups to folds")
    embedder: str | None = Field(
        None,
        description="embedder of every member that embeds prompts and names none "
        "itself (default: each member's own default, model2vec)",
    )
    embedder_options: dict[str, Any] = Field(default_factory=dict, description="options of that embedder")


def _logit(w: Any) -> Any:
    import numpy as np

    w = np.clip(np.asarray(w, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(w / (1 - w))


class EnsembleScorer(FamilyScorer):
    """Stacked families: w = σ(Σ a_i · logit(w_i) + b), weights fitted out-of-fold by group."""

    name = "ensemble"
    description = "calibrated stack of other families (logistic regression on out-of-fold scores)"
    Options = EnsembleOptions
    #: Members that embed prompts take the ensemble's ``embedder`` and are checked against it.
    uses_embedder = True

    def _members(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for m in self.options.members:
            if isinstance(m, str):
                out.append((m, {}))
            elif isinstance(m, Mapping) and "family" in m:
                out.append((str(m["family"]), dict(m.get("options") or {})))
            else:
                raise TelaError(
                    f'ensemble member {m!r}: expected a family name or {{"family": NAME, "options": {{...}}}}'
                )
        if not out:
            raise TelaError("ensemble needs at least one member family")
        return out

    def _make(self, family: str, options: dict[str, Any]) -> Any:
        """A member with the ensemble's target, if the member has that option (a third-party family
        with ``extra="forbid"`` options and no ``target`` is not handed one), then its own options."""
        from tela_core.plugins.discovery import get_registry

        reg = get_registry()
        fields = getattr(reg.get("scorer", family).Options, "model_fields", {})
        opts = {k: v for k, v in self.options.model_dump().items() if k == "target" and k in fields}
        if self.options.embedder and "embedder" in fields and "embedder" not in options:
            opts.update(embedder=self.options.embedder, embedder_options=dict(self.options.embedder_options))
        opts.update(options)
        scorer = reg.create("scorer", family, opts)
        if getattr(scorer, "uses_backend", False):
            raise TelaError(f"ensemble member {family!r} is trained by a backend; only fit() families can be members")
        return scorer

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        members = self._members()
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        y, meta = data.y, data.meta
        # One pair for every member and fold, resolved on the whole training set, and handed over
        # the way `tela run` hands it to any family: through fit()'s config.
        pair = {k: meta[k] for k in ("weak", "strong") if meta.get(k)}
        groups = [r.group for r in train]
        rng = np.random.default_rng(self.options.seed)
        if all(g is not None for g in groups) and len(set(groups)) >= self.options.folds:
            names = sorted(set(groups))  # type: ignore[arg-type]
            rng.shuffle(names)
            fold_of = {g: i % self.options.folds for i, g in enumerate(names)}
            fold = np.array([fold_of[g] for g in groups])
        else:
            fold = rng.permutation(len(train)) % self.options.folds
        oof = np.zeros((len(train), len(members)))
        scratch = out / ".folds"
        for f in range(self.options.folds):
            tr = [r for r, k in zip(train, fold) if k != f]
            va_idx = np.flatnonzero(fold == f)
            for j, (family, opts) in enumerate(members):
                s = self._make(family, opts)
                s.fit(tr, scratch / f"{f}-{j}", pair)
                oof[va_idx, j] = s.score([train[i].prompt for i in va_idx]).w
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        x = _logit(oof)
        xx = np.concatenate([x, x])
        yy = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
        sw = np.nan_to_num(np.concatenate([y, 1.0 - y]), nan=0.0)  # N-model records without the pair: left out
        keep = sw > 0
        clf = LogisticRegression(C=self.options.C, max_iter=1000)
        clf.fit(xx[keep], yy[keep], sample_weight=sw[keep])
        self._coef, self._bias = clf.coef_[0].tolist(), float(clf.intercept_[0])
        self._loaded = []
        for j, (family, opts) in enumerate(members):
            s = self._make(family, opts)
            s.fit(train, out / "members" / f"{j}-{family}", pair)
            self._loaded.append(s)
        self.models = list(data.models)
        stack = {"members": [{"family": f, "options": o} for f, o in members], "coef": self._coef, "bias": self._bias}
        if self.models:
            stack["models"] = self.models
            atomic_write_json(out / "models.json", {"models": self.models, **meta})
        atomic_write_json(out / "stack.json", stack)
        used = [s.embedder_choice()[0] for s in self._loaded if s.uses_embedder]
        extra = {"embedders": sorted(set(used))} if used else {}
        return self.finish_fit(out, len(train), {**meta, "stack_coef": self._coef, **extra})

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        from tela_core.plugins.discovery import get_registry
        from tela_core.routing.router import Router

        self.check_manifest(artifact_dir, context)
        d = read_json(Path(artifact_dir) / "stack.json")
        self._coef, self._bias = list(d["coef"]), float(d["bias"])
        self.models = [str(m) for m in d.get("models") or []]
        self._loaded = []
        for j, m in enumerate(d["members"]):
            member = Path(artifact_dir) / "members" / f"{j}-{m['family']}"
            embeds = getattr(get_registry().get("scorer", str(m["family"])), "uses_embedder", False)
            self._loaded.append(
                Router.load(
                    member, trust_remote_code=context.trust_remote_code, embedder=context.embedder if embeds else None
                ).scorer
            )
        if context.embedder is not None and not any(s.uses_embedder for s in self._loaded):
            raise TelaError(
                f"{artifact_dir}: no member of this ensemble embeds prompts, "
                f"so it cannot use embedder {context.embedder!r}"
            )

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        scores = [s.score(prompts) for s in self._loaded]
        x = np.stack([_logit(sc.w) for sc in scores], axis=1)
        w = 1.0 / (1.0 + np.exp(-(x @ np.asarray(self._coef) + self._bias)))
        quality = _mean_quality(scores, getattr(self, "models", []))
        if quality is None:
            return Scores(w=w)
        return Scores(w=w, quality=quality, models=tuple(self.models))

    def predict_models(self, prompts: Sequence[str]) -> Any:
        """(n, len(self.models)) each model's predicted quality: the mean of the members' that predict it."""
        from tela_core.infra.errors import TelaError

        q = self.score(prompts).quality
        if q is None:
            raise TelaError(f"{self.name}: no member of this ensemble predicts each model's quality")
        return q


def _mean_quality(scores: Sequence[Scores], models: Sequence[str]) -> Any:
    """Each model's predicted quality averaged over the members that predict it (kNN, MF, the
    linear heads; ``length`` predicts none); None when no member does."""
    import numpy as np

    if not models:
        return None
    total = np.zeros((len(scores[0].w), len(models)))
    count = np.zeros(len(models))
    for sc in scores:
        if sc.quality is None or not sc.models:
            continue
        cols = list(sc.models)
        for j, m in enumerate(models):
            if m in cols:
                total[:, j] += np.asarray(sc.quality)[:, cols.index(m)]
                count[j] += 1
    if not count.any():
        return None
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
