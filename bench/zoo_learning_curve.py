"""Learning curves for the MMLU held-out protocol: does more training data move APGR?

For each family (default options, nothing tuned here), trains on seeded subsets of the 42
training subjects' prompts and scores the 15 held-out subjects' prompts (docs/metrics.md protocol), two
ways of growing the data:

- ``prompts``: a random fraction of all 10,903 training prompts (all 42 subjects present);
- ``subjects``: every prompt of a random subset of the training subjects (new topics).

Each point below 100% is the mean of ``--seeds`` seeded subsets (the spread is printed). No
option is chosen from these numbers: they show whether the gap to the 0.65 target is a data-size
gap. Features come from the shared cache ($TELA_CACHE), as in bench/zoo_mmlu.py.

    HF_HUB_OFFLINE=1 TELA_CACHE=.cache/tela .venv/bin/python bench/zoo_learning_curve.py \
        --png docs/img/mmlu-learning-curve.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from benchdata import dataset

from tela_core.data.protocols import split
from tela_core.eval import metrics
from tela_core.infra.io import atomic_open
from tela_core.plugins.discovery import get_registry

DATA = dataset("routellm-mmlu")  # `tela data get routellm-mmlu` fetches it
FAMILIES = ["length", "embedding-knn", "embedding-linear", "lm-probe"]
FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--png", type=Path, default=None, help="write the curves here")
    args = ap.parse_args()

    reg = get_registry()
    src = reg.create("source", "routellm-csv", {})
    train, test = split("mmlu-heldout", list(src.records(DATA)))
    weak_m, strong_m = src.options.weak_model, src.options.strong_model
    weak = np.array([r.outcomes[weak_m] for r in test])
    strong = np.array([r.outcomes[strong_m] for r in test])
    prompts = [r.prompt for r in test]
    subjects = sorted({r.group for r in train})
    fams = [f for f in args.families.split(",") if f]
    print(f"{len(train)} training prompts of {len(subjects)} subjects; {len(test)} held-out prompts")
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    print("| family | grown by | " + " | ".join(f"{f:.0%}" for f in FRACTIONS) + " |")
    print("|---|---|" + "---|" * len(FRACTIONS))
    for fam in fams:
        for mode in ("prompts", "subjects"):
            cells, pts = [], []
            for frac in FRACTIONS:
                vals = []
                for seed in range(1 if frac == 1.0 else args.seeds):
                    rng = np.random.default_rng(seed)
                    if mode == "prompts":
                        pick = rng.choice(len(train), size=max(1, round(frac * len(train))), replace=False)
                        sub = [train[i] for i in sorted(pick)]
                    else:
                        keep = set(rng.choice(subjects, size=max(2, round(frac * len(subjects))), replace=False))
                        sub = [r for r in train if r.group in keep]
                    scorer = reg.create("family", fam, {"weak": weak_m, "strong": strong_m})
                    scorer.fit(sub, Path(tempfile.mkdtemp()) / fam, {})
                    vals.append(metrics.apgr(scorer.score(prompts).w, weak, strong))
                m, sd = float(np.mean(vals)), float(np.std(vals))
                pts.append((frac, m, sd))
                cells.append(f"{m:.3f}" + (f" ±{sd:.3f}" if len(vals) > 1 else ""))
            results.setdefault(fam, {})[mode] = pts
            print(f"| {fam} | {mode} | " + " | ".join(cells) + " |", flush=True)
    if args.png:
        _plot(results, args.png)
        print(f"wrote {args.png}")


def _plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, mode in zip(axes, ("prompts", "subjects")):
        for fam, by_mode in results.items():
            pts = by_mode[mode]
            x = [p[0] * 100 for p in pts]
            ax.errorbar(x, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=fam)
        ax.axhline(0.65, color="grey", linestyle="--", linewidth=1, label="target 0.65")
        ax.axhline(0.5, color="lightgrey", linestyle=":", linewidth=1, label="random ≈ 0.5")
        ax.set_xscale("log")
        ax.set_xticks([5, 10, 25, 50, 100], ["5%", "10%", "25%", "50%", "100%"])
        ax.set_xlabel(f"share of the training {mode}")
        ax.set_title(f"grown by {mode}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("APGR on the 15 held-out MMLU subjects")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()

    with atomic_open(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
