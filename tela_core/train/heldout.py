"""Scores of training-side records a router did not train on, to choose its operating point with.

- A family trained by a backend holds ``--eval-fraction`` of the records out: :func:`heldout_scores`
  scores (up to :data:`MAX_HELDOUT` of) them with the trained router.
- A family that trains itself trains on every record, so its own scores on them would flatter it:
  :func:`out_of_fold_scores` fits it :data:`FOLDS` more times, each on four fifths of the records
  (a prompt's copies kept in one fold), and scores the fifth it left out. Every record then has a
  score from a router that never saw it. Embedding families read their vectors from the cache, so
  the extra fits cost little beside the first.

What comes back is ``w`` and the records it belongs to; :mod:`tela_core.routing.operating_point`
reads only those and the records' outcomes, never the family.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.routing.artifact import MANIFEST, write_manifest
from tela_core.routing.router import Router

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "FOLDS",
    "MAX_HELDOUT",
    "MIN_RECORDS",
    "out_of_fold_scores",
    "out_of_fold_quality",
    "heldout_scores",
    "outcomes_of",
]

#: Folds of the cross-validation for families that train themselves.
FOLDS = 5
#: At most this many held-out records are scored for a backend-trained router (seeded draw).
MAX_HELDOUT = 500
#: Fewer distinct prompts than this and nothing is held out (the fallback rule applies).
MIN_RECORDS = 10


def out_of_fold_scores(
    make_family: Callable[[], Any],
    train: Sequence[Any],
    fit_config: Mapping[str, Any],
    seed: int,
    work_dir: Path,
    folds: int = FOLDS,
) -> tuple[np.ndarray, list[Any]]:
    """(w, records): one out-of-fold score per distinct training prompt, and the record it is for.

    ``make_family`` builds a fresh, unfitted family (as ``tela run`` configured it); each fold is
    fitted into a temporary folder under ``work_dir`` with ``fit_config`` and removed after scoring.
    """
    import numpy as np

    prompts, records, parts = _fold_predictions(
        make_family, train, fit_config, seed, work_dir, folds, lambda router, left_out: router.score(left_out)
    )
    w = np.full(len(prompts), np.nan)
    for idx, scores in parts:
        w[idx] = scores
    return w, records


def out_of_fold_quality(
    make_family: Callable[[], Any],
    train: Sequence[Any],
    fit_config: Mapping[str, Any],
    seed: int,
    work_dir: Path,
    folds: int = FOLDS,
) -> tuple[np.ndarray, list[str], list[Any]]:
    """(quality, models, records): every model's out-of-fold predicted quality ((n, M), columns
    ``models``) per distinct training prompt, for a family that predicts it (N-model routers)."""
    import numpy as np

    models: list[str] = []

    def read(router: Router, left_out: list[str]) -> np.ndarray:
        s = router.scores(left_out, quality=True)
        if s.quality is None or s.models is None:
            raise TelaError(f"family {router.manifest.get('scorer')!r} predicts no per-model quality")
        cols = list(s.models)
        if not models:
            models.extend(cols)
        return np.asarray(s.quality, dtype=float)[:, [cols.index(m) for m in models]]

    prompts, records, parts = _fold_predictions(make_family, train, fit_config, seed, work_dir, folds, read)
    quality = np.full((len(prompts), len(models)), np.nan)
    for idx, q in parts:
        quality[idx] = q
    return quality, models, records


def _fold_predictions(
    make_family: Callable[[], Any],
    train: Sequence[Any],
    fit_config: Mapping[str, Any],
    seed: int,
    work_dir: Path,
    folds: int,
    read: Callable[[Router, list[str]], Any],
) -> tuple[list[str], list[Any], list[tuple[list[int], Any]]]:
    """(distinct prompts, their records, [(prompt indices, ``read(fold router, those prompts)``)])."""
    import numpy as np

    first: dict[str, int] = {}
    for i, r in enumerate(train):
        first.setdefault(r.prompt, i)
    prompts = list(first)
    if len(prompts) < max(MIN_RECORDS, folds):
        raise TelaError(f"{len(prompts)} distinct training prompts are too few to hold any out")
    order = np.random.RandomState(seed).permutation(len(prompts))
    fold_of = {prompts[j]: k % folds for k, j in enumerate(order)}
    index = {p: i for i, p in enumerate(prompts)}
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for k in range(folds):
        fit_on = [r for r in train if fold_of[r.prompt] != k]
        left_out = [p for p in prompts if fold_of[p] == k]
        tmp = Path(tempfile.mkdtemp(prefix=f"fold{k}-", dir=work_dir))
        try:
            family = make_family()
            family.fit(fit_on, tmp, dict(fit_config))
            if not (tmp / MANIFEST).exists():  # a family that leaves the manifest to tela run
                write_manifest(tmp, scorer=family.name, scorer_options=family.options.model_dump(mode="json"))
            parts.append(([index[p] for p in left_out], read(Router.load(tmp), left_out)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return prompts, [train[first[p]] for p in prompts], parts


def heldout_scores(
    router_dir: Path,
    evals: Sequence[Any],
    seed: int,
    limit: int = MAX_HELDOUT,
    trust_remote_code: bool = False,
) -> tuple[np.ndarray, list[Any]]:
    """(w, records): the trained router's scores of (a seeded draw of at most ``limit`` of) the
    held-out records."""
    import numpy as np

    records = list(evals)
    if len(records) > limit:
        pick = sorted(np.random.RandomState(seed).permutation(len(records))[:limit])
        records = [records[int(i)] for i in pick]
    w = Router.load(router_dir, trust_remote_code=trust_remote_code).score([r.prompt for r in records])
    return w, records


def outcomes_of(records: Sequence[Any], pair: Mapping[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The weak and strong outcomes of ``records`` for ``pair`` (``weak``/``strong`` names), or
    (None, None) when some record lacks one (label-only data)."""
    import numpy as np

    weak, strong = pair.get("weak"), pair.get("strong")
    if not isinstance(weak, str) or not isinstance(strong, str) or not weak or not strong:
        return None, None
    try:
        wk = [float(r.outcomes[weak]) for r in records]
        st = [float(r.outcomes[strong]) for r in records]
    except (KeyError, TypeError):
        return None, None
    return np.asarray(wk), np.asarray(st)
