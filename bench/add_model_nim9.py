"""Add a model without starting over, on LLMRouter's 9-model data: how close to retraining?

For each family that can add a model and each of the 3 strongest models (by mean outcome on the
training file): train the family on the other 8 models' outcomes (5,608 training prompts), then
add the 9th with ``tela run --add-to``'s code path (:func:`tela_core.routing.add_model.add_model`)
from K = 50, 100, 200, 500 of its labelled prompts (drawn from the training prompts, with that
model's outcome and cost only, as ``tela judge`` over its answers gives them; 3 seeded draws).
Judged on the 500 test prompts by AIQ (the cost-aware policy's hull area over the single models'
cost range: :mod:`tela_core.eval.nmodel`) against the same family retrained on all 9 models.
Goal (issue 28): within 0.01 AIQ at K = 200.

    nice -n 10 .venv/bin/python bench/add_model_nim9.py [--families matrix-factorization,embedding-knn]

Reads ``$TELA_TEST_DATA/llmrouter-nim9`` when set, else the folder ``tela data get llmrouter`` fills.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tela_core.eval.nmodel import aiq, hull, sweep
from tela_core.plugins.discovery import get_registry
from tela_core.routing.add_model import FAMILY_KIND, add_model
from tela_core.routing.router import Router


def data_dir() -> Path:
    if os.environ.get("TELA_TEST_DATA"):
        return Path(os.environ["TELA_TEST_DATA"]) / "llmrouter-nim9"
    from benchdata import dataset

    return dataset("llmrouter")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="matrix-factorization,embedding-knn")
    ap.add_argument("--ks", default="50,100,200,500")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strongest", type=int, default=3)
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]

    reg = get_registry()
    src = reg.create("source", "llmrouter-json", {})
    d = data_dir()
    train = list(src.records(d / "dcrouter_preprocessed_train.json"))
    test = list(src.records(d / "dcrouter_preprocessed_test.json"))
    models = [m for m in train[0].outcomes if all(m in (r.costs or {}) for r in test)]
    truth = np.array([[r.outcomes[m] for m in models] for r in test])
    cost = np.array([[r.costs[m] for m in models] for r in test])
    singles = [(float(cost[:, j].mean()), float(truth[:, j].mean())) for j in range(len(models))]
    lo, hi = min(c for c, _ in singles), max(c for c, _ in singles)
    prompts = [r.prompt for r in test]
    train_mean = {m: float(np.mean([r.outcomes[m] for r in train])) for m in models}
    strongest = sorted(models, key=lambda m: -train_mean[m])[: args.strongest]
    print(f"{len(train)} train, {len(test)} test prompts, {len(models)} models; adding each of {strongest}")

    def judged(router_dir: Path) -> float:
        """AIQ of the router's models (all 9, or the 8 before adding) over the 9 models' cost range."""
        r = Router.load(router_dir)
        pred = r.scorer.predict_models(prompts)
        have = [m for m in models if m in r.scorer.models]
        cols = [list(r.scorer.models).index(m) for m in have]
        js = [models.index(m) for m in have]
        return aiq(hull(sweep(pred[:, cols], cost[:, js], truth[:, js])), lo, hi)

    def fit(family: str, records: list, where: Path) -> Path:
        scorer = reg.create(FAMILY_KIND, family, {"k": 50} if family == "embedding-knn" else {})
        scorer.fit(records, where, {})
        return where

    work = Path(tempfile.mkdtemp(prefix="add-model-"))
    rows = []
    for family in [f for f in args.families.split(",") if f]:
        t0 = time.perf_counter()
        full = judged(fit(family, train, work / f"{family}-all"))
        print(f"{family}: retrained on all {len(models)} models: AIQ {full:.4f} ({time.perf_counter() - t0:.0f} s)")
        for new in strongest:
            eight = [dataclasses.replace(r, outcomes={m: v for m, v in r.outcomes.items() if m != new}) for r in train]
            base = fit(family, eight, work / f"{family}-without-{new}")
            base_aiq = judged(base)
            for k in ks:
                got, secs = [], []
                for seed in range(args.seeds):
                    idx = np.random.default_rng(seed).choice(len(train), k, replace=False)
                    labelled = [
                        dataclasses.replace(
                            train[i], outcomes={new: train[i].outcomes[new]}, costs={new: train[i].costs[new]}
                        )
                        for i in idx
                    ]
                    t1 = time.perf_counter()
                    out = add_model(base, labelled, work / f"{family}-{new}-{k}-{seed}", echo=lambda _m: None)
                    secs.append(time.perf_counter() - t1)
                    got.append(judged(out))
                rows.append((family, new, k, base_aiq, float(np.mean(got)), float(np.std(got)), full, np.mean(secs)))
                r = rows[-1]
                print(
                    f"  + {new} K={k}: AIQ {r[4]:.4f} ± {r[5]:.4f} (8 models {base_aiq:.4f}; "
                    f"retrained {full:.4f}; diff {r[4] - full:+.4f}; add {r[7]:.1f} s)",
                    flush=True,
                )
    print()
    print(
        "| family | model added | K | AIQ, 8 models | AIQ, added (mean ± sd, 3 draws) | AIQ, retrained on 9 "
        "| added − retrained |"
    )
    print("|---|---|---|---|---|---|---|")
    for fam, new, k, b, m, s, full, _ in rows:
        print(f"| {fam} | {new} | {k} | {b:.4f} | {m:.4f} ± {s:.4f} | {full:.4f} | {m - full:+.4f} |")
    for fam in sorted({r[0] for r in rows}):
        at = [r[4] - r[6] for r in rows if r[0] == fam and r[2] == 200]
        if at:
            print(f"{fam}: worst added − retrained at K=200: {min(at):+.4f} (goal: within 0.01)")


if __name__ == "__main__":
    main()
