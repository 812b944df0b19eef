"""The flywheel on MMLU's held-out subjects: how many in-domain labels beat a router trained on public data?

Protocol (docs/metrics.md, ``mmlu-heldout``): the 15 held-out subjects are a team's own traffic, the
42 training subjects (10,903 prompts) the public data. For each repeat, a seeded draw of 800
held-out prompts is the traffic that gets labelled; the other held-out prompts (about 2,250) are
the evaluation set, the same for every N and every router of that repeat. For N = 50, 100, 200,
400, 800 (each N's prompts contain the previous N's), the first N traffic prompts go THROUGH THE
REAL PIPELINE: ``tela collect`` asks both models (resuming: each N asks only the new prompts) and
``tela judge --judge reference --set judge.grader=choice`` grades the answers into records. Then
``tela run`` trains each family (a) on the N records alone and (b) on the 42 training subjects plus
the N records (two ``--data``, the judged records' models mapped onto the pair with
``--set source2.models.weak/strong``), beside (c) the router trained on the 42 subjects alone. Every
router is scored on the evaluation set (tela's Router API) and APGR computed from the outcome data
(``tela_core.eval.metrics.apgr``).

THIS REPLAYS OUTCOMES, NOT ANSWER TEXT. RouteLLM's MMLU CSVs say only whether Mixtral-8x7B and
GPT-4-1106 answered each question correctly, and hold no answer key. So each traffic prompt gets a
seeded stand-in reference letter, and a loopback stand-in for the two model APIs
(tela_core.testkit.replay_upstream.ReplayUpstream) answers "The answer is (X)." with that letter
when the outcome data says the model was right and another letter when it was wrong. The
``choice`` grader then recovers exactly the recorded correctness (the script checks it). What this
measures is the router side of the loop (labels of the cheap model's correctness on in-domain
prompts), not a judge's errors or real answers' cost.

    .venv/bin/tela data get routellm-mmlu           # once (or --from DIR with a copy)
    HF_HUB_OFFLINE=1 TELA_CACHE=.cache/tela .venv/bin/python bench/flywheel.py --repeats 1 --embedder model2vec \\
        --output bench-out/flywheel --png docs/img/flywheel-mmlu.png

Embeddings of all 14,042 prompts are computed once and cached in $TELA_CACHE (the first run pays:
seconds with ``model2vec``, tens of minutes on a 2-core CPU with the default ``minilm``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchdata import dataset

from tela_core import Router
from tela_core.data.protocols import split
from tela_core.eval import metrics
from tela_core.infra.io import atomic_open, split_jsonl
from tela_core.plugins.discovery import get_registry
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

NS = [50, 100, 200, 400, 800]
FAMILIES = ["embedding-knn", "embedding-linear"]
LETTERS = "ABCD"
MARGIN = 0.03
TELA = str(Path(sys.executable).with_name("tela"))


def tela(*args: Any) -> str:
    """One `tela` command as a user runs it; stop the bench with its output when it fails."""
    r = subprocess.run([TELA, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tela {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, split on "\\n" only: str.splitlines() also breaks at U+0085 and
    U+2028/U+2029, which a JSON string may hold raw (two MMLU prompts do), and cut such records in two."""
    return [json.loads(line) for line in split_jsonl(path.read_text(encoding="utf-8"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default=",".join(map(str, NS)), help="label counts, comma-separated, increasing")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--repeats", type=int, default=3, help="seeded draws of the traffic (and of the evaluation set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--embedder",
        default=None,
        help="the embedding families' embedder (--set family.embedder=NAME; default: the family's, minilm)",
    )
    ap.add_argument("--output", type=Path, default=Path("bench-out/flywheel"))
    ap.add_argument("--png", type=Path, default=None, help="write APGR against N here")
    args = ap.parse_args()
    ns = [int(n) for n in args.ns.split(",")]
    fams = [f for f in args.families.split(",") if f]
    emb = ["--set", f"family.embedder={args.embedder}"] if args.embedder else []

    def fam_args(fam: str) -> list[str]:
        return ["--family", fam, *(emb if fam.startswith("embedding-") else [])]

    data = dataset("routellm-mmlu")
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    src = get_registry().create("source", "routellm-csv", {})
    weak_m, strong_m = src.options.weak_model, src.options.strong_model
    _, heldout = split("mmlu-heldout", list(src.records(data)))
    seen: set[str] = set()
    unique = [r for r in heldout if not (r.prompt in seen or seen.add(r.prompt))]  # a question asked twice: once
    print(
        f"{len(heldout)} held-out prompts ({len(unique)} distinct) of 15 subjects; traffic {max(ns)} per repeat, "
        f"the rest judged; families {', '.join(fams)}; embedder {args.embedder or 'default'}; {args.repeats} repeat(s)",
        flush=True,
    )

    # (c) the public-data router: the 42 training subjects, through `tela data split` and `tela run`
    if not (out / "split" / "train.jsonl").is_file():
        tela("data", "split", "--protocol", "mmlu-heldout", "-o", out / "split", data)
    public: dict[str, Router] = {}
    for fam in fams:
        d = out / f"public-{fam}"
        if not (d / "tela.json").is_file():
            t0 = time.perf_counter()
            tela("run", "--data", out / "split" / "train.jsonl", *fam_args(fam), "-o", d, "--force", "-q")
            print(f"trained {fam} on the 42 training subjects in {time.perf_counter() - t0:.0f} s", flush=True)
        public[fam] = Router.load(d)

    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        rng = np.random.default_rng(args.seed + rep)
        order = rng.permutation(len(unique))
        pool = [unique[i] for i in order[: max(ns)]]
        evals = [unique[i] for i in order[max(ns) :]]
        ev_prompts = [r.prompt for r in evals]
        weak = np.array([r.outcomes[weak_m] for r in evals])
        strong = np.array([r.outcomes[strong_m] for r in evals])
        ref = {r.prompt: LETTERS[int(rng.integers(4))] for r in pool}

        def answer(r: Any, model: str, ref: dict[str, str] = ref, rng: np.random.Generator = rng) -> Recorded:
            right = ref[r.prompt]
            letter = (
                right if r.outcomes[model] >= 0.5 else LETTERS[(LETTERS.index(right) + 1 + int(rng.integers(3))) % 4]
            )
            text = f"The answer is ({letter})."
            return Recorded(text, prompt_tokens=len(r.prompt) // 4 + 4, completion_tokens=8)

        recorded = {
            "mixtral-8x7b-instruct": {r.prompt: answer(r, weak_m) for r in pool},
            "gpt-4-1106-preview": {r.prompt: answer(r, strong_m) for r in pool},
        }
        rd = out / f"repeat-{rep}"
        shutil.rmtree(rd, ignore_errors=True)
        rd.mkdir(parents=True)
        base: dict[str, float] = {}
        for fam in fams:
            base[fam] = metrics.apgr(public[fam].score(ev_prompts), weak, strong)
        rand = float(
            np.mean([metrics.apgr(np.random.default_rng(s).random(len(evals)), weak, strong) for s in range(10)])
        )
        print(
            f"\nrepeat {rep}: {len(evals)} evaluation prompts; random {rand:.3f}; "
            + "; ".join(f"{f} on the 42 subjects {base[f]:.3f}" for f in fams),
            flush=True,
        )
        with ReplayUpstream(recorded) as up:
            models = [
                "--model",
                f"mixtral={up.base_url}#mixtral-8x7b-instruct",
                "--model",
                f"gpt4={up.base_url}#gpt-4-1106-preview",
                "--price",
                "mixtral=0.6,0.6",
                "--price",
                "gpt4=10,30",
            ]
            for n in ns:
                prompts = rd / f"prompts-{n}.jsonl"
                prompts.write_text(
                    "".join(
                        json.dumps({"id": f"t{i}", "prompt": r.prompt, "reference": ref[r.prompt], "group": r.group})
                        + "\n"
                        for i, r in enumerate(pool[:n])
                    ),
                    encoding="utf-8",
                )
                t0 = time.perf_counter()
                tela("collect", "--prompts", prompts, *models, "-o", rd / "answers")
                judged = rd / f"judged-{n}"
                tela(
                    "judge",
                    "--answers",
                    rd / "answers",
                    "--judge",
                    "reference",
                    "--set",
                    "judge.grader=choice",
                    "-o",
                    judged,
                )
                pipe_s = time.perf_counter() - t0
                recs = jsonl(judged / "records.jsonl")
                truth = {f"t{i}": r for i, r in enumerate(pool[:n])}
                # records name the models by id (the names after --model are how they were reached)
                assert len(recs) == n and all(
                    rec["outcomes"]
                    == {
                        "mixtral-8x7b-instruct": truth[rec["id"]].outcomes[weak_m],
                        "gpt-4-1106-preview": truth[rec["id"]].outcomes[strong_m],
                    }
                    for rec in recs
                ), "the judged outcomes differ from the outcome data"
                asked = up.stats()
                assert asked["asked_twice"] == 0 and asked["requests"] == 2 * n, asked
                for fam in fams:
                    row = {
                        "repeat": rep,
                        "n": n,
                        "family": fam,
                        "public": base[fam],
                        "random": rand,
                        "pipeline_s": pipe_s,
                    }
                    own = ["models.weak=mixtral-8x7b-instruct", "models.strong=gpt-4-1106-preview"]
                    for arm, data_args in (
                        (
                            "own",
                            [
                                "--data",
                                judged / "records.jsonl",
                                "--set",
                                "source." + own[0],
                                "--set",
                                "source." + own[1],
                            ],
                        ),
                        (
                            "public+own",
                            [
                                "--data",
                                out / "split" / "train.jsonl",
                                "--data",
                                judged / "records.jsonl",
                                "--set",
                                "source2." + own[0],
                                "--set",
                                "source2." + own[1],
                            ],
                        ),
                    ):
                        d = rd / f"{fam}-{arm.replace('+', '-')}-{n}"
                        tela("run", *data_args, *fam_args(fam), "-o", d, "-q")
                        row[arm] = metrics.apgr(Router.load(d).score(ev_prompts), weak, strong)
                    rows.append(row)
                    print(
                        f"  N={n:4d} {fam:17s} own {row['own']:.3f}   public+own {row['public+own']:.3f}   "
                        f"public {row['public']:.3f}   (collect+judge {pipe_s:.0f} s)",
                        flush=True,
                    )
    (out / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    report(rows, ns, fams, args.repeats)
    if args.png:
        plot(rows, ns, fams, args.png)
        print(f"wrote {args.png}")


def _agg(rows: list[dict[str, Any]], fam: str, n: int, key: str) -> tuple[float, float]:
    v = [r[key] for r in rows if r["family"] == fam and r["n"] == n]
    return float(np.mean(v)), float(np.std(v))


def report(rows: list[dict[str, Any]], ns: list[int], fams: list[str], repeats: int) -> None:
    sd = " ± sd" if repeats > 1 else ""
    print(f"\nAPGR on the held-out prompts not labelled (mean{sd} over {repeats} repeat(s))\n")
    print("| family | trained on | " + " | ".join(f"N={n}" for n in ns) + " |")
    print("|---|---|" + "---|" * len(ns))
    for fam in fams:
        for arm, label in (
            ("own", "N in-domain labels alone"),
            ("public+own", "42 subjects + N labels"),
            ("public", "42 subjects alone"),
        ):
            cells = []
            for n in ns:
                m, s = _agg(rows, fam, n, arm)
                cells.append(f"{m:.3f}" + (f" ± {s:.3f}" if repeats > 1 and arm != "public" else ""))
            print(f"| {fam} | {label} | " + " | ".join(cells) + " |")
    rm, _ = _agg(rows, fams[0], ns[0], "random")
    print(f"\nrandom routing (10 seeds, mean over repeats): {rm:.3f}")
    for fam in fams:
        for arm in ("own", "public+own"):
            hit = next((n for n in ns if _agg(rows, fam, n, arm)[0] >= _agg(rows, fam, n, "public")[0] + MARGIN), None)
            said = f"N = {hit}" if hit is not None else f"not reached up to N = {ns[-1]}"
            print(f"{fam}, {arm}: smallest N beating the public-data router by +{MARGIN:.2f} APGR (means): {said}")


def plot(rows: list[dict[str, Any]], ns: list[int], fams: list[str], png: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fam in enumerate(fams):
        c = colours[i % len(colours)]
        for arm, style, label in (("own", "o--", "N labels alone"), ("public+own", "s-", "42 subjects + N labels")):
            m = [_agg(rows, fam, n, arm) for n in ns]
            ax.errorbar(
                ns, [x[0] for x in m], yerr=[x[1] for x in m], fmt=style, color=c, capsize=3, label=f"{fam}: {label}"
            )
        ax.axhline(
            _agg(rows, fam, ns[0], "public")[0],
            color=c,
            linestyle=":",
            linewidth=1.2,
            label=f"{fam}: 42 subjects alone",
        )
    ax.axhline(
        _agg(rows, fams[0], ns[0], "random")[0], color="grey", linestyle="-", linewidth=0.8, label="random routing"
    )
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("in-domain labels N (held-out-subject traffic, collected + judged)")
    ax.set_ylabel("APGR on the unlabelled held-out prompts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()

    with atomic_open(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if not os.environ.get("HF_HUB_OFFLINE"):
        os.environ["HF_HUB_OFFLINE"] = "1"
    main()
