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

__all__ = ["PairedInterval", "paired_bootstrap", "paired_apgr"]

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

    if n < 2:
        raise TelaError(f"a bootstrap interval needs at least 2 prompts, got {n}")
    if resamples < 1:
        raise TelaError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise TelaError(f"confidence must be between 0 and 1, got {confidence}")
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
    if not diffs:
        raise TelaError(f"the statistic is undefined on every one of {resamples} resamples")
    tail = (1.0 - confidence) / 2.0
    lo, hi = (float(x) for x in np.quantile(np.asarray(diffs), [tail, 1.0 - tail]))
    return PairedInterval(a, b, a - b, lo, hi, confidence, len(diffs), skipped, n)


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
    ``w_a`` and ``w_b`` being the two routers' scores of the same prompts, in the same order."""
    import numpy as np

    from tela_core.eval.metrics import apgr

    w_a, w_b = np.asarray(w_a, dtype=float), np.asarray(w_b, dtype=float)
    weak, strong = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    if not (w_a.shape == w_b.shape == weak.shape == strong.shape) or w_a.ndim != 1:
        raise TelaError(
            f"both routers' scores and the outcomes must be 1-d of one length; got "
            f"{w_a.shape}, {w_b.shape}, {weak.shape}, {strong.shape}"
        )

    def stat(w: np.ndarray) -> Statistic:
        return lambda idx: apgr(w[idx], weak[idx], strong[idx])

    return paired_bootstrap(stat(w_a), stat(w_b), w_a.size, resamples=resamples, confidence=confidence, seed=seed)
