"""Elo ratings from pairwise battles and Elo tiers: how RouteLLM groups Chatbot Arena's models.

RouteLLM (``routellm/routers/similarity_weighted/utils.py``) rates models with a Bradley-Terry
maximum-likelihood fit in which a tie counts as one win for each side, scales the coefficients to
Elo points (400 per factor of 10 in odds, 1000 at the centre; ``llama-2-70b-chat`` pinned to 1082
when present), then splits the models, sorted by rating, into ``num_tiers`` contiguous tiers with
the least summed within-tier variance (an exact dynamic programme). This module computes the same
two things with numpy: a Newton fit of the logistic likelihood (a tiny ridge only fixes the
otherwise free overall shift) and an optimal 1-D segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["elo_ratings", "elo_tiers", "ANCHOR"]

#: RouteLLM's calibration: this model, when rated, is moved to this Elo
ANCHOR = ("llama-2-70b-chat", 1082.0)


def elo_ratings(
    model_a: Sequence[str],
    model_b: Sequence[str],
    score_a: Sequence[float],
    *,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: tuple[str, float] | None = ANCHOR,
    ridge: float = 1e-6,
) -> dict[str, float]:
    """Elo rating of every model, highest first.

    ``score_a[i]`` is 1 when model A won battle i, 0 when B won and 0.5 for a tie (a tie is one
    win for each side, as RouteLLM counts it).
    """
    import numpy as np

    models = list(dict.fromkeys([*model_a, *model_b]))
    index = {m: k for k, m in enumerate(models)}
    a = np.array([index[m] for m in model_a], dtype=np.int64)
    b = np.array([index[m] for m in model_b], dtype=np.int64)
    y = np.asarray(score_a, dtype=float)
    n, ln = len(models), math.log(base)
    beta = np.zeros(n)
    for _ in range(100):
        z = ln * (beta[a] - beta[b])
        p = 1.0 / (1.0 + np.exp(-z))
        r = p - y
        grad = np.zeros(n)
        np.add.at(grad, a, ln * r)
        np.add.at(grad, b, -ln * r)
        grad += ridge * beta
        w = ln * ln * p * (1.0 - p)
        hess = np.zeros((n, n))
        np.add.at(hess, (a, a), w)
        np.add.at(hess, (b, b), w)
        np.add.at(hess, (a, b), -w)
        np.add.at(hess, (b, a), -w)
        hess[np.diag_indices(n)] += ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    elo = scale * beta + init
    if anchor is not None and anchor[0] in index:
        elo += anchor[1] - elo[index[anchor[0]]]
    order = np.argsort(-elo, kind="stable")
    return {models[k]: float(elo[k]) for k in order}


def elo_tiers(ratings: dict[str, float], num_tiers: int) -> dict[str, int]:
    """Tier of every model (0 = highest rated): ``num_tiers`` contiguous groups of the models sorted by
    rating, chosen to minimise the sum of the groups' rating variances (fewer tiers when fewer models)."""
    import numpy as np

    names = sorted(ratings, key=lambda m: -ratings[m])
    x = np.array([ratings[m] for m in names], dtype=float)
    n = len(names)
    k = max(1, min(num_tiers, n))
    # cost[i][j]: variance of x[i..j] (inclusive), from prefix sums
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])

    def var(i: int, j: int) -> float:
        m = j - i + 1
        mean = (s1[j + 1] - s1[i]) / m
        return max(0.0, (s2[j + 1] - s2[i]) / m - mean * mean)

    inf = float("inf")
    # best[t][j]: least cost of splitting x[0..j] into t+1 tiers; cut[t][j]: start of the last tier
    best = [[inf] * n for _ in range(k)]
    cut = [[0] * n for _ in range(k)]
    for j in range(n):
        best[0][j] = var(0, j)
    for t in range(1, k):
        for j in range(t, n):
            for start in range(t, j + 1):
                c = best[t - 1][start - 1] + var(start, j)
                if c < best[t][j]:
                    best[t][j], cut[t][j] = c, start
    tiers: dict[str, int] = {}
    end = n - 1
    for t in range(k - 1, -1, -1):
        start = cut[t][end] if t > 0 else 0
        for idx in range(start, end + 1):
            tiers[names[idx]] = t
        end = start - 1
    return tiers
