"""Router metrics exactly as ``docs/metrics.md`` defines them, so numbers compare across routers.

A two-model router gives each prompt a number ``w`` (larger: the prompt needs the strong model).
For a strong-call share ``p``, the top ``k = ⌊p·n + 0.5⌋`` prompts by ``w`` (ties broken stably:
the earlier prompt first) go to the strong model and the rest to the weak one:

- ``Q(p)``   mean outcome of the chosen models; ``Q_w = Q(0)``, ``Q_s = Q(1)``.
- ``PGR(p)`` ``(Q(p) − Q_w) / (Q_s − Q_w)``, the share of the quality gap recovered.
- ``APGR``   trapezoid integral of PGR over the fixed grid p = 0, 0.1, …, 1.
- ``CPT(x)`` the smallest p on the grid 0, 0.01, …, 1 with ``PGR(p) ≥ x``.
- ``AUC``    trapezoid integral of Q over p = 0, 0.1, …, 1.

Grid points are handled as exact fractions (p = i/10, i/100), so ``⌊p·n + 0.5⌋`` never suffers a
float rounding slip, and PGR comparisons allow for the last bit of float error only.

Only numpy is used; it is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "APGR_GRID_STEPS",
    "CPT_GRID_STEPS",
    "Curve",
    "round_half_up_count",
    "routing_order",
    "strong_counts",
    "quality_curve",
    "curve",
    "apgr",
    "auc",
    "cpt",
    "trapezoid",
]

#: APGR and AUC use p = i / 10 for i = 0..10.
APGR_GRID_STEPS = 10
#: CPT uses p = i / 100 for i = 0..100.
CPT_GRID_STEPS = 100
_EPS = 1e-12
_TOL = 1e-9  # PGR ≥ x allows for float error in the ratio only


def round_half_up_count(p: float | Fraction, n: int) -> int:
    """``⌊p·n + 0.5⌋``, computed exactly: how many of ``n`` prompts go to the strong model at share p."""
    if not 0 <= p <= 1:
        raise TelaError(f"strong-call share must be in [0, 1], got {p}")
    q = p if isinstance(p, Fraction) else Fraction(str(float(p)))
    return int((q * n + Fraction(1, 2)) // 1)


def routing_order(w: np.ndarray) -> np.ndarray:
    """Prompt indices by decreasing ``w``; equal ``w`` keep their input order (stable ties)."""
    import numpy as np

    w = np.asarray(w, dtype=float)
    if w.ndim != 1:
        raise TelaError(f"w must be one number per prompt, got shape {w.shape}")
    if np.isnan(w).any():
        raise TelaError(f"w holds {int(np.isnan(w).sum())} NaN value(s); a scorer must give a number for every prompt")
    return np.argsort(-w, kind="stable")


def strong_counts(n: int, steps: int) -> list[int]:
    """``k`` for each grid point p = i/steps, i = 0..steps."""
    return [round_half_up_count(Fraction(i, steps), n) for i in range(steps + 1)]


def _check(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    w = np.asarray(w, dtype=float)
    weak = np.asarray(weak, dtype=float)
    strong = np.asarray(strong, dtype=float)
    if not (w.shape == weak.shape == strong.shape) or w.ndim != 1:
        raise TelaError(
            f"w, weak and strong outcomes must be 1-d of one length; got {w.shape}, {weak.shape}, {strong.shape}"
        )
    if w.size == 0:
        raise TelaError("no prompts to evaluate")
    return w, weak, strong


def quality_curve(w: np.ndarray, weak: np.ndarray, strong: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(gain, quality) at p = i/steps: ``gain[i]`` = sum over the routed-to-strong prompts of
    (strong − weak) outcome; ``quality[i]`` = Q(p)."""
    import numpy as np

    w, weak, strong = _check(w, weak, strong)
    n = w.size
    order = routing_order(w)
    cum = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    ks = np.array(strong_counts(n, steps))
    gain = cum[ks]
    quality = (weak.sum() + gain) / n
    return gain, quality


def trapezoid(values: Sequence[float] | np.ndarray, steps: int) -> float:
    """Trapezoid integral over [0, 1] of values on the uniform grid i/steps."""
    v = [float(x) for x in values]
    if len(v) != steps + 1:
        raise ValueError(f"expected {steps + 1} values, got {len(v)}")
    return (sum(v) - 0.5 * (v[0] + v[-1])) / steps


@dataclass(frozen=True)
class Curve:
    """A router's replayed curve and its summary numbers (see module doc)."""

    n: int
    q_weak: float
    q_strong: float
    p: list[float]  # 0, 0.1, ..., 1
    quality: list[float]  # Q(p) on that grid
    pgr: list[float]  # PGR(p) on that grid
    p_fine: list[float]  # 0, 0.01, ..., 1
    quality_fine: list[float]
    pgr_fine: list[float]
    apgr: float
    cpt50: float
    cpt80: float
    auc: float


def _pgr(gain: np.ndarray, gap: float) -> np.ndarray:
    import numpy as np

    if abs(gap) < _EPS:
        raise TelaError(
            "the weak and strong models score the same on these prompts, so PGR (share of the quality gap "
            "recovered) is undefined; pick another pair with --weak-model/--strong-model"
        )
    return np.asarray(gain, dtype=float) / gap


def curve(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> Curve:
    """Replay ``w`` against per-prompt weak/strong outcomes: the full :class:`Curve`."""
    w, weak, strong = _check(w, weak, strong)
    n = w.size
    gap = float(strong.sum() - weak.sum())
    gain, quality = quality_curve(w, weak, strong, APGR_GRID_STEPS)
    gain_f, quality_f = quality_curve(w, weak, strong, CPT_GRID_STEPS)
    pgr = _pgr(gain, gap)
    pgr_f = _pgr(gain_f, gap)
    return Curve(
        n=n,
        q_weak=float(weak.mean()),
        q_strong=float(strong.mean()),
        p=[i / APGR_GRID_STEPS for i in range(APGR_GRID_STEPS + 1)],
        quality=[float(x) for x in quality],
        pgr=[float(x) for x in pgr],
        p_fine=[i / CPT_GRID_STEPS for i in range(CPT_GRID_STEPS + 1)],
        quality_fine=[float(x) for x in quality_f],
        pgr_fine=[float(x) for x in pgr_f],
        apgr=trapezoid(pgr, APGR_GRID_STEPS),
        cpt50=_cpt_from(gain_f, gap, 0.5),
        cpt80=_cpt_from(gain_f, gap, 0.8),
        auc=trapezoid(quality, APGR_GRID_STEPS),
    )


def _cpt_from(gain_fine: np.ndarray, gap: float, x: float) -> float:
    # PGR(p) >= x  <=>  gain >= x * gap (for gap > 0; the inequality flips for gap < 0)
    for i, g in enumerate(gain_fine):
        if g / gap >= x - _TOL:
            return i / CPT_GRID_STEPS
    return float("nan")  # unreachable for x <= 1: PGR(1) = 1


def apgr(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """APGR of ``w`` (trapezoid on p = 0, 0.1, …, 1)."""
    return curve(w, weak, strong).apgr


def auc(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """AUC of Q(p) (trapezoid on p = 0, 0.1, …, 1)."""
    return curve(w, weak, strong).auc


def cpt(w: np.ndarray, weak: np.ndarray, strong: np.ndarray, x: float) -> float:
    """CPT(x): smallest p on the 0.01 grid with PGR(p) ≥ x (``x`` in [0, 1])."""
    if not 0 <= x <= 1:
        raise TelaError(f"CPT target must be in [0, 1], got {x}")
    w, weak, strong = _check(w, weak, strong)
    gap = float(strong.sum() - weak.sum())
    import numpy as np

    _pgr(gap=gap, gain=np.zeros(1))  # raises on a zero gap
    gain, _ = quality_curve(w, weak, strong, CPT_GRID_STEPS)
    return _cpt_from(gain, gap, x)
