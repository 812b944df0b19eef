"""``prompt-features``: a logistic regression on cheap, readable features of the prompt text.

The features are the kind of thing that makes a multiple-choice question hard for a mid-size model
and that a sentence embedding blurs: length of the question and of its options, digits and maths
symbols (calculation), negations ("NOT", "EXCEPT"), Roman-numeral combination answers ("I and III
only"), quoted passages, and the like. Cheap (no model), so it is a useful ensemble member.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core.components import LoadContext, Scores
from tela_core.data.records import Record
from tela_core.infra.io import atomic_write_json
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data

__all__ = ["FeaturesScorer", "prompt_features", "FEATURE_NAMES"]

_OPTION = re.compile(r"^\s*([A-H])[.)]\s*(.*)$", re.M)
_NEG = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE|incorrect|not true)\b")
_ROMAN = re.compile(r"\b(I{1,3}|IV|V)\b( and | only|,)")
_MATH = re.compile(r"[=+*/^√∫∑<>]|\\frac|\d+\s*[x×]\s*\d+")
_NUM = re.compile(r"\d+(?:\.\d+)?")

FEATURE_NAMES = [
    "log_chars",
    "log_words",
    "log_question_chars",
    "log_mean_option_chars",
    "option_len_cv",
    "digit_frac",
    "n_numbers",
    "math_symbols",
    "negation",
    "roman_combo",
    "numeric_options",
    "all_none_above",
    "has_passage",
    "question_mark",
    "upper_frac",
    "n_lines",
]


def prompt_features(prompt: str) -> list[float]:
    """The feature vector of one prompt, in :data:`FEATURE_NAMES` order."""
    text = prompt
    opts = [m.group(2).strip() for m in _OPTION.finditer(text)]
    first = _OPTION.search(text)
    question = text[: first.start()] if first else text
    olens = [len(o) for o in opts] or [0]
    mean_o = sum(olens) / len(olens)
    sd_o = math.sqrt(sum((x - mean_o) ** 2 for x in olens) / len(olens))
    n = max(len(text), 1)
    numeric_opts = sum(
        1 for o in opts if _NUM.fullmatch(o.replace(",", "").replace("$", "").replace("%", "").strip() or "x")
    )
    return [
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        math.log1p(len(question)),
        math.log1p(mean_o),
        sd_o / (mean_o + 1.0),
        sum(c.isdigit() for c in text) / n,
        math.log1p(len(_NUM.findall(text))),
        math.log1p(len(_MATH.findall(text))),
        float(bool(_NEG.search(question))),
        float(bool(_ROMAN.search(text))),
        numeric_opts / max(len(opts), 1),
        float(bool(re.search(r"(all|none) of the above", text, re.I))),
        float(len(question) > 600),
        float("?" in question),
        sum(c.isupper() for c in text) / n,
        math.log1p(text.count("\n")),
    ]


class FeaturesOptions(TargetOptions):
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")


class FeaturesScorer(FamilyScorer):
    """w = σ(a · standardised features + b), fitted to the target."""

    name = "prompt-features"
    description = "logistic regression on readable prompt features (length, digits, negation, ...)"
    Options = FeaturesOptions

    def _x(self, prompts: Sequence[str]) -> Any:
        import numpy as np

        return np.array([prompt_features(p) for p in prompts], dtype=np.float64)

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        data = train_data(train, self.options.target, self.options.weak, self.options.strong)
        y = np.nan_to_num(data.y, nan=-1.0)  # N-model records without the pair's outcomes: weight 0 below
        meta = data.meta if data.nmodel else {k: v for k, v in data.meta.items() if k != "models"}
        x = self._x([r.prompt for r in train])
        self._mu, self._sd = x.mean(0), x.std(0) + 1e-9
        z = (x - self._mu) / self._sd
        zz = np.concatenate([z, z])
        yy = np.concatenate([np.ones(len(z)), np.zeros(len(z))])
        sw = np.concatenate([y, 1.0 - y])
        keep = (sw > 0) & np.concatenate([y >= 0, y >= 0])
        clf = LogisticRegression(C=self.options.C, max_iter=2000).fit(zz[keep], yy[keep], sample_weight=sw[keep])
        self._coef, self._bias = clf.coef_[0], float(clf.intercept_[0])
        atomic_write_json(
            out / "features.json",
            {
                "names": FEATURE_NAMES,
                "mean": self._mu.tolist(),
                "std": self._sd.tolist(),
                "coef": self._coef.tolist(),
                "bias": self._bias,
            },
        )
        return self.finish_fit(out, len(train), meta)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        import numpy as np

        self.check_manifest(artifact_dir, context)
        path = Path(artifact_dir) / "features.json"
        d = read_json(path)
        self._mu, self._sd = (np.asarray(artifact_field(d, path, k, list), dtype=np.float64) for k in ("mean", "std"))
        self._coef = np.asarray(artifact_field(d, path, "coef", list), dtype=np.float64)
        self._bias = float(artifact_field(d, path, "bias", (int, float)))

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        if not len(prompts):
            return Scores(w=np.zeros(0))
        z = (self._x(prompts) - self._mu) / self._sd
        return Scores(w=1.0 / (1.0 + np.exp(-(z @ self._coef + self._bias))))
