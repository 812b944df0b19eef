"""N-model routing on LLMRouter's 9-model data (`tela data get llmrouter`): quality vs cost.

Each family trains on the train file's N-model records (5,608 prompts, 9 models, no weak/strong
pair: the router folder lists all 9 and is saved with the cost-aware policy) and predicts every
model's quality on the 500 test prompts (``Scores.quality``). The cost-aware policy picks, per
prompt, argmax_m predicted_quality[m] − λ · cost[m] / mean_cost, λ swept; each λ gives one
(mean cost, mean quality) point. Printed per family: the upper non-decreasing convex hull's best
quality, its normalised area over the single models' cost range (RouterBench's AIQ), the quality
at the best single model's cost, the cost to match that model, and the RouterArena score of the
best point on the sweep (:func:`tela_core.eval.nmodel.arena_score`); beside them every single
model and the oracle (the same policy on the true outcomes), on the same prompts.

``--cv`` adds each row's AIQ under 5-fold cross-validation on the train file alone (how the
hyper-parameters here were chosen; the test file is never used for a choice). 119 of the 500 test
prompts occur verbatim in the train file (their outcomes agree on 58% of them: the models sample);
the rows with ``exact`` use that, and the unseen-prompt AIQ column shows each row on the other 381.
``--drop-repeats`` leaves those train prompts out of training, so that no row (the per-model heads
and MF memorise them too) sees a test prompt's outcomes.

Costs are the llmrouter-json source's estimate (no token counts in the data: input tokens from
characters / 4, a flat 256 output tokens, default_llm.json prices).

    TELA_TEST_DATA=DIR .venv/bin/python bench/nmodel_nim9.py [--rows knn50,knn200,...] [--embedder minilm] [--cv]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchdata import dataset

from tela_core.eval.nmodel import evaluate_nmodel
from tela_core.plugins.discovery import get_registry

#: $TELA_TEST_DATA/llmrouter-nim9 when set, else the folder `tela data get llmrouter` fills
DATA = (
    Path(os.environ["TELA_TEST_DATA"]) / "llmrouter-nim9" if os.environ.get("TELA_TEST_DATA") else dataset("llmrouter")
)

KNN200 = {"family": "embedding-knn", "options": {"k": 200}}
MF = {"family": "matrix-factorization", "options": {}}
LINEAR = {"family": "embedding-linear", "options": {}}
#: name -> (label, family, options). k = 200 was the best of k 50/100/200 by 5-fold CV on the train
#: file (model2vec); MF and the linear heads keep their defaults (C = 1: CV 0.6224, C = 0.3 0.6237,
#: within noise). The ensembles
#: use 2 folds for their stack (it sets only the two-model w; each model's quality is the mean).
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "knn50": ("embedding-knn (k=50, the default)", "embedding-knn", {"k": 50}),
    "knn200": ("embedding-knn (k=200)", "embedding-knn", {"k": 200}),
    "knn200-sim": (
        "embedding-knn (k=200, similarity weighting, temperature 0.05)",
        "embedding-knn",
        {"k": 200, "weighting": "similarity", "temperature": 0.05},
    ),
    "knn200-exact": ("embedding-knn (k=200, exact=0.5)", "embedding-knn", {"k": 200, "exact": 0.5}),
    "mf": ("matrix-factorization (dim 64)", "matrix-factorization", {}),
    "linear": ("embedding-linear (a head per model)", "embedding-linear", {"C": 1.0}),
    "ensemble": (
        "ensemble: mean of kNN (k=200), MF, linear heads",
        "ensemble",
        {"members": [KNN200, MF, LINEAR], "folds": 2},
    ),
    "ensemble-exact": (
        "ensemble, its kNN with exact=0.5",
        "ensemble",
        {"members": [{"family": "embedding-knn", "options": {"k": 200, "exact": 0.5}}, MF, LINEAR], "folds": 2},
    ),
}


def _predict(fam: str, opts: dict[str, Any], train: list[Any], prompts: list[str], models: list[str]) -> Any:
    """Train ``fam`` on ``train`` (N-model: no pair named) and return its (n, M) quality, columns ``models``."""
    scorer = get_registry().create("family", fam, opts)
    scorer.fit(train, Path(tempfile.mkdtemp()) / fam, {})
    s = scorer.score(prompts)
    cols = list(s.models)
    return np.asarray(s.quality)[:, [cols.index(m) for m in models]]


def _cv_aiq(fam: str, opts: dict[str, Any], train: list[Any], models: list[str], folds: int = 5) -> float:
    """AIQ of out-of-fold predictions over the train file (5 random folds, seed 0)."""
    fold = np.random.default_rng(0).permutation(len(train)) % folds
    truth = np.array([[r.outcomes[m] for m in models] for r in train])
    cost = np.array([[r.costs[m] for m in models] for r in train])
    pred = np.zeros_like(truth)
    for f in range(folds):
        tr = [r for r, k in zip(train, fold) if k != f]
        va = np.flatnonzero(fold == f)
        pred[va] = _predict(fam, opts, tr, [train[i].prompt for i in va], models)
    return evaluate_nmodel("cv", models, pred, cost, truth).aiq_router


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=",".join(ROWS), help=f"rows to run, of {', '.join(ROWS)}")
    ap.add_argument("--embedder", default=None, help="embedder of every family (default: the families' default)")
    ap.add_argument("--cv", action="store_true", help="also each row's 5-fold CV AIQ on the train file")
    ap.add_argument(
        "--drop-repeats",
        action="store_true",
        help="leave out of training the train prompts that occur verbatim in the test file "
        "(no family sees a test prompt's outcomes: the honest numbers)",
    )
    args = ap.parse_args()

    src = get_registry().create("source", "llmrouter-json", {})
    train = list(src.records(DATA / "dcrouter_preprocessed_train.json"))
    test = list(src.records(DATA / "dcrouter_preprocessed_test.json"))
    if args.drop_repeats:
        asked = {r.prompt for r in test}
        kept = [r for r in train if r.prompt not in asked]
        print(f"--drop-repeats: {len(train) - len(kept)} train prompts that occur in the test file left out")
        train = kept
    models = [m for m in train[0].outcomes if all(m in (r.costs or {}) for r in test)]
    truth = np.array([[r.outcomes[m] for m in models] for r in test])
    cost = np.array([[r.costs[m] for m in models] for r in test])
    seen = {r.prompt for r in train}
    unseen = np.array([r.prompt not in seen for r in test])
    prompts = [r.prompt for r in test]
    base = evaluate_nmodel("oracle", models, truth, cost, truth)
    lo, hi = min(c for c, _ in base.singles), max(c for c, _ in base.singles)
    print(
        f"{len(train)} train, {len(test)} test prompts ({int((~unseen).sum())} of them in the train file), "
        f"{len(models)} models; single-model cost range ${lo * 1e6:.2f}–${hi * 1e6:.2f} per M queries"
    )
    for j, m in enumerate(models):
        c, q = base.singles[j]
        print(
            f"  single {m:34s} quality {q:.4f}  ${c * 1e6:.2f}/M queries  RouterArena {100 * base.arena_singles[j]:.2f}"
        )
    bj = models.index(base.best_single)
    head = (
        f"| policy | max quality | AIQ | AIQ, {int(unseen.sum())} unseen prompts | quality at the best model's cost "
        "| cost to match it | RouterArena score (quality, $/1k) |" + (" CV AIQ (train) |" if args.cv else "")
    )
    print("\n" + head + "\n" + "|---" * (head.count("|") - 1) + "|")
    best_arena = max(base.arena_singles)
    print(
        f"| best single model ({models[bj]}) | {base.singles[bj][1]:.4f} | | | | 1.00× "
        f"| {100 * base.arena_singles[bj]:.2f} |" + (" |" if args.cv else "")
    )
    ja = int(np.argmax(base.arena_singles))
    print(
        f"| best single model by RouterArena ({models[ja]}) | {base.singles[ja][1]:.4f} | | | | "
        f"| {100 * best_arena:.2f} |" + (" |" if args.cv else "")
    )
    print(f"| hull of the single models | | {base.aiq_singles:.4f} | | | | |" + (" |" if args.cv else ""))
    o = base.arena_oracle
    sub = evaluate_nmodel("oracle", models, truth[unseen], cost[unseen], truth[unseen])
    print(
        f"| oracle (the policy on true outcomes) | {base.quality_max:.4f} | {base.aiq_oracle:.4f} "
        f"| {sub.aiq_oracle:.4f} | | {base.cost_to_match_best_single:.2f}× "
        f"| {100 * o['arena_score']:.2f} ({o['quality']:.4f}, ${o['cost_per_1k']:.3f}) |" + (" |" if args.cv else "")
    )
    results = {}
    for key in [k for k in args.rows.split(",") if k]:
        label, fam, opts = ROWS[key]
        if args.embedder:  # an ensemble hands it to its members
            opts = {**opts, "embedder": args.embedder}
        t0 = time.perf_counter()
        pred = _predict(fam, opts, train, prompts, models)
        secs = time.perf_counter() - t0
        e = evaluate_nmodel(label, models, pred, cost, truth)
        u = evaluate_nmodel(label, models, pred[unseen], cost[unseen], truth[unseen])
        cv = _cv_aiq(fam, opts, train, models) if args.cv and fam != "ensemble" else None
        a = e.arena_router
        match = "never" if e.cost_to_match_best_single is None else f"{e.cost_to_match_best_single:.2f}×"
        print(
            f"| {label} | {e.quality_max:.4f} | {e.aiq_router:.4f} | {u.aiq_router:.4f} "
            f"| {e.quality_at_best_single_cost:.4f} | {match} | {100 * a['arena_score']:.2f} ({a['quality']:.4f}, "
            f"${a['cost_per_1k']:.3f}) |" + ((f" {cv:.4f} |" if cv is not None else " |") if args.cv else ""),
            flush=True,
        )
        results[key] = {**e.to_dict(), "aiq_unseen": u.aiq_router, "cv_aiq": cv, "seconds": round(secs, 1)}
    print(
        json.dumps(
            {
                "models": models,
                "singles": base.singles,
                "arena_singles": base.arena_singles,
                "rows": {k: {x: v[x] for x in ("aiq_router", "quality_max", "seconds")} for k, v in results.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
