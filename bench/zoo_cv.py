"""How the zoo's options were chosen: group cross-validation over MMLU's 42 *training* subjects.

The 15 evaluation subjects (docs/metrics.md) are dropped first and never read. The 42 training
subjects are dealt into 6 folds (seeded); each configuration trains on 5 folds' subjects and is
scored on the 6th. Printed per configuration: the mean and spread of the 6 fold APGRs, and the
APGR of the pooled out-of-fold scores over all 42 subjects, with CPT(50%)/CPT(80%) of the pool.
Metric definitions: tela_core.eval.metrics.

    HF_HUB_OFFLINE=1 TELA_CACHE=.cache/tela .venv/bin/python bench/zoo_cv.py
    HF_HUB_OFFLINE=1 TELA_CACHE=.cache/tela .venv/bin/python bench/zoo_cv.py --only lm-probe

``--only TEXT`` runs the configurations whose label contains TEXT.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from benchdata import dataset

from tela_core.data.protocols import split
from tela_core.eval import metrics
from tela_core.plugins.discovery import get_registry

DATA = dataset("routellm-mmlu")  # `tela data get routellm-mmlu` fetches it
CONFIGS: list[tuple[str, str, dict]] = [
    ("length", "length", {}),
    ("length, target=gain", "length", {"target": "gain"}),
    ("prompt-features", "prompt-features", {}),
    ("embedding-knn k=50", "embedding-knn", {"k": 50}),
    ("embedding-knn k=50, target=gain", "embedding-knn", {"k": 50, "target": "gain"}),
    ("embedding-knn k=20, target=gain", "embedding-knn", {"k": 20, "target": "gain"}),
    ("embedding-knn k=200, target=gain", "embedding-knn", {"k": 200, "target": "gain"}),
    ("embedding-linear", "embedding-linear", {}),
    ("embedding-linear, target=gain", "embedding-linear", {"target": "gain"}),
    (
        "ensemble (knn50+linear+length)",
        "ensemble",
        {"members": [{"family": "embedding-knn", "options": {"k": 50}}, "embedding-linear", "length"]},
    ),
    (
        "ensemble (knn50+linear+length), target=gain",
        "ensemble",
        {
            "target": "gain",
            "members": [{"family": "embedding-knn", "options": {"k": 50}}, "embedding-linear", "length"],
        },
    ),
    # lm-probe: SmolLM2-135M-Instruct mean-pooled hidden states (of 30 layers); layer first, then C.
    *[(f"lm-probe layer={L}", "lm-probe", {"layer": L}) for L in (6, 9, 12, 15, 18)],
    *[(f"lm-probe layer=12 C={C}", "lm-probe", {"layer": 12, "C": C}) for C in (0.001, 0.1)],
    ("lm-probe layer=12, target=gain", "lm-probe", {"layer": 12, "target": "gain"}),
    (
        "ensemble (lm-probe+knn50)",
        "ensemble",
        {"members": ["lm-probe", {"family": "embedding-knn", "options": {"k": 50}}]},
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run configurations whose label contains this text")
    args = ap.parse_args()

    reg = get_registry()
    src = reg.create("source", "routellm-csv", {})
    train, _ = split("mmlu-heldout", list(src.records(DATA)))  # the eval part is discarded unread
    weak_m, strong_m = src.options.weak_model, src.options.strong_model
    subjects = sorted({r.group for r in train})
    rng = np.random.default_rng(0)
    rng.shuffle(subjects)
    fold_of = {s: i % 6 for i, s in enumerate(subjects)}
    fold = np.array([fold_of[r.group] for r in train])
    weak = np.array([r.outcomes[weak_m] for r in train])
    strong = np.array([r.outcomes[strong_m] for r in train])
    print(f"{len(train)} prompts of {len(subjects)} training subjects, 6 group folds")
    print("| configuration | fold-mean APGR (sd) | pooled APGR | pooled CPT(50%) | pooled CPT(80%) | seconds |")
    print("|---|---|---|---|---|---|")
    for label, fam, opts in [c for c in CONFIGS if args.only in c[0]]:
        t0 = time.perf_counter()
        oof = np.zeros(len(train))
        per_fold = []
        for f in range(6):
            tr = [r for r, k in zip(train, fold) if k != f]
            idx = np.flatnonzero(fold == f)
            scorer = reg.create("family", fam, {"weak": weak_m, "strong": strong_m, **opts})
            scorer.fit(tr, Path(tempfile.mkdtemp()) / fam, {})
            oof[idx] = scorer.score([train[i].prompt for i in idx]).w
            per_fold.append(metrics.apgr(oof[idx], weak[idx], strong[idx]))
        c = metrics.curve(oof, weak, strong)
        print(
            f"| {label} | {np.mean(per_fold):.3f} ({np.std(per_fold):.3f}) | {c.apgr:.3f} | {c.cpt50:.2f} | "
            f"{c.cpt80:.2f} | {time.perf_counter() - t0:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
