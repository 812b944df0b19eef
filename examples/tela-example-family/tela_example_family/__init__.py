"""``keyword``: a bag-of-words router family, as a third party would ship one.

What a family must do (see docs/zoo.md):
1. subclass :class:`tela_core.Scorer`, set ``name``, ``description``, an ``Options`` model and
   ``uses_backend = False``;
2. ``fit(records, output_dir, config)``: learn from records (``Record.outcomes`` holds each model's
   outcome), write files plus the manifest (``write_manifest(dir, scorer=name, ...)``);
3. ``load(dir)`` and ``score(prompts) -> Scores(w=...)`` with w = P(strong model needed);
4. register the class in ``tela_register_scorers`` and declare the module as an entry point in the
   ``tela`` group (pyproject.toml).
Only the standard library and numpy are used, so ``tela plugins list`` stays instant.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import LoadContext, Scorer, Scores, TelaError, hookimpl
from tela_core.infra.io import atomic_write_json
from tela_core.routing.artifact import read_manifest, write_manifest, write_policy
from tela_core.routing.targets import resolve_pair

__all__ = ["KeywordScorer"]

_WORD = re.compile(r"[a-z]{3,}")


class KeywordOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_count: int = Field(5, ge=1, description="ignore words seen in fewer training prompts")
    smoothing: float = Field(10.0, ge=0, description="pull each word's rate toward the global rate")
    weak: str | None = Field(None, description="weak model (inferred when the data has two)")
    strong: str | None = Field(None, description="strong model (inferred when the data has two)")


def _words(prompt: str) -> set[str]:
    return set(_WORD.findall(prompt.lower()))


class KeywordScorer(Scorer):
    """w = mean smoothed "weak model was wrong" rate of the prompt's known words."""

    name = "keyword"
    description = "example third-party family: bag-of-words rate of 'weak model wrong'"
    Options = KeywordOptions
    uses_backend = False

    def fit(self, train: Sequence[Any], output_dir: Path, config: Mapping[str, Any]) -> Path:
        records = list(train)
        if not records or not all(r.outcomes for r in records):
            raise TelaError("keyword: every training record needs outcomes")
        # The pair: this family's options, else what the caller hands over in ``config`` (`tela run`
        # passes the data source's pair; an ensemble passes its own), else tela's one rule.
        weak, strong = resolve_pair(
            records, self.options.weak or config.get("weak"), self.options.strong or config.get("strong")
        )
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

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        if read_manifest(artifact_dir)["scorer"] != self.name:
            raise TelaError(f"{artifact_dir}: not a keyword router")
        data = json.loads((Path(artifact_dir) / "keywords.json").read_text(encoding="utf-8"))
        self._prior, self._rates = float(data["prior"]), dict(data["rates"])

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        w = []
        for p in prompts:
            known = [self._rates[x] for x in _words(p) if x in self._rates]
            w.append(sum(known) / len(known) if known else self._prior)
        return Scores(w=np.clip(np.asarray(w, dtype=float), 0.0, 1.0))


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(KeywordScorer)
