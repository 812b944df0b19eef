"""``old-keyword``: a bag-of-words router family.

What a family must do (tela 0.1's docs/zoo.md):
1. subclass :class:`tela_core.Scorer`, set ``name``, ``description``, an ``Options`` model and
   ``uses_backend = False``;
2. ``fit(records, output_dir, config)``: learn from records (``Record.outcomes`` holds each model's
   outcome), write files plus the manifest (``write_manifest(dir, scorer=name, ...)``);
3. ``load(dir)`` and ``score(prompts) -> Scores(w=...)`` with w = P(strong model needed);
4. register the class in ``tela_register_scorers`` and declare the module as an entry point in the
   ``tela`` group (pyproject.toml).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Scorer, Scores, TelaError
from tela_core.artifact import read_manifest, write_manifest, write_policy
from tela_core.io import atomic_write_json

_WORD = re.compile(r"[a-z]{3,}")


class KeywordOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_count: int = Field(5, ge=1, description="ignore words seen in fewer training prompts")
    smoothing: float = Field(10.0, ge=0, description="pull each word's rate toward the global rate")
    weak: Optional[str] = Field(None, description="weak model (inferred when the data has two)")
    strong: Optional[str] = Field(None, description="strong model (inferred when the data has two)")


def _words(prompt: str) -> set[str]:
    return set(_WORD.findall(prompt.lower()))


class KeywordScorer(Scorer):
    """w = mean smoothed "weak model was wrong" rate of the prompt's known words."""

    name = "old-keyword"
    description = "bag-of-words rate of 'weak model wrong' (tela-old-plugin)"
    Options = KeywordOptions
    uses_backend = False

    def fit(self, train: Sequence[Any], output_dir: Path, config: Mapping[str, Any]) -> Path:
        records = list(train)
        if not records or not all(r.outcomes for r in records):
            raise TelaError("old-keyword: every training record needs outcomes")
        models = list(records[0].outcomes)
        weak, strong = self.options.weak, self.options.strong
        if not (weak and strong):
            if len(models) != 2:
                raise TelaError(f"old-keyword: set weak and strong; models: {models}")
            means = {m: sum(r.outcomes[m] for r in records) / len(records) for m in models}
            strong = max(models, key=means.__getitem__)
            weak = next(m for m in models if m != strong)
        ys = [1.0 if r.outcomes[weak] < 0.5 else 0.0 for r in records]
        prior = sum(ys) / len(ys)
        total: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        for r, y in zip(records, ys):
            for w in _words(r.prompt):
                total[w] += y
                count[w] += 1
        s = self.options.smoothing
        rates = {w: (total[w] + s * prior) / (count[w] + s) for w in count if count[w] >= self.options.min_count}
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "keywords.json", {"prior": prior, "rates": rates})
        write_manifest(out, scorer=self.name, scorer_options=self.options.model_dump(), weak=weak, strong=strong)
        write_policy(out, "threshold", {"threshold": prior}, models=[weak, strong])
        self._prior, self._rates = prior, rates
        return out

    def load(self, artifact_dir: Path) -> None:
        if read_manifest(artifact_dir)["scorer"] != self.name:
            raise TelaError(f"{artifact_dir}: not an old-keyword router")
        data = json.loads((Path(artifact_dir) / "keywords.json").read_text(encoding="utf-8"))
        self._prior, self._rates = float(data["prior"]), dict(data["rates"])

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        w = []
        for p in prompts:
            known = [self._rates[x] for x in _words(p) if x in self._rates]
            w.append(sum(known) / len(known) if known else self._prior)
        return Scores(w=np.clip(np.asarray(w, dtype=float), 0.0, 1.0))
