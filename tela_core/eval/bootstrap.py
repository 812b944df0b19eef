"""Paired bootstrap intervals: is router A better than router B on the same prompts?

Both routers are scored on the same prompts, so their numbers share the prompts' luck (an easy
sample flatters both). The paired bootstrap keeps that pairing: each resample draws ``n`` prompt
indices with replacement, computes the statistic (APGR, or the N-model score) of *both* routers on
that same draw, and keeps the difference A − B. The interval is the percentile interval of those
differences (``confidence`` 0.95: the 2.5th and 97.5th percentiles).

Weighted prompts (``weights``: each prompt's ``1/p``, ``p`` the probability shadow sampling
asked it with) stand for the traffic they were sampled from: a resample draws prompts as before,
and each drawn prompt carries its weight into the statistic (:func:`weighted_apgr`). Equal weights
are no weights: the unweighted numbers, exactly.

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

__all__ = ["PairedInterval", "paired_bootstrap", "paired_apgr", "apgr_resampled", "weighted_apgr", "uniform"]

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


def uniform(weights: np.ndarray | None) -> np.ndarray | None:
    """``weights`` as an array, or None where there are none or all are equal (no weighting)."""
    import numpy as np

    if weights is None:
        return None
    v = np.asarray(weights, dtype=float)
    if v.ndim != 1 or not np.isfinite(v).all() or (v <= 0).any():
        raise TelaError("weights must be one positive finite number per prompt")
    return None if v.size == 0 or bool((v == v[0]).all()) else v


def weighted_apgr(w: np.ndarray, weak: np.ndarray, strong: np.ndarray, weights: np.ndarray | None) -> float:
    """APGR with each prompt standing for ``weights`` of the traffic (module doc): at strong-call
    share ``s`` the prompts in routing order whose weight's midpoint lies within ``s`` of the total
    weight go to the strong model (for equal weights that is ``⌊s·n + 0.5⌋`` prompts, as
    :mod:`tela_core.eval.metrics` counts), and PGR is the weighted gain over the weighted gap.
    Without weights (or equal ones), :func:`tela_core.eval.metrics.apgr` itself."""
    import numpy as np

    from tela_core.eval.metrics import apgr

    v = uniform(weights)
    if v is None:
        return apgr(w, weak, strong)
    got = float(
        apgr_resampled(np.asarray(w, float), np.asarray(weak, float), np.asarray(strong, float), np.arange(v.size), v)[
            0
        ]
    )
    if np.isnan(got):
        raise TelaError(
            "the weak and strong models score the same on these prompts (weighted by 1/p), so APGR is undefined"
        )
    return got


def _weighted_resampled(
    w: np.ndarray, weak: np.ndarray, strong: np.ndarray, idx: np.ndarray, v: np.ndarray
) -> np.ndarray:
    import numpy as np

    from tela_core.eval.metrics import APGR_GRID_STEPS

    order = np.argsort(-w[idx], axis=1, kind="stable")
    vs = np.take_along_axis(v[idx], order, axis=1)
    gain = np.take_along_axis((strong - weak)[idx], order, axis=1) * vs
    cum = np.concatenate([np.zeros((idx.shape[0], 1)), np.cumsum(gain, axis=1)], axis=1)
    mass = np.cumsum(vs, axis=1)
    mid = mass - 0.5 * vs
    shares = np.arange(APGR_GRID_STEPS + 1) / APGR_GRID_STEPS
    # a midpoint exactly at s·total counts (as ⌊s·n + 0.5⌋ does), allowing for float error
    targets = mass[:, -1:] * shares[None, :] * (1.0 + 1e-12)
    ks = np.stack([np.searchsorted(mid[b], targets[b], side="right") for b in range(idx.shape[0])])
    gains = np.take_along_axis(cum, ks, axis=1)
    gap = cum[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pgr = gains / gap[:, None]
    out = (pgr.sum(axis=1) - 0.5 * (pgr[:, 0] + pgr[:, -1])) / APGR_GRID_STEPS
    out[np.abs(gap) < 1e-12 * mass[:, -1]] = np.nan  # relative: weights are scaled (largest 1)
    return np.asarray(out, dtype=float)


def apgr_resampled(
    w: np.ndarray, weak: np.ndarray, strong: np.ndarray, idx: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """APGR of ``w`` on each row of prompt indices ``idx`` (shape ``(B, n)``) at once: the same
    number :func:`tela_core.eval.metrics.apgr` gives for ``w[row], weak[row], strong[row]`` (the same
    stable order, grid and counts), NaN for a row whose weak and strong models score the same.
    With ``weights`` (one per prompt, not all equal), :func:`weighted_apgr`'s number for each row."""
    import numpy as np

    from tela_core.eval.metrics import APGR_GRID_STEPS, strong_counts

    idx = np.atleast_2d(idx)
    v = uniform(weights)
    if v is not None:
        return _weighted_resampled(w, weak, strong, idx, v)
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
    weights: np.ndarray | None = None,
) -> PairedInterval:
    """The paired bootstrap interval of APGR(A) − APGR(B) (:func:`tela_core.eval.metrics.apgr`),
    ``w_a`` and ``w_b`` being the two routers' scores of the same prompts, in the same order. The
    resamples are computed together (:func:`apgr_resampled`), a few hundred at a time. With
    ``weights`` (each prompt's ``1/p``), the weighted APGR (:func:`weighted_apgr`) on every draw."""
    import numpy as np

    w_a, w_b = np.asarray(w_a, dtype=float), np.asarray(w_b, dtype=float)
    weak, strong = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    if not (w_a.shape == w_b.shape == weak.shape == strong.shape) or w_a.ndim != 1:
        raise TelaError(
            f"both routers' scores and the outcomes must be 1-d of one length; got "
            f"{w_a.shape}, {w_b.shape}, {weak.shape}, {strong.shape}"
        )
    n = w_a.size
    _check_args(n, resamples, confidence)
    v = uniform(weights)
    if v is not None and v.shape != w_a.shape:
        raise TelaError(f"one weight per prompt: {v.shape} weights for {w_a.shape} prompts")
    gap = float(strong.sum() - weak.sum()) if v is None else float((v * (strong - weak)).sum() / v.mean())
    if abs(gap) < 1e-12:
        raise TelaError(
            f"the weak and strong models score the same in total on these {n} prompts, so APGR is undefined "
            "and cannot tell two routers apart; compare them on labelled traffic where the strong model does better"
        )
    a, b = weighted_apgr(w_a, weak, strong, v), weighted_apgr(w_b, weak, strong, v)  # raise on a zero gap
    rng = np.random.Generator(np.random.PCG64(seed))
    diffs = []
    for start in range(0, resamples, 250):
        idx = rng.integers(0, n, size=(min(250, resamples - start), n))
        diffs.append(apgr_resampled(w_a, weak, strong, idx, v) - apgr_resampled(w_b, weak, strong, idx, v))
    d = np.concatenate(diffs)
    kept = d[~np.isnan(d)]
    return _interval(a, b, kept, resamples - kept.size, confidence, n)
