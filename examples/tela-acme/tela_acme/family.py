"""``acme-tfidf``: logistic regression on TF-IDF word n-grams of the prompt, a family that trains itself.

Topic words ("integral", "statute", "enzyme") carry most of what predicts a weak model's failures on
knowledge benchmarks; this family learns them from outcome data in seconds on a CPU, saves a
plain JSON vocabulary and an ``.npz`` of weights (no pickle), and works as an ``ensemble`` member.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Record, Scorer, Scores, TelaError
from tela_core.artifact import read_manifest, write_manifest, write_policy
from tela_core.targets import make_targets, resolve_pair

from .logistic import fit_binary, predict_binary
from .tfidf import Tfidf, load_arrays, save_arrays


class TfidfOptions(BaseModel):
    """Settings of ``acme-tfidf`` (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["weak-wrong", "gain", "label"] = Field("weak-wrong", description="What w estimates: weak-wrong | gain | label (tela_core.targets).")
    weak: Optional[str] = Field(None, description="Weak model in the outcomes (default: the data's pair).")
    strong: Optional[str] = Field(None, description="Strong model in the outcomes (default: the data's pair).")
    ngram_max: int = Field(2, ge=1, le=3, description="Longest word n-gram used as a feature.")
    min_df: int = Field(2, ge=1, description="Ignore n-grams seen in fewer training prompts.")
    max_features: int = Field(20000, ge=1, description="Keep at most this many n-grams (the most frequent).")
    C: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic regression.")


class TfidfScorer(Scorer):
    """w = logistic regression on TF-IDF word n-grams of the prompt."""

    name = "acme-tfidf"
    description = "logistic regression on TF-IDF word n-grams of the prompt; trains in seconds (tela-acme)"
    Options = TfidfOptions
    uses_backend = False

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np

        records = list(train)
        if not records:
            raise TelaError("acme-tfidf: no training records")
        o = self.options
        # The pair: this family's options win, then what tela hands over (the source's pair in
        # `tela run`/`tela zoo`, the ensemble's pair for a member), then tela's one rule.
        weak, strong = (None, None) if o.target == "label" and not any(r.outcomes for r in records) else resolve_pair(
            records, o.weak or config.get("weak"), o.strong or config.get("strong")
        )
        y, facts = make_targets(records, o.target, weak, strong)
        y = np.asarray(y, dtype=np.float64)
        self.tfidf = Tfidf.fit([r.prompt for r in records], o.ngram_max, o.min_df, o.max_features)
        X = self.tfidf.transform(r.prompt for r in records)
        self.coef, self.bias = fit_binary(X, y, o.C)
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.tfidf.save(out)
        save_arrays(out / "logistic.npz", coef=self.coef, bias=np.array([self.bias]))
        # The threshold that sends to the strong model the share of training prompts that needed it.
        w = predict_binary(X, self.coef, self.bias)
        threshold = float(np.quantile(w, 1.0 - float(np.clip(y.mean(), 0.0, 1.0))))
        write_manifest(out, scorer=self.name, scorer_options=o.model_dump(), weak=weak, strong=strong,
                       target=facts, features=len(self.tfidf.vocab), train_records=len(records))
        models = [weak, strong] if weak and strong else None
        write_policy(out, "threshold", {"threshold": threshold}, models)
        return out

    def load(self, artifact_dir: Path) -> None:
        directory = Path(artifact_dir)
        if read_manifest(directory)["scorer"] != self.name:
            raise TelaError(f"{directory}: not an acme-tfidf router")
        self.tfidf = Tfidf.load(directory)
        arrays = load_arrays(directory / "logistic.npz")
        self.coef, self.bias = arrays["coef"], float(arrays["bias"][0])
        if self.coef.shape != (len(self.tfidf.vocab),):
            raise TelaError(f"{directory}: weights do not match the vocabulary ({self.coef.shape} vs {len(self.tfidf.vocab)})")

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        w = predict_binary(self.tfidf.transform(prompts), self.coef, self.bias)
        return Scores(w=np.clip(np.asarray(w, dtype=np.float64), 0.0, 1.0))
