"""Add a model to a trained N-model router without training it again (``tela run --add-to``).

A router trained on N models predicts each one's quality on a prompt. A new model comes with
records of its outcomes on a few hundred prompts (its answers collected and judged); only what the
new model needs is fitted, everything the router learnt about prompts and the other models stays
as it was:

- ``matrix-factorization``: the prompt projection W and the N model vectors stay frozen; the new
  model's vector v and bias b are fitted to its outcomes. v is sought in the span of the existing
  model vectors (v = Σ a_m · v_m): N + 1 numbers to learn, not ``dim`` + 1, which is what makes a
  few hundred labels enough. In other words: its predicted log-odds is a regularised linear blend
  of the other models' predicted log-odds on the same prompt.
- ``embedding-linear`` with per-model heads: the other heads stay; the new model's head is sought
  as a blend of theirs, the same way (coef = Σ a_m · coef_m, its own bias).
- ``embedding-knn``: the stored prompts keep every outcome they have; the new model gets an
  outcome column on them, predicted from the other models' outcomes on the same prompt and on its
  neighbourhood (a regularised logistic regression fitted on the labelled prompts), corrected by
  the shrunk mean residual of the nearest labelled prompts, and the true outcome where a stored
  prompt was labelled for it. A test prompt then reads the new model's predicted quality from its
  k nearest stored prompts, as it reads the others'.

The labelled prompts need not be prompts the router was trained on; where one is (same
embedding), the other models' recorded outcomes on it are used, else the router's predictions of
them. Records may carry the other models' outcomes too; the new model's is the one that is needed.

The regressions minimise soft-label logistic loss (outcomes in [0, 1], not only 0/1) with an L2
penalty, by L-BFGS (scipy). numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.data.records import Record
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.routing.family import read_json
from tela_plugins.embedding_families.store import save_npz

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["add_model_knn", "add_model_mf", "add_model_linear", "fit_logistic", "SAME_PROMPT"]

#: cosine similarity at or above which a labelled prompt is taken for a stored one
SAME_PROMPT = 0.9999
#: inverse L2 strength of the new model's regression (chosen on LLMRouter nim9: bench/add_model_nim9.py)
C_DEFAULT = 1.0
#: kNN: labelled neighbours whose residuals correct a stored prompt's predicted outcome, and the
#: pseudo-count that shrinks that correction (chosen on nim9 with the regression's C)
RESIDUAL_K, RESIDUAL_SHRINK = 20, 20.0


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = C_DEFAULT) -> tuple[np.ndarray, float]:
    """(a, b) minimising Σ logloss(y, σ(x·a + b)) + |a|² / (2c); y in [0, 1] (soft labels)."""
    import numpy as np
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = x.shape[1]

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w[:d] + w[d]
        p = 1.0 / (1.0 + np.exp(-z))
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 / c * np.sum(w[:d] ** 2))
        return loss, np.append(x.T @ (p - y) + w[:d] / c, np.sum(p - y))

    m = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    res = minimize(f, np.append(np.zeros(d), np.log(m / (1 - m))), jac=True, method="L-BFGS-B")
    return res.x[:d], float(res.x[d])


def _labels(records: Sequence[Record], model: str) -> tuple[list[str], np.ndarray, list[dict[str, float]]]:
    """Prompts, the new model's outcomes and each record's other outcomes, of the records that
    have an outcome for ``model``."""
    import numpy as np

    rows = [r for r in records if r.outcomes and model in r.outcomes]
    if not rows:
        raise TelaError(f"no record has an outcome for model {model!r}")
    y = np.array([float(r.outcomes[model]) for r in rows])  # type: ignore[index]
    if not np.all((y >= 0) & (y <= 1)):
        raise TelaError(f"outcomes of {model!r} must lie in [0, 1]")
    return [r.prompt for r in rows], y, [dict(r.outcomes or {}) for r in rows]


def _write_models(scorer: Any, out: Path, models: list[str]) -> None:
    info_path = out / "models.json"
    info = read_json(info_path) if info_path.exists() else {}
    atomic_write_json(info_path, {**(info if isinstance(info, dict) else {}), "models": models})


def add_model_mf(scorer: Any, records: Sequence[Record], model: str, out: Path) -> dict[str, Any]:
    """Fit the new model's vector and bias of a loaded ``matrix-factorization`` scorer (module doc),
    write its ``mf.npz`` and ``models.json`` into ``out`` and return what was fitted."""
    import numpy as np

    prompts, y, _ = _labels(records, model)
    z = scorer.embed(prompts) @ scorer._W  # frozen projection
    old_logits = z @ scorer._V.T  # (n, N): each old model's log-odds without its bias
    a, c0 = fit_logistic(old_logits, y)
    v_new = a @ scorer._V
    scorer._V = np.vstack([scorer._V, v_new[None, :]]).astype(scorer._V.dtype)
    scorer._b = np.append(scorer._b, c0).astype(scorer._b.dtype)
    scorer.models = [*scorer.models, model]
    save_npz(out / "mf.npz", W=scorer._W, V=scorer._V, b=scorer._b)
    _write_models(scorer, out, scorer.models)
    if isinstance(getattr(scorer, "_meta", None), dict):
        scorer._meta["models"] = scorer.models
    return {"method": "model vector in the span of the others' vectors", "blend": dict(zip(scorer.models, a.tolist()))}


def add_model_linear(scorer: Any, records: Sequence[Record], model: str, out: Path) -> dict[str, Any]:
    """Fit the new model's head of a loaded ``embedding-linear`` scorer with per-model heads
    (module doc), write its ``linear.json`` and ``models.json`` into ``out``; return what was fitted."""
    import numpy as np

    if getattr(scorer, "_heads", None) is None:
        raise TelaError(
            f"{scorer.name}: this router has no per-model heads (train it on 3 or more models' records, "
            "or with --set family.per_model=true)"
        )
    prompts, y, _ = _labels(records, model)
    coef, bias = scorer._heads
    x = np.asarray(scorer.features(prompts), dtype=np.float64)
    a, c0 = fit_logistic(x @ coef.T + bias, y)
    scorer._heads = (np.vstack([coef, (a @ coef)[None, :]]), np.append(bias, float(a @ bias) + c0))
    scorer.models = [*scorer.models, model]
    path = out / "linear.json"
    saved = read_json(path)
    saved = saved if isinstance(saved, dict) else {}
    saved["heads"] = {"models": scorer.models, "coef": scorer._heads[0].tolist(), "bias": scorer._heads[1].tolist()}
    atomic_write_json(path, saved)
    _write_models(scorer, out, scorer.models)
    return {"method": "head blended from the other models' heads", "blend": dict(zip(scorer.models, a.tolist()))}


def add_model_knn(scorer: Any, records: Sequence[Record], model: str, out: Path) -> dict[str, Any]:
    """Give a loaded ``embedding-knn`` scorer an outcome column for the new model (module doc),
    write its ``knn.npz`` and ``models.json`` into ``out`` and return what was fitted."""
    import numpy as np

    prompts, y, given = _labels(records, model)
    store = np.asarray(scorer._emb, dtype=np.float32)
    outcomes = np.asarray(scorer._outcomes, dtype=np.float64)
    old = list(scorer.models)
    if outcomes.shape[1] != len(old) or not old:
        raise TelaError("this kNN router stores no per-model outcomes; train it on outcome data to add a model")
    observed = getattr(scorer, "_observed", None)
    mask = np.ones(outcomes.shape, dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
    # the other models' outcomes on every stored prompt, and on its neighbourhood (N-model records
    # may lack some: the neighbourhood's mean stands in for a missing one)
    hood = _neighbourhood(scorer, store, outcomes, mask)
    outcomes_filled = np.where(mask, outcomes, hood)
    feats_store = np.column_stack([outcomes_filled, hood])
    # the labelled prompts: the stored row where the prompt is one, else the router's predictions
    q = np.asarray(scorer.embed(prompts), dtype=np.float32)
    same = np.full(len(q), -1)
    for s in range(0, len(q), 1024):
        sims = q[s : s + 1024] @ store.T
        best = sims.argmax(axis=1)
        hit = sims[np.arange(len(best)), best] >= SAME_PROMPT
        same[s : s + 1024] = np.where(hit, best, -1)
    pred = scorer.predict_models(prompts) if (same < 0).any() else np.zeros((len(q), len(old)))
    feats = np.empty((len(q), 2 * len(old)))
    for i in range(len(q)):
        if same[i] >= 0:
            feats[i] = feats_store[same[i]]
        else:
            own = [given[i].get(m) for m in old]
            row = np.array([pred[i, j] if v is None else float(v) for j, v in enumerate(own)])
            feats[i] = np.concatenate([row, pred[i]])
    a, c0 = fit_logistic(feats, y)
    column = 1.0 / (1.0 + np.exp(-(feats_store @ a + c0)))
    # what the regression misses near the labelled prompts: their residuals, averaged over each
    # stored prompt's RESIDUAL_K nearest labelled prompts and shrunk towards 0 by RESIDUAL_SHRINK
    resid = y - 1.0 / (1.0 + np.exp(-(feats @ a + c0)))
    k = min(RESIDUAL_K, len(q))
    for s in range(0, len(store), 1024):
        sims = store[s : s + 1024] @ q.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        column[s : s + 1024] += resid[part].sum(axis=1) / (k + RESIDUAL_SHRINK)
    column = np.clip(column, 0.0, 1.0)
    labelled = same >= 0
    column[same[labelled]] = y[labelled]
    scorer._outcomes = np.column_stack([outcomes, column])
    scorer.models = [*old, model]
    arrays = {
        "emb": store.astype(np.float16),
        "y": np.asarray(scorer._y, dtype=np.float32),
        "outcomes": scorer._outcomes.astype(np.float32),
    }
    if observed is not None:  # the new column is filled on every stored prompt
        scorer._observed = np.column_stack([mask, np.ones(len(store), dtype=bool)])
        arrays["observed"] = scorer._observed
    save_npz(out / "knn.npz", **arrays)
    _write_models(scorer, out, scorer.models)
    return {
        "method": "outcome column regressed on the others' outcomes and neighbourhood",
        "stored_prompts_labelled": int(labelled.sum()),
    }


def _neighbourhood(scorer: Any, store: np.ndarray, outcomes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, N) mean observed outcomes of each stored prompt's k nearest stored prompts (itself
    included); a model's mean over all stored prompts where no neighbour has its outcome."""
    import numpy as np

    k = min(int(getattr(scorer.options, "k", 50)), len(store))
    prior = (outcomes * mask).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)
    hood = np.empty_like(outcomes)
    for s in range(0, len(store), 1024):
        sims = store[s : s + 1024] @ store.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        seen = mask[part].sum(axis=1)
        total = (outcomes[part] * mask[part]).sum(axis=1)
        hood[s : s + 1024] = np.where(seen > 0, total / np.maximum(seen, 1), prior)
    return hood
