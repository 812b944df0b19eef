"""The router-zoo table of docs/benchmarks.md: every family on MMLU's 15 held-out subjects.

Trains each family on the 42 training subjects (11k prompts), scores the 3,056 held-out prompts
(contaminated ones dropped), and prints APGR, CPT(50%), CPT(80%), train and score seconds beside
the random (10 seeds) and oracle baselines computed in the same process (docs/metrics.md protocol).

Two passes: ``defaults`` (every family with its default options: the RouteLLM "weak wrong" target)
and ``tuned`` (options chosen by 6-fold cross-validation over the 42 *training* subjects only;
never on the evaluation subjects). Embeddings come from the shared cache ($TELA_CACHE), so the
train seconds of the embedding families exclude the one-off embedding of the prompts unless the
cache is cold (see the printed cache note).

    HF_HUB_OFFLINE=1 TELA_CACHE=.cache/tela .venv/bin/python bench/zoo_mmlu.py --output bench-out/zoo-mmlu
    ... --passes encoder     # encoder-classifier, capped (ENCODER below)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchdata import dataset

from tela_core.eval.zoo import HEADER, run_zoo, table_rows
from tela_core.plugins.discovery import get_registry

DATA = dataset("routellm-mmlu")  # `tela data get routellm-mmlu` fetches it

DEFAULTS = [
    "length",
    "prompt-features",
    "embedding-knn",
    "embedding-linear",
    "matrix-factorization",
    "ensemble",
    "lm-probe",
]
TUNED: dict[str, dict] = {
    "length": {"target": "gain"},
    "embedding-knn": {"target": "gain", "k": 50},
    "embedding-linear": {"target": "gain"},
    "matrix-factorization": {"target": "gain"},
    "lm-probe": {"target": "gain", "layer": 12},
    "ensemble": {
        "target": "gain",
        "members": [{"family": "embedding-knn", "options": {"k": 50}}, "embedding-linear", "length"],
    },
}
#: encoder-classifier is capped to fit a 2-core CPU: a seeded sample of the training prompts, short.
ENCODER = {"max_train": 1500, "max_length": 128, "batch_size": 16, "learning_rate": 5e-5, "epochs": 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", type=Path, default=Path("bench-out/zoo-mmlu"))
    ap.add_argument(
        "--passes", default="defaults,tuned", help="defaults, tuned, encoder (capped encoder-classifier; slow on CPU)"
    )
    args = ap.parse_args()

    src = get_registry().create("source", "routellm-csv", {})
    t0 = time.perf_counter()
    records = list(src.records(DATA))
    print(f"read {len(records)} records in {time.perf_counter() - t0:.1f}s")
    for name in args.passes.split(","):
        if name == "defaults":
            fams, opts = list(DEFAULTS), {}
        elif name == "tuned":
            fams, opts = list(TUNED), dict(TUNED)
        else:
            fams, opts = ["encoder-classifier"], {"encoder-classifier": dict(ENCODER)}
        res = run_zoo(
            records,
            fams,
            args.output / name,
            protocol="mmlu-heldout",
            options=opts,
            on_event=lambda m: print(" ", m, flush=True),
        )
        print(
            f"\n## {name}: {res.n_train} train / {res.n_eval} eval prompts; weak {res.q_weak:.4f}, strong "
            f"{res.q_strong:.4f}"
        )
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for row in table_rows(res):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
