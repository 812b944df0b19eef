"""Builtin plugin: the zoo's baseline router families, ``length`` and ``random``.

They are the floor every learned family must beat in a ``tela zoo`` report: ``random`` is what
routing without looking costs (APGR about 0.5), ``length`` what the cheapest possible signal buys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tela_core import hookimpl
from tela_core.components import LoadContext, Scores
from tela_core.data.records import Record
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.routing.family import FamilyScorer, TargetOptions, artifact_field, read_json, train_data
from tela_core.routing.targets import make_targets
from tela_plugins.baselines.features import FeaturesScorer

__all__ = ["LengthScorer", "RandomScorer", "FeaturesScorer"]


def _target(train: Sequence[Record], options: Any) -> tuple[Any, dict[str, Any]]:
    """The records' target and manifest facts: :func:`~tela_core.routing.family.train_data`'s, so
    N-model records (more than two models, no pair named) train a baseline too; y is NaN where a
    record lacks the outcomes it reads."""
    data = train_data(train, options.target, options.weak, options.strong)
    return data.y, (data.meta if data.nmodel else {k: v for k, v in data.meta.items() if k != "models"})


class LengthOptions(TargetOptions):
    unit: Literal["chars", "words"] = Field("chars", description="chars | words: how prompt length is measured")


class LengthScorer(FamilyScorer):
    """w = where the prompt's length falls among the training prompts' lengths.

    The direction (longer → strong, or shorter → strong) is learnt from the sign of the correlation
    between length and the target on the training records.
    """

    name = "length"
    description = "baseline: prompt length (empirical CDF), direction learnt from the data"
    Options = LengthOptions

    def _length(self, prompts: Sequence[str]) -> Any:
        import numpy as np

        if self.options.unit == "words":
            return np.array([len(p.split()) for p in prompts], dtype=np.float64)
        return np.array([len(p) for p in prompts], dtype=np.float64)

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        import numpy as np

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        y, meta = _target(train, self.options)
        x = self._length([r.prompt for r in train])
        ok = ~np.isnan(y)  # N-model records without the pair's outcomes read no target
        xo, yo = x[ok], y[ok]
        corr = float(np.corrcoef(xo, yo)[0, 1]) if len(yo) > 1 and xo.std() > 0 and yo.std() > 0 else 0.0
        self._sorted = np.sort(x)
        self._sign = 1.0 if corr >= 0 else -1.0
        atomic_write_json(
            out / "length.json", {"sorted_lengths": self._sorted.tolist(), "sign": self._sign, "corr": corr}
        )
        return self.finish_fit(out, len(train), {**meta, "correlation": corr})

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        import numpy as np

        self.check_manifest(artifact_dir, context)
        path = Path(artifact_dir) / "length.json"
        data = read_json(path)
        lengths = artifact_field(data, path, "sorted_lengths", list)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lengths):
            raise TelaError(
                f"{path}: damaged router file: 'sorted_lengths' must be a list of numbers; train the router again"
            )
        self._sorted = np.sort(np.asarray(lengths, dtype=np.float64))
        self._sign = 1.0 if float(artifact_field(data, path, "sign", (int, float))) >= 0 else -1.0

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        x = self._length(prompts)
        n = max(len(self._sorted), 1)
        cdf = (np.searchsorted(self._sorted, x, side="left") + np.searchsorted(self._sorted, x, side="right")) / (
            2.0 * n
        )
        w = cdf if self._sign > 0 else 1.0 - cdf
        return Scores(w=np.clip(w, 0.0, 1.0))


class RandomOptions(TargetOptions):
    seed: int = Field(0, description="seed of numpy's default_rng")


class RandomScorer(FamilyScorer):
    """w uniform in [0, 1], independent of the prompt: the no-information baseline.

    Each loaded (or freshly trained) router draws from its own ``numpy.random.default_rng(seed)``,
    created once, so every call continues the stream: one call on a whole evaluation set gives the
    curve of docs/metrics.md's random baseline for that seed, and ``tela serve`` draws a fresh w
    for every request (the same sequence from one start of the server to the next, for tests).
    """

    name = "random"
    description = "baseline: uniform random w (numpy default_rng(seed))"
    Options = RandomOptions
    _draws: Any = None

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        meta: dict[str, Any] = {}
        try:
            _, meta = make_targets(train, self.options.target, self.options.weak, self.options.strong)
        except TelaError:  # random needs no target; keep the models when they can be told
            meta = {}
        return self.finish_fit(out, len(train), meta)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir, context)
        self._draws = None  # a (re)load starts the seeded stream again

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np

        # One generator per router, not one per call: reseeding each call gave every request of a
        # served router the same w (0.773956 for seed 0), so all went to one model.
        if getattr(self, "_draws", None) is None:
            self._draws = np.random.default_rng(self.options.seed)
        return Scores(w=self._draws.random(len(prompts)))


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(LengthScorer)
    register(RandomScorer)
    register(FeaturesScorer)
