"""N-model routing on LLMRouter's 9-model data (`tela data get llmrouter`): quality vs cost.

A cost-aware policy over a zoo family's per-model predictions: for each prompt pick
argmax_m  predicted_quality[m] − λ · cost[m] / mean_cost, and sweep λ. Each λ gives one
(mean cost, mean quality) point on the test file; the upper non-decreasing convex hull of the
points and its normalised area over the single models' cost range (RouterBench's AIQ) summarise
it. Printed beside: every single model, the best single model, and the oracle (the same policy on
the true outcomes). The router trains on the train file only (5,608 prompts), tested on 500.

Costs are the llmrouter-json source's estimate (no token counts in the data: input tokens from
characters / 4, a flat 256 output tokens, default_llm.json prices).

    .venv/bin/python bench/nmodel_nim9.py [--families embedding-knn,matrix-factorization]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from benchdata import dataset

from tela_core.eval.nmodel import aiq, hull, hull_value, sweep
from tela_core.plugins.discovery import get_registry

DATA = dataset("llmrouter")  # `tela data get llmrouter` fetches it


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="embedding-knn,matrix-factorization")
    ap.add_argument("--knn-k", type=int, default=50)
    args = ap.parse_args()

    reg = get_registry()
    src = reg.create("source", "llmrouter-json", {})
    train = list(src.records(DATA / "dcrouter_preprocessed_train.json"))
    test = list(src.records(DATA / "dcrouter_preprocessed_test.json"))
    models = [m for m in train[0].outcomes if all(m in (r.costs or {}) for r in test)]
    truth = np.array([[r.outcomes[m] for m in models] for r in test])
    cost = np.array([[r.costs[m] for m in models] for r in test])
    singles = [(float(cost[:, j].mean()), float(truth[:, j].mean())) for j in range(len(models))]
    lo, hi = min(c for c, _ in singles), max(c for c, _ in singles)
    best_j = int(np.argmax([q for _, q in singles]))
    rows = []
    print(
        f"{len(train)} train, {len(test)} test prompts, {len(models)} models; single-model cost range "
        f"${lo * 1e6:.2f}–${hi * 1e6:.2f} per M queries"
    )
    for j, m in enumerate(models):
        print(f"  single {m:34s} quality {singles[j][1]:.4f}  mean cost ${singles[j][0] * 1e6:.2f}/M queries")
    single_h = hull(singles)
    rows.append(
        ("best single model (" + models[best_j] + ")", singles[best_j][1], singles[best_j][0], None, None, None)
    )
    rows.append(("single-model hull", None, None, aiq(single_h, lo, hi), None, None))
    oracle_h = hull(sweep(truth, cost, truth))
    rows.append(
        ("oracle (policy on true outcomes)", max(q for _, q in oracle_h), None, aiq(oracle_h, lo, hi), None, None)
    )
    opts = {"embedding-knn": {"k": args.knn_k}, "matrix-factorization": {}}
    for fam in [f for f in args.families.split(",") if f]:
        scorer = reg.create(
            "scorer", fam, {**opts.get(fam, {}), "weak": src.options.weak_model, "strong": src.options.strong_model}
        )
        t0 = time.perf_counter()
        scorer.fit(train, Path(tempfile.mkdtemp()) / fam, {})
        t1 = time.perf_counter()
        pred_all = scorer.predict_models([r.prompt for r in test])
        t2 = time.perf_counter()
        pred = pred_all[:, [scorer.models.index(m) for m in models]]
        h = hull(sweep(pred, cost, truth))
        q_at_best_cost = hull_value(h, singles[best_j][0])
        reach = [c for c, q in h if q >= singles[best_j][1]]
        rows.append(
            (
                f"{fam} + cost-aware λ sweep",
                max(q for _, q in h),
                None,
                aiq(h, lo, hi),
                q_at_best_cost,
                (min(reach) / singles[best_j][0]) if reach else None,
            )
        )
        print(
            f"  {fam}: train {t1 - t0:.1f}s, score {t2 - t1:.1f}s; hull "
            f"{[(round(c * 1e6, 1), round(q, 4)) for c, q in h]}"
        )
    print()
    print(
        "| policy | max quality | AIQ (normalised hull area) | quality at best single model's cost | cost to match "
        "best single model (× its cost) |"
    )
    print("|---|---|---|---|---|")

    def f(x: float | None, p: int = 4) -> str:
        return "" if x is None else f"{x:.{p}f}"

    for name, q, c, a, qb, rc in rows:
        print(f"| {name} | {f(q)} | {f(a)} | {f(qb)} | {f(rc, 2)} |")
    print(json.dumps({"models": models, "singles": singles}))


if __name__ == "__main__":
    main()
