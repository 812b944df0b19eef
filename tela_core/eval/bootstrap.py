"""Paired bootstrap intervals: is router A better than router B on the same prompts?

Both routers are scored on the same prompts, so their numbers share the prompts' luck (an easy
sample flatters both). The paired bootstrap keeps that pairing: each resample draws ``n`` prompt
indices with replacement, computes the statistic (APGR, or the N-model score) of *both* routers on
that same draw, and keeps the difference A − B. The interval is the percentile interval of those
differences (``confidence`` 0.95: the 2.5th and 97.5th percentiles).

A resample on which the statistic is undefined (APGR when the weak and strong models score the
same on the drawn prompts) is skipped and counted. The draws come from ``numpy``'s PCG64 seeded
with ``seed``, so an interval is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["PairedInterval", "paired_bootstrap", "paired_apgr", "apgr_resampled"]

Statistic = Callable[["np.ndarray"], float]


@dataclass(frozen=True)
class PairedInterval:
    """A − B on all prompts (``a``, ``b``, ``diff``) and the bootstrap interval of the difference."""

    a: float
    b: float
    diff: float
    lo: float
    hi: float
    confidence: float
    resamples: int  # resamples used
    skipped: int  # resamples on which the statistic was undefined
    n: int  # prompts

    @property
    def better(self) -> bool:
        """A is better than B beyond the interval (its lower end above 0)."""
        return self.lo > 0

    @property
    def worse(self) -> bool:
        """A is worse than B beyond the interval (its upper end below 0)."""
        return self.hi < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    stat_a: Statistic,
    stat_b: Statistic,
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedInterval:
    """The paired bootstrap interval of ``stat_a − stat_b`` over ``n`` prompts; each statistic
    takes an array of prompt indices (all of them: ``arange(n)``) and may raise
    :class:`TelaError` where it is undefined (that resample is skipped)."""
    import numpy as np

    _check_args(n, resamples, confidence)
    everything = np.arange(n)
    a, b = float(stat_a(everything)), float(stat_b(everything))
    rng = np.random.Generator(np.random.PCG64(seed))
    diffs: list[float] = []
    skipped = 0
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        try:
            diffs.append(float(stat_a(idx)) - float(stat_b(idx)))
        except TelaError:
            skipped += 1
    return _interval(a, b, np.asarray(diffs, dtype=float), skipped, confidence, n)


def _check_args(n: int, resamples: int, confidence: float) -> None:
    if n < 2:
        raise TelaError(f"a bootstrap interval needs at least 2 prompts, got {n}")
    if resamples < 1:
        raise TelaError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise TelaError(f"confidence must be between 0 and 1, got {confidence}")


def _interval(a: float, b: float, diffs: np.ndarray, skipped: int, confidence: float, n: int) -> PairedInterval:
    import numpy as np

    if diffs.size == 0:
        raise TelaError(f"the statistic is undefined on every one of {skipped} resamples")
    tail = (1.0 - confidence) / 2.0
    lo, hi = (float(x) for x in np.quantile(diffs, [tail, 1.0 - tail]))
    return PairedInterval(a, b, a - b, lo, hi, confidence, int(diffs.size), skipped, n)


def apgr_resampled(w: np.ndarray, weak: np.ndarray, strong: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """APGR of ``w`` on each row of prompt indices ``idx`` (shape ``(B, n)``) at once: the same
    number :func:`tela_core.eval.metrics.apgr` gives for ``w[row], weak[row], strong[row]`` (the same
    stable order, grid and counts), NaN for a row whose weak and strong models score the same."""
    import numpy as np

    from tela_core.eval.metrics import APGR_GRID_STEPS, strong_counts

    idx = np.atleast_2d(idx)
    n = idx.shape[1]
    order = np.argsort(-w[idx], axis=1, kind="stable")
    gain_sorted = np.take_along_axis((strong - weak)[idx], order, axis=1)
    cum = np.concatenate([np.zeros((idx.shape[0], 1)), np.cumsum(gain_sorted, axis=1)], axis=1)
    gains = cum[:, strong_counts(n, APGR_GRID_STEPS)]
    gap = strong[idx].sum(axis=1) - weak[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pgr = gains / gap[:, None]
    out = (pgr.sum(axis=1) - 0.5 * (pgr[:, 0] + pgr[:, -1])) / APGR_GRID_STEPS
    out[np.abs(gap) < 1e-12] = np.nan
    return np.asarray(out, dtype=float)


def paired_apgr(
    w_a: np.ndarray,
    w_b: np.ndarray,
    weak: np.ndarray,
    strong: np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedInterval:
    """The paired bootstrap interval of APGR(A) − APGR(B) (:func:`tela_core.eval.metrics.apgr`),
    ``w_a`` and ``w_b`` being the two routers' scores of the same prompts, in the same order. The
    resamples are computed together (:func:`apgr_resampled`), a few hundred at a time."""
    import numpy as np

    from tela_core.eval.metrics import apgr

    w_a, w_b = np.asarray(w_a, dtype=float), np.asarray(w_b, dtype=float)
    weak, strong = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    if not (w_a.shape == w_b.shape == weak.shape == strong.shape) or w_a.ndim != 1:
        raise TelaError(
            f"both routers' scores and the outcomes must be 1-d of one length; got "
            f"{w_a.shape}, {w_b.shape}, {weak.shape}, {strong.shape}"
        )
    n = w_a.size
    _check_args(n, resamples, confidence)
    if abs(float(strong.sum() - weak.sum())) < 1e-12:
        raise TelaError(
            f"the weak and strong models score the same in total on these {n} prompts, so APGR is undefined "
            "and cannot tell two routers apart; compare them on labelled traffic where the strong model does better"
        )
    a, b = apgr(w_a, weak, strong), apgr(w_b, weak, strong)  # raise on a zero gap over all prompts
    rng = np.random.Generator(np.random.PCG64(seed))
    diffs = []
    for start in range(0, resamples, 250):
        idx = rng.integers(0, n, size=(min(250, resamples - start), n))
        diffs.append(apgr_resampled(w_a, weak, strong, idx) - apgr_resampled(w_b, weak, strong, idx))
    d = np.concatenate(diffs)
    kept = d[~np.isnan(d)]
    return _interval(a, b, kept, resamples - kept.size, confidence, n)
