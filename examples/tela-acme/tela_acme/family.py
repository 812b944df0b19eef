"""``acme-tfidf``: logistic regression on TF-IDF word n-grams of the prompt, a family that trains itself.

Topic words ("integral", "statute", "enzyme") carry most of what predicts a weak model's failures on
knowledge benchmarks; this family learns them from outcome data in seconds on a CPU, saves a
plain JSON vocabulary and an ``.npz`` of weights (no pickle), and works as an ``ensemble`` member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core import LoadContext, Record, Scores, TelaError
from tela_core.routing.artifact import read_manifest, write_policy
from tela_core.routing.family import FamilyScorer, TargetOptions
from tela_core.routing.targets import make_targets

from .logistic import fit_binary, predict_binary
from .tfidf import Tfidf, load_arrays, save_arrays


class TfidfOptions(TargetOptions):
    """Settings of ``acme-tfidf``: ``target``, ``weak``, ``strong`` (every family's), and the features'."""

    ngram_max: int = Field(2, ge=1, le=3, description="Longest word n-gram used as a feature.")
    min_df: int = Field(2, ge=1, description="Ignore n-grams seen in fewer training prompts.")
    max_features: int = Field(20000, ge=1, description="Keep at most this many n-grams (the most frequent).")
    C: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic regression.")


class TfidfScorer(FamilyScorer):
    """w = logistic regression on TF-IDF word n-grams of the prompt."""

    name = "acme-tfidf"
    description = "logistic regression on TF-IDF word n-grams of the prompt; trains in seconds (tela-acme)"
    Options = TfidfOptions
    options: TfidfOptions

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np

        self.merge_options(config)  # the pair `tela run`, `tela zoo` or an ensemble hands over
        records = list(train)
        out = self.start_fit(records, output_dir)
        o = self.options
        y, meta = make_targets(records, o.target, o.weak, o.strong)
        y = np.asarray(y, dtype=np.float64)
        self.tfidf = Tfidf.fit([r.prompt for r in records], o.ngram_max, o.min_df, o.max_features)
        X = self.tfidf.transform(r.prompt for r in records)
        self.coef, self.bias = fit_binary(X, y, o.C)
        self.tfidf.save(out)
        save_arrays(out / "logistic.npz", coef=self.coef, bias=np.array([self.bias]))
        self.finish_fit(out, len(records), {**meta, "features": len(self.tfidf.vocab)})
        # finish_fit saved a plain threshold policy; start instead from the threshold that sends to
        # the strong model the share of training prompts that needed it.
        w = predict_binary(X, self.coef, self.bias)
        threshold = float(np.quantile(w, 1.0 - float(np.clip(y.mean(), 0.0, 1.0))))
        manifest = read_manifest(out)
        pair = [manifest["weak"], manifest["strong"]] if manifest.get("weak") and manifest.get("strong") else None
        write_policy(out, "threshold", {"threshold": threshold}, pair)
        return out

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        directory = Path(artifact_dir)
        self.check_manifest(directory)  # an acme-tfidf artifact; options restored from it
        self.tfidf = Tfidf.load(directory)
        arrays = load_arrays(directory / "logistic.npz")
        self.coef, self.bias = arrays["coef"], float(arrays["bias"][0])
        if self.coef.shape != (len(self.tfidf.vocab),):
            raise TelaError(
                f"{directory}: weights do not match the vocabulary ({self.coef.shape} vs {len(self.tfidf.vocab)})"
            )

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        w = predict_binary(self.tfidf.transform(prompts), self.coef, self.bias)
        return Scores(w=np.clip(np.asarray(w, dtype=np.float64), 0.0, 1.0))
