"""How much can labels of new subjects move a router on MMLU at all? The ceiling of bench/drift_loop.py.

bench/drift_loop.py found that a few hundred labels of the held-out subjects, bought through the
serving path, do not move the default kNN router. This script asks whether ANY of a few router
recipes could move it by the loop's goal (+0.05 APGR over the frozen router), with no serving path
(tela's families trained in process on the same records, the same default ``model2vec`` embedder).

Mode ``subjects`` (the in-subject ceiling): per seed, each of the 15 held-out subjects' prompts is
split in half: one half is the label pool, the other half (about 1,530 prompts, all 15 subjects) is
evaluated. The frozen router of each recipe is trained on the 42 training subjects only (10,903
records); the learning one on those plus N labels drawn uniformly from the pool (N = 100, 300, 600:
what the loop buys; ``all``: the whole pool, about 1,525), or (the ``-own`` recipes) on the N labels
alone. Reported: APGR on the evaluated half, the recipe's frozen APGR, and the gain over the frozen
default router (``embedding-knn``, k = 50, as the loop's v1), mean ± sd over seeds; the oracle's
and random routing's APGR on the same prompts for scale; and two references that are not routers
(they are told each prompt's subject): w = the subject's share of weak-model errors (or its mean
strong - weak gain) in the N labels. ``--pool-share`` sets the share of each subject in the pool.

Mode ``loop`` (the loop's label schedule, in process): the rounds of bench/drift_loop.py
(``build_rounds``: the same traffic, the same arrival of subjects), a uniform ``--shadow`` share of
each round's prompts labelled, and after each round a candidate trained on the public records plus
the labels bought so far. Reported: per round, the APGR of the latest candidate minus v1's on the
round's unlabelled prompts (the loop's "had every candidate been promoted" row). ``--lag 2`` is the
loop as built (the candidate trained after round r saw rounds < r, since round r's labels judge it,
and it serves round r + 1); ``--lag 1`` trains on every label bought through round r; ``--recent K``
keeps only the labels of the last K of those rounds.

Use seeds other than the drift bench's (it runs 0-3) to choose a recipe, so that the choice is not
made on the prompts the bench then reports.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/drift_ceiling.py subjects --seeds 100,101,102
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/drift_ceiling.py loop --seeds 100,101,102 \\
        --recipes knn50,knn10 --lag 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from benchdata import dataset

from tela_core.data.protocols import split
from tela_core.eval import metrics
from tela_core.plugins.discovery import get_registry
from tela_core.schema.records import Record

sys.path.insert(0, str(Path(__file__).parent))

#: name -> (family, options, training data: "public+own" | "own", weight of the own labels)
RECIPES: dict[str, tuple[str, dict[str, Any], str, float]] = {
    "knn50": ("embedding-knn", {}, "public+own", 1.0),  # the loop's recipe (v1's family, defaults)
    "knn50-x5": ("embedding-knn", {}, "public+own", 5.0),
    "knn10": ("embedding-knn", {"k": 10}, "public+own", 1.0),
    "knn50-sim": ("embedding-knn", {"weighting": "similarity"}, "public+own", 1.0),
    "knn50-gain": ("embedding-knn", {"target": "gain"}, "public+own", 1.0),
    "knn10-own": ("embedding-knn", {"k": 10}, "own", 1.0),
    "knn25-own": ("embedding-knn", {"k": 25}, "own", 1.0),
    "knn50-own": ("embedding-knn", {}, "own", 1.0),
    "knn100-own": ("embedding-knn", {"k": 100}, "own", 1.0),
    "linear": ("embedding-linear", {}, "public+own", 1.0),
    "linear-x5": ("embedding-linear", {}, "public+own", 5.0),
    "linear-own": ("embedding-linear", {}, "own", 1.0),
    "mf": ("matrix-factorization", {}, "public+own", 1.0),
}
BASE = "knn50"


def apgr(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    if len(weak) == 0 or float(np.mean(weak)) == float(np.mean(strong)):
        return float("nan")
    return float(metrics.apgr(np.asarray(w, float), weak, strong))


class Trainer:
    """Fits recipes in process; keeps each fitted router's scores of the prompts asked so far."""

    def __init__(self, weak: str, strong: str, tmp: Path) -> None:
        self.reg = get_registry()
        self.weak, self.strong, self.tmp = weak, strong, tmp
        self.n = 0

    def fit(self, recipe: str, public: Sequence[Record], own: Sequence[Record]) -> Any:
        fam, opts, mode, weight = RECIPES[recipe]
        data: list[Record] = [] if mode == "own" else list(public)
        reps = int(weight)
        data += list(own) * reps
        if weight != reps:
            sys.exit(f"{recipe}: whole-number weights only")
        scorer = self.reg.create("family", fam, {"weak": self.weak, "strong": self.strong, **opts})
        self.n += 1
        scorer.fit(data, self.tmp / f"r{self.n}", {})
        return scorer

    def frozen(self, recipe: str, public: Sequence[Record]) -> Any:
        """The recipe's router on the public records alone (an own-only recipe: the base's)."""
        fam, opts, mode, _w = RECIPES[recipe]
        if mode == "own":
            return None
        scorer = self.reg.create("family", fam, {"weak": self.weak, "strong": self.strong, **opts})
        self.n += 1
        scorer.fit(list(public), self.tmp / f"r{self.n}", {})
        return scorer


def ms(v: Sequence[float]) -> str:
    v = [x for x in v if x == x]
    if not v:
        return "-"
    return f"{np.mean(v):+.3f} ± {np.std(v):.3f}" if len(v) > 1 else f"{v[0]:+.3f}"


def msp(v: Sequence[float]) -> str:
    return ms(v).lstrip("+")


def load() -> tuple[list[Record], list[Record], str, str]:
    reg = get_registry()
    src = reg.create("source", "routellm-csv", {})
    train, held = split("mmlu-heldout", list(src.records(dataset("routellm-mmlu"))))
    return list(train), list(held), src.options.weak_model, src.options.strong_model


def subjects_mode(args: argparse.Namespace, recipes: list[str]) -> dict[str, Any]:
    train, held, weak_m, strong_m = load()
    budgets = [b for b in args.budgets.split(",") if b]
    print(
        f"{len(train)} training-subject records (public); {len(held)} held-out-subject records, "
        f"{args.pool_share:.0%} of each subject the label pool, the rest evaluated; budgets {budgets}; "
        f"recipes {recipes}",
        flush=True,
    )
    res: dict[str, Any] = {"seeds": [], "recipes": recipes, "budgets": budgets}
    with tempfile.TemporaryDirectory(prefix="drift-ceiling-") as tmp:
        tr = Trainer(weak_m, strong_m, Path(tmp))
        frozen_cache: dict[str, Any] = {}
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            pool: list[Record] = []
            ev: list[Record] = []
            for s in sorted({r.group for r in held}):
                rs = [r for r in held if r.group == s]
                perm = rng.permutation(len(rs))
                half = round(len(rs) * args.pool_share)
                pool += [rs[i] for i in perm[:half]]
                ev += [rs[i] for i in perm[half:]]
            pool = [pool[i] for i in rng.permutation(len(pool))]  # nested draws: the first N
            prompts = [r.prompt for r in ev]
            weak = np.array([r.outcomes[weak_m] for r in ev])
            strong = np.array([r.outcomes[strong_m] for r in ev])
            row: dict[str, Any] = {
                "seed": seed,
                "n_eval": len(ev),
                "oracle": apgr(strong - weak, weak, strong),
                "random": float(np.mean([apgr(rng.random(len(ev)), weak, strong) for _ in range(20)])),
                "frozen": {},
                "learnt": {},
            }
            for rec in recipes:
                if rec not in frozen_cache and RECIPES[rec][2] != "own":
                    frozen_cache[rec] = tr.frozen(rec, train)
                f = frozen_cache.get(rec)
                if f is not None:
                    row["frozen"][rec] = apgr(f.score(prompts).w, weak, strong)
            if BASE not in row["frozen"]:
                frozen_cache.setdefault(BASE, tr.frozen(BASE, train))
                row["frozen"][BASE] = apgr(frozen_cache[BASE].score(prompts).w, weak, strong)
            groups = [r.group for r in ev]
            for b in budgets:
                n = len(pool) if b == "all" else int(b)
                own = pool[:n]
                # references, not routers (they are told each prompt's subject): w = the subject's
                # share of weak-wrong (or mean gain) in the N labels, the overall share where none
                for tgt in ("weak-wrong", "gain"):
                    y = [
                        (1 - r.outcomes[weak_m]) if tgt == "weak-wrong" else r.outcomes[strong_m] - r.outcomes[weak_m]
                        for r in own
                    ]
                    prior = float(np.mean(y))
                    by: dict[str | None, list[float]] = {}
                    for r, v in zip(own, y):
                        by.setdefault(r.group, []).append(v)
                    w = np.array([float(np.mean(by[g])) if g in by else prior for g in groups])
                    row["learnt"].setdefault(f"subject-mean-{tgt}", {})[b] = apgr(w, weak, strong)
                for rec in recipes:
                    t0 = time.perf_counter()
                    sc = tr.fit(rec, train, own)
                    row["learnt"].setdefault(rec, {})[b] = apgr(sc.score(prompts).w, weak, strong)
                    print(
                        f"  seed {seed} N={b:>4} {rec:<11} APGR {row['learnt'][rec][b]:.3f} "
                        f"(frozen {BASE} {row['frozen'][BASE]:.3f}) {time.perf_counter() - t0:.1f} s",
                        flush=True,
                    )
            res["seeds"].append(row)
    rows = res["seeds"]
    print(f"\n{len(rows)} seed(s) {args.seeds}, mean ± sd; {rows[0]['n_eval']} evaluated prompts per seed")
    print(
        f"oracle APGR {msp([r['oracle'] for r in rows])}; random {msp([r['random'] for r in rows])}; "
        f"frozen {BASE} (v1) {msp([r['frozen'][BASE] for r in rows])}"
    )
    print("\nAPGR on the evaluated half | gain over frozen v1 (" + BASE + "), same prompts")
    print("| recipe | frozen (public only) | " + " | ".join(f"N = {b}" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for rec in [*recipes, "subject-mean-weak-wrong", "subject-mean-gain"]:
        fz = [r["frozen"].get(rec, float("nan")) for r in rows]
        cells = []
        for b in budgets:
            a = [r["learnt"][rec][b] for r in rows]
            g = [r["learnt"][rec][b] - r["frozen"][BASE] for r in rows]
            cells.append(f"{msp(a)} ({ms(g)})")
        print(f"| {rec} | {msp(fz)} | " + " | ".join(cells) + " |")
    return res


def loop_mode(args: argparse.Namespace, recipes: list[str]) -> dict[str, Any]:
    from drift_loop import build_rounds  # the bench's own traffic

    train, held, weak_m, strong_m = load()
    as_dict = lambda rs: [  # noqa: E731
        {"id": r.id, "prompt": r.prompt, "group": r.group, "outcomes": r.outcomes} for r in rs
    ]
    by_prompt = {r.prompt: r for r in [*train, *held]}
    res: dict[str, Any] = {"seeds": [], "recipes": recipes, "lag": args.lag, "recent": args.recent}
    print(
        f"loop schedule: {args.rounds} rounds of {args.per_round}, uniform shadow {args.shadow}, lag {args.lag}, "
        f"recent {args.recent or 'all'}; "
        f"recipes {recipes}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="drift-ceiling-") as tmp:
        tr = Trainer(weak_m, strong_m, Path(tmp))
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            public_d, rounds, _arr = build_rounds(
                as_dict(train), as_dict(held), rng, args.rounds, args.per_round, args.old_share
            )
            public = [by_prompt[d["prompt"]] for d in public_d]
            v1 = tr.frozen(BASE, public)
            lrng = np.random.default_rng(seed + 10_000)
            labelled: list[list[Record]] = []
            row: dict[str, Any] = {"seed": seed, "gain": {rec: [] for rec in recipes}, "labels": []}
            serving: dict[str, Any] = {rec: None for rec in recipes}  # None: v1
            for r, batch in enumerate(rounds, start=1):
                lab = lrng.random(len(batch)) < args.shadow
                unl = [p for p, m in zip(batch, lab) if not m]
                weak = np.array([p.weak for p in unl])
                strong = np.array([p.strong for p in unl])
                prompts = [p.prompt for p in unl]
                base = apgr(v1.score(prompts).w, weak, strong)
                for rec in recipes:
                    sc = serving[rec]
                    row["gain"][rec].append(0.0 if sc is None else apgr(sc.score(prompts).w, weak, strong) - base)
                labelled.append([by_prompt[p.prompt] for p, m in zip(batch, lab) if m])
                row["labels"].append(sum(map(len, labelled)))
                # the candidate that serves the next round: trained on the labels of rounds <= r + 1 - lag
                upto = r + 1 - args.lag
                if upto >= 1 and r < len(rounds):
                    first = max(0, upto - args.recent) if args.recent else 0
                    own = [x for rs in labelled[first:upto] for x in rs]
                    for rec in recipes:
                        serving[rec] = tr.fit(rec, public, own)
            print(
                f"  seed {seed}: labels {row['labels']}; last-round gain "
                + ", ".join(f"{rec} {row['gain'][rec][-1]:+.3f}" for rec in recipes),
                flush=True,
            )
            res["seeds"].append(row)
    rows = res["seeds"]
    nr = len(rows[0]["gain"][recipes[0]])
    print(
        f"\n{len(rows)} seed(s) {args.seeds}; lag {args.lag}; gain of the latest candidate over v1 on each round's "
        "unlabelled prompts, mean ± sd"
    )
    print("| recipe | " + " | ".join(f"round {i + 1}" for i in range(nr)) + " | mean rounds 2.. |")
    print("|---|" + "---|" * (nr + 1))
    for rec in recipes:
        cells = [ms([r["gain"][rec][i] for r in rows]) for i in range(nr)]
        later = [float(np.mean(r["gain"][rec][1:])) for r in rows]
        print(f"| {rec} | " + " | ".join(cells) + f" | {ms(later)} |")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["subjects", "loop"])
    ap.add_argument("--seeds", default="100,101,102", help="comma-separated (the drift bench runs 0-3)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="from: " + ", ".join(RECIPES))
    ap.add_argument("--budgets", default="100,300,600,all", help="subjects mode: label counts")
    ap.add_argument("--pool-share", type=float, default=0.5, help="subjects mode: share of each subject labelled")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=400)
    ap.add_argument("--old-share", type=float, default=0.2)
    ap.add_argument("--shadow", type=float, default=0.25)
    ap.add_argument("--lag", type=int, default=2, choices=[1, 2], help="loop mode (see the module doc)")
    ap.add_argument("--recent", type=int, default=0, help="loop mode: only the labels of the last K rounds (0: all)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = ap.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    recipes = [r for r in args.recipes.split(",") if r]
    bad = [r for r in recipes if r not in RECIPES]
    if bad:
        ap.error(f"unknown recipe(s) {', '.join(bad)}; known: {', '.join(RECIPES)}")
    t0 = time.perf_counter()
    res = subjects_mode(args, recipes) if args.mode == "subjects" else loop_mode(args, recipes)
    print(f"\n{(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
