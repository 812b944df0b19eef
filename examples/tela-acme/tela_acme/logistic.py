"""L2-regularised logistic and softmax regression on sparse features (scipy's L-BFGS).

Binary with soft targets in [0, 1] (so the ``gain`` target trains as it is), and multinomial for
the 1..5 score. Small and exact enough for routers trained in seconds on a CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp


def fit_binary(X: sp.csr_matrix, y: np.ndarray, C: float, max_iter: int = 500) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean cross-entropy + ||w||² / (2·C·n)."""
    import numpy as np
    from scipy.optimize import minimize

    n, d = X.shape
    lam = 1.0 / (C * n)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = X @ w + b
        # log(1 + e^z) - y z, computed stably
        ll = np.logaddexp(0.0, z) - y * z
        p = 1.0 / (1.0 + np.exp(-z))
        g = p - y
        grad = np.concatenate([X.T @ g / n + lam * w, [g.mean()]])
        return float(ll.mean() + 0.5 * lam * w @ w), grad

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x[:d], float(res.x[d])


def predict_binary(X: sp.csr_matrix, w: np.ndarray, b: float) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-(X @ w + b)))


def fit_softmax(
    X: sp.csr_matrix, labels: np.ndarray, k: int, C: float, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """(d, k) weights and (k,) biases of a softmax regression on class indices 0..k-1."""
    import numpy as np
    from scipy.optimize import minimize

    n, d = X.shape
    lam = 1.0 / (C * n)
    Y = np.zeros((n, k))
    Y[np.arange(n), labels] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = theta[: d * k].reshape(d, k), theta[d * k :]
        Z = np.asarray(X @ W) + b
        Z -= Z.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        P = np.exp(logp)
        G = (P - Y) / n
        gW = np.asarray(X.T @ G) + lam * W
        return float(-(Y * logp).sum() / n + 0.5 * lam * (W * W).sum()), np.concatenate([gW.ravel(), G.sum(axis=0)])

    res = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x[: d * k].reshape(d, k), res.x[d * k :]


def predict_softmax(X: sp.csr_matrix, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    Z = np.asarray(X @ W) + b
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True)
