"""How far two judges agree: raw agreement, Cohen's kappa and the confusion matrix.

A cheap judge is worth using only if it agrees with a trusted one (a stronger judge, or a reference
grader) well beyond chance. Raw agreement alone flatters a judge on skewed data (if 90% of answers
are right, two judges that each call 90% of them right at random agree 0.9² + 0.1² = 82% of the
time), so the headline number is Cohen's kappa, ``(p_o - p_e) / (1 - p_e)``: observed agreement
corrected by the agreement the two judges' own label frequencies would reach by chance.

- Binary or categorical values (correctness 0/1, a pairwise winner): plain kappa, every
  disagreement counts the same.
- The seed's 1..5 labels are ordinal: a 4 against a 5 is a smaller disagreement than a 1 against a
  5, so they get *quadratic-weighted* kappa (disagreement weight ``(i - j)^2``), the usual choice
  for graded scores. The categories are the whole scale 1..5, so the weights follow the labels'
  values, not the subset of them that happens to occur.

Pure functions, no I/O: ``tela judge --agreement`` formats the :class:`Agreement` it gets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Agreement", "Weights", "agreement", "LABEL_SCALE"]

#: The seed's label scale: values that are all in it are read as ordinal labels.
LABEL_SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)

#: ``auto`` picks ``quadratic`` for 1..5 labels and ``none`` for anything else.
Weights = Literal["auto", "none", "linear", "quadratic"]

Value = int | float | str | None


@dataclass(frozen=True)
class Agreement:
    """Agreement between two judges over the items both judged.

    ``n`` items had a value from both judges; ``skipped`` had ``None`` on either side (a judge's
    error, an unanswered prompt) and are left out of every number. ``raw`` is the share of the
    ``n`` items with identical values; ``kappa`` Cohen's kappa with ``weights``. Both are ``None``
    when ``n`` is 0; ``kappa`` is also ``None`` when it is undefined, i.e. when chance agreement is
    already perfect (both judges gave one and the same value to every item). ``categories`` label
    the rows (judge a) and columns (judge b) of ``confusion``, a count matrix.
    """

    n: int
    skipped: int
    raw: float | None
    kappa: float | None
    weights: Literal["none", "linear", "quadratic"]
    categories: list[Any] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``tela judge --agreement --json``)."""
        return {
            "n": self.n,
            "skipped": self.skipped,
            "raw": self.raw,
            "kappa": self.kappa,
            "weights": self.weights,
            "categories": list(self.categories),
            "confusion": [list(row) for row in self.confusion],
        }


def _missing(v: Value) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_label(v: Value) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return float(v).is_integer() and int(v) in LABEL_SCALE


def _norm(v: Value) -> Value:
    """1, 1.0 and True are one category; keep strings as they are."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def agreement(
    a: Sequence[Value], b: Sequence[Value], weights: Weights = "auto", categories: Sequence[Value] | None = None
) -> Agreement:
    """Agreement between judge ``a``'s and judge ``b``'s values for the same items, in order.

    Values are labels 1..5, outcomes (0/1, or 0/0.5/1 from a pairwise judge), or any hashable
    category; ``None`` (or NaN) marks an item a judge did not judge, and that item is skipped and
    counted. ``weights="auto"`` uses quadratic weights when every value is a label 1..5 (over the
    full scale) and plain kappa otherwise; ``"linear"``/``"quadratic"`` need numeric values and
    weigh a disagreement by ``|i - j|`` or ``(i - j)^2`` of the values themselves. ``categories``
    fixes the possible values (the matrix's rows and columns) when the caller knows them, e.g.
    ``[0, 1]`` for correctness, so data where every value is 1 is not read as 1..5 labels; a value
    outside them is a ValueError.
    """
    if len(a) != len(b):
        raise ValueError(f"agreement needs one value per item from each judge; got {len(a)} and {len(b)}")
    pairs = [(_norm(x), _norm(y)) for x, y in zip(a, b) if not (_missing(x) or _missing(y))]
    skipped = len(a) - len(pairs)
    seen = {v for pair in pairs for v in pair}
    if categories is not None:
        given = {_norm(c) for c in categories}
        if seen - given:
            raise ValueError(
                f"values outside the categories {sorted(given, key=_sort_key)}: {sorted(seen - given, key=_sort_key)}"
            )
        seen_or_given = given
    else:
        seen_or_given = seen
    labels = bool(seen_or_given) and all(_is_label(v) for v in seen_or_given)
    kind: Literal["none", "linear", "quadratic"]
    kind = ("quadratic" if labels else "none") if weights == "auto" else weights
    if kind != "none" and not all(isinstance(v, (int, float)) for v in seen_or_given):
        raise ValueError(f"{kind} weights need numeric values")
    if labels and categories is None:
        cats: list[Any] = sorted(set(LABEL_SCALE))
    else:
        cats = sorted(seen_or_given, key=_sort_key)
    if not pairs:
        return Agreement(0, skipped, None, None, kind, cats, [[0] * len(cats) for _ in cats])
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    confusion = [[0] * k for _ in range(k)]
    for x, y in pairs:
        confusion[index[x]][index[y]] += 1
    n = len(pairs)
    raw = sum(confusion[i][i] for i in range(k)) / n
    return Agreement(n, skipped, raw, _kappa(confusion, cats, kind), kind, cats, confusion)


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def _kappa(confusion: list[list[int]], categories: list[Any], kind: str) -> float | None:
    """Weighted kappa ``1 - sum(w * O) / sum(w * E)`` (plain kappa is the 0/1 weight case)."""
    k = len(categories)
    n = sum(map(sum, confusion))
    rows = [sum(r) / n for r in confusion]
    cols = [sum(confusion[i][j] for i in range(k)) / n for j in range(k)]

    def w(i: int, j: int) -> float:
        if kind == "none":
            return 0.0 if i == j else 1.0
        d = abs(float(categories[i]) - float(categories[j]))
        return d if kind == "linear" else d * d

    observed = sum(w(i, j) * confusion[i][j] / n for i in range(k) for j in range(k))
    expected = sum(w(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k))
    if expected <= 1e-15:  # chance alone already agrees perfectly: kappa is 0/0
        return None
    return 1.0 - observed / expected
