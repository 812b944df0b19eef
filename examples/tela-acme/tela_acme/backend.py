"""``acme-ngram``: a trainer backend and its family, a 1..5 score model that trains in seconds on a CPU.

``tela run --family acme-ngram --backend acme-ngram`` formats the records with the chosen formatter,
as it does for the seed's causal LM, and this backend learns the judge's score ``[[k]]`` from the
formatted prompt: a softmax regression on TF-IDF n-grams. The family then returns the 1..5
distribution and the seed's w = 1 − P([[4]]) − P([[5]]), so everything built on score routers
(``tiers``, the expected score) works with it, without a GPU or a base model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Backend, InputError, LoadContext, Scorer, Scores, TelaError, TrainJob
from tela_core.data.records import seed_record
from tela_core.infra.io import atomic_write_json
from tela_core.routing.artifact import read_manifest

from .logistic import fit_softmax, predict_softmax
from .tfidf import Tfidf, load_arrays, save_arrays

_SCORE = re.compile(r"\[\[([1-5])\]\]")


class NgramOptions(BaseModel):
    """Settings of the ``acme-ngram`` backend (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    ngram_max: int = Field(2, ge=1, le=3, description="Longest word n-gram used as a feature.")
    min_df: int = Field(2, ge=1, description="Ignore n-grams seen in fewer training examples.")
    max_features: int = Field(20000, ge=1, description="Keep at most this many n-grams (the most frequent).")
    C: float = Field(1.0, gt=0, description="Inverse L2 strength of the softmax regression.")
    max_iter: int = Field(500, ge=1, description="Most L-BFGS iterations.")


def _read_examples(path: Path) -> tuple[list[str], list[int]]:
    """The formatted prompts and their scores 1..5 from a TrainJob JSONL file."""
    prompts, scores = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                prompt, completion = obj["prompt"], obj["completion"]
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(path, lineno, f"expected a JSON object with prompt and completion ({e})") from None
            m = _SCORE.search(completion)
            if not m:
                raise InputError(
                    path,
                    lineno,
                    f"completion {completion!r} holds no score [[1]]..[[5]]; acme-ngram trains on labelled data",
                )
            prompts.append(prompt)
            scores.append(int(m.group(1)))
    if not prompts:
        raise InputError(path, None, "no training examples")
    return prompts, scores


class NgramBackend(Backend):
    """Softmax regression from n-grams of the formatted prompt to the score 1..5 (CPU, seconds)."""

    name = "acme-ngram"
    description = "softmax regression on TF-IDF n-grams of the formatted prompt -> score 1..5; CPU, seconds (tela-acme)"
    Options = NgramOptions
    options: NgramOptions  # what self.options is, for type checkers

    def train(self, job: TrainJob) -> Path:
        import numpy as np

        o = self.options
        prompts, scores = _read_examples(Path(job.train_file))
        classes = sorted(set(scores))
        if len(classes) < 2:
            raise TelaError(f"{job.train_file}: every example has score {classes[0]}; acme-ngram needs two or more")
        tfidf = Tfidf.fit(prompts, o.ngram_max, o.min_df, o.max_features)
        index = {c: i for i, c in enumerate(classes)}
        W, b = fit_softmax(
            tfidf.transform(prompts), np.array([index[s] for s in scores]), len(classes), o.C, o.max_iter
        )
        out = Path(job.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        tfidf.save(out)
        save_arrays(out / "softmax.npz", W=W, b=b, classes=np.array(classes))
        metrics: dict[str, Any] = {"train_examples": len(prompts)}
        if job.eval_file is not None and Path(job.eval_file).exists() and Path(job.eval_file).stat().st_size:
            ep, es = _read_examples(Path(job.eval_file))
            P = predict_softmax(tfidf.transform(ep), W, b)
            pred = [classes[i] for i in P.argmax(axis=1)]
            metrics.update(eval_examples=len(ep), eval_accuracy=float(np.mean([p == s for p, s in zip(pred, es)])))
        atomic_write_json(out / "metrics.json", metrics)
        # `tela run` writes tela.json after train() (scorer = --family, formatter and its options,
        # the data's pair) and a threshold policy.json between the pair's real model names.
        return out


class NgramScorer(Scorer):
    """The 1..5 score distribution of an acme-ngram model; w = P(score <= 3)."""

    name = "acme-ngram"
    description = "score 1..5 from n-grams of the formatted prompt (train with --backend acme-ngram) (tela-acme)"
    uses_backend = True

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        from tela_core.plugins import get_registry

        directory = Path(artifact_dir)
        manifest = read_manifest(directory)
        if manifest["scorer"] != self.name:
            raise TelaError(f"{directory}: not an acme-ngram router")
        # Prompts are formatted as they were for training, so training and routing cannot drift.
        self.formatter = get_registry().create(
            "formatter", manifest.get("formatter") or "role-prefix", manifest.get("formatter_options") or {}
        )
        self.tfidf = Tfidf.load(directory)
        arrays = load_arrays(directory / "softmax.npz")
        self.W, self.b, self.classes = arrays["W"], arrays["b"], [int(c) for c in arrays["classes"]]

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        texts = [self.formatter.format(seed_record(p, None).messages).prompt for p in prompts]
        P = predict_softmax(self.tfidf.transform(texts), self.W, self.b)
        probs = np.zeros((len(prompts), 5))
        probs[:, [c - 1 for c in self.classes]] = P
        return Scores(w=np.clip(probs[:, :3].sum(axis=1), 0.0, 1.0), probs=probs)
