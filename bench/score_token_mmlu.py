"""The score-token router on MMLU's held-out subjects, trained and scored through the CLI.

Stages (each prints the exact ``tela`` command it runs and its wall time):

1. ``prepare``: the training side of the ``mmlu-heldout`` protocol (10,903 prompts of the 42
   training subjects, :mod:`tela_core.data.protocols`), a seeded sample stratified by subject
   (largest-remainder allocation, so every subject keeps its share), written as seed JSONL with the
   outcomes kept. ``--labels seed`` keeps the seed's mapping (weak right 5, only strong right 1,
   both wrong 3); ``--labels binary`` maps both-wrong to 1 (RouteLLM's "weak wrong" target).
2. ``train``: ``tela run`` on that file (``--backend lora`` or ``deepspeed-z3``).
3. ``score``: ``tela eval --protocol mmlu-heldout`` on the 3,056 held-out prompts (APGR,
   CPT(50%), CPT(80%) beside random and oracle).
4. ``readout`` (optional): scores training-subject prompts the router did not train on and
   compares readouts of the five score-token probabilities (``1-P4-P5`` = tela's w, expected
   score, ``P1+P2``, ``1-P5``) by APGR over subject folds: the readout choice uses training
   subjects only. It then reports every readout on the held-out scores too, for the record.

CPU (the run of docs/benchmarks.md)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/score_token_mmlu.py \\
        --data "$(tela data get routellm-mmlu)" --sample 256 --backend lora --output bench-out/score-token

GPU, all 10,903 prompts, 3 epochs, a larger base model (the training worker picks bf16 when the
GPU supports it and flash-attention 2 when ``flash_attn`` is installed; the scorer bf16; one rank per GPU;
a hub id must be in the Hugging Face cache or reachable)::

    .venv/bin/python bench/score_token_mmlu.py --data "$(tela data get routellm-mmlu)" --gpu --backend deepspeed-z3 \\
        --model HuggingFaceTB/SmolLM2-360M-Instruct --output bench-out/score-token-gpu

Add ``--stages prepare,train,score,readout`` for the readout comparison, ``--labels binary`` for
the binary label mapping.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tela_core import Router
from tela_core import eval as ev
from tela_core.data.protocols import split
from tela_core.data.records import seed_record
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json, atomic_write_text
from tela_core.plugins.discovery import get_registry

READOUTS = ("w", "expected", "p12", "not5")


def stratified_sample(records: Sequence[Any], n: int | None, seed: int) -> list[Any]:
    """``n`` records drawn per subject (``group``) in proportion to its size, seeded; all if ``n`` is None."""
    import numpy as np

    if n is None or n >= len(records):
        return list(records)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.group or "", []).append(i)
    names = sorted(groups)
    exact = np.array([len(groups[g]) * n / len(records) for g in names])
    take = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]:
        take[j] += 1
    rng = np.random.RandomState(seed)
    chosen: list[int] = []
    for g, k in zip(names, take):
        chosen += [groups[g][int(i)] for i in rng.choice(len(groups[g]), size=int(k), replace=False)]
    rng.shuffle(chosen)
    return [records[i] for i in chosen]


def relabel(records: Sequence[Any], labels: str) -> list[Any]:
    """Records with the label mapping ``labels`` ("seed": 5/1/3, "binary": 5/1/1) applied."""
    out = []
    for r in records:
        label = r.label
        if labels == "binary" and label == 3:
            label = 1
        out.append(seed_record(r.prompt, label, outcomes=r.outcomes, costs=r.costs, group=r.group, id=r.id))
    return out


def routellm_source() -> Any:
    return get_registry().create("source", "routellm-csv", {})


def training_side(data: Path) -> tuple[list[Any], list[Any]]:
    """(train, eval) records of the ``mmlu-heldout`` protocol."""
    return split("mmlu-heldout", list(routellm_source().read(data)))


def sh(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` (echoed), fail loudly, return its wall seconds."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    dt = time.perf_counter() - t0
    print(f"  ({dt:.1f} s)", flush=True)
    return dt


def readouts(probs: Any) -> dict[str, Any]:
    """Candidate w (higher = send to the strong model) from (n, 5) probabilities of [[1]]..[[5]]."""
    import numpy as np

    p = np.asarray(probs, dtype=float)
    return {
        "w": 1 - p[:, 3] - p[:, 4],
        "expected": -(p @ np.arange(1, 6)),
        "p12": p[:, 0] + p[:, 1],
        "not5": 1 - p[:, 4],
    }


def score_records(router: Path, records: Sequence[Any], batch_size: int | None) -> Any:
    """Scores of ``records`` (cached under $TELA_CACHE/scores like ``tela eval``)."""
    r = Router.load(router, score_batch_size=batch_size)
    return ev.score_prompts(
        r.scorer,
        [x.prompt for x in records],
        router_id=ev.router_hash(router),
        cache_dir=ev.score_cache_dir(router.parent / ".score-cache"),
        description=f"scoring {len(records)} prompts",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="RouteLLM MMLU CSV folder")
    ap.add_argument("--output", type=Path, default=Path("bench-out/score-token"))
    ap.add_argument(
        "--sample", type=int, default=256, help="training prompts (seeded, subject-stratified); 0 = all 10,903"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--labels", choices=("seed", "binary"), default="seed")
    ap.add_argument("--backend", default="lora", help="lora or deepspeed-z3")
    ap.add_argument("--model", default=None, help="base model (default: tela's smollm2-135m)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=None, help="default: 2e-4 for lora, 5e-5 for deepspeed-z3")
    ap.add_argument("--batch-size", type=int, default=4, help="per rank; x --grad-accum = effective batch")
    ap.add_argument(
        "--grad-accum",
        type=int,
        default=2,
        help="(batch 4 x 2 keeps the seed's effective 8 at half the activation memory)",
    )
    ap.add_argument("--max-length", type=int, default=768)
    ap.add_argument("--eval-fraction", type=float, default=0.05)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--score-batch-size", type=int, default=None)
    ap.add_argument(
        "--eval-sample",
        type=int,
        default=None,
        help="score a seeded, subject-stratified subset of the 3,056 held-out prompts (a CPU stopgap)",
    )
    ap.add_argument(
        "--gpu",
        action="store_true",
        help="GPU preset: all 10,903 prompts, 3 epochs, batch 16, max length 2048, one rank per GPU",
    )
    ap.add_argument("--stages", default="prepare,train,score", help="comma list of prepare, train, score, readout")
    ap.add_argument(
        "--readout-prompts",
        type=int,
        default=600,
        help="training-side prompts (not trained on) scored for the readout choice",
    )
    args = ap.parse_args()
    if args.gpu:
        import torch

        args.sample = 0
        args.epochs, args.batch_size, args.grad_accum, args.max_length = 3.0, 16, 1, 2048
        args.processes = max(1, torch.cuda.device_count())
    lr = args.lr or (2e-4 if args.backend == "lora" else 5e-5)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    n = args.sample or None
    tag = f"{args.backend}-{args.labels}-{n or 'all'}"
    train_file = out / f"train-{args.labels}-{n or 'all'}.jsonl"
    router = out / f"router-{tag}"
    timings: dict[str, Any] = {}
    stages = args.stages.split(",")
    tela = str(Path(sys.executable).with_name("tela"))

    if "prepare" in stages or "readout" in stages or ("score" in stages and args.eval_sample):
        train_side, eval_side = training_side(args.data)
        print(f"mmlu-heldout: {len(train_side)} training-side prompts, {len(eval_side)} held-out prompts")
        chosen = stratified_sample(train_side, n, args.seed)
    if "prepare" in stages:
        rows = relabel(chosen, args.labels)
        atomic_write_text(train_file, "".join(json.dumps(r.to_json()) + "\n" for r in rows))
        counts = {k: sum(r.label == k for r in rows) for k in (1, 3, 5)}
        print(f"wrote {train_file}: {len(rows)} prompts from {len({r.group for r in rows})} subjects, labels {counts}")
    if "train" in stages:
        cmd = [
            tela,
            "run",
            "--data",
            str(train_file),
            "--source",
            "jsonl",
            "--backend",
            args.backend,
            "--output",
            str(router),
            "--epochs",
            str(args.epochs),
            "--lr",
            str(lr),
            "--batch-size",
            str(args.batch_size),
            "--grad-accum",
            str(args.grad_accum),
            "--max-length",
            str(args.max_length),
            "--eval-fraction",
            str(args.eval_fraction),
            "--seed",
            str(args.seed),
            "--processes",
            str(args.processes),
            "--save-steps",
            "10",
        ]
        if args.model:
            cmd += ["--model", args.model]
        timings["train_s"] = sh(cmd)
    if "score" in stages:
        if args.eval_sample:  # a seeded, subject-stratified subset of the held-out prompts, as seed JSONL
            subset = stratified_sample(eval_side, args.eval_sample, args.seed)
            eval_file = out / f"heldout-{args.eval_sample}.jsonl"
            atomic_write_text(eval_file, "".join(json.dumps(r.to_json()) + "\n" for r in subset))
            print(
                f"wrote {eval_file}: {len(subset)} of {len(eval_side)} held-out prompts, "
                f"{len({r.group for r in subset})} subjects"
            )
            cmd = [
                tela,
                "eval",
                "--router",
                str(router),
                "--data",
                str(eval_file),
                "--source",
                "jsonl",
                "--output",
                str(out / f"eval-{tag}-heldout{args.eval_sample}"),
                "--force",
            ]
        else:
            cmd = [
                tela,
                "eval",
                "--router",
                str(router),
                "--data",
                str(args.data),
                "--protocol",
                "mmlu-heldout",
                "--output",
                str(out / f"eval-{tag}"),
                "--force",
            ]
        if args.score_batch_size:
            cmd += ["--score-batch-size", str(args.score_batch_size)]
        timings["score_s"] = sh(cmd)
        report = json.loads((Path(cmd[cmd.index("--output") + 1]) / "report.json").read_text())
        timings["report"] = report
    if "readout" in stages:
        held = stratified_sample(eval_side, args.eval_sample, args.seed) if args.eval_sample else eval_side
        timings["readout"] = readout_stage(router, train_side, chosen, held, args)
    if timings:
        atomic_write_json(
            out / f"result-{tag}-{int(time.time())}.json",
            {"args": vars(args) | {"data": str(args.data), "output": str(args.output)}, **timings},
        )


def readout_stage(
    router: Path, train_side: Sequence[Any], chosen: Sequence[Any], eval_side: Sequence[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Pick the readout on training-subject prompts the router did not train on (subject folds)."""
    import numpy as np

    seen = {r.prompt for r in chosen}
    rest = [r for r in train_side if r.prompt not in seen]
    pool = stratified_sample(rest, args.readout_prompts, args.seed + 1)
    t0 = time.perf_counter()
    scores, _ = score_records(router, pool, args.score_batch_size)
    print(f"scored {len(pool)} unseen training-subject prompts in {time.perf_counter() - t0:.1f} s")
    weak, strong = ev.resolve_pair(pool, None, None, routellm_source())
    arrays = ev.outcome_arrays(pool, weak, strong)
    groups = np.array([r.group for r in pool])
    subjects = sorted(set(groups))
    rng = np.random.RandomState(args.seed)
    folds = np.array_split(rng.permutation(subjects), 6)
    table: dict[str, Any] = {}
    for name, w in readouts(scores.probs).items():
        pooled = ev.evaluate_scores(w, arrays.weak, arrays.strong, name=name)
        per = []
        for f in folds:
            m = np.isin(groups, f)
            try:
                per.append(ev.evaluate_scores(w[m], arrays.weak[m], arrays.strong[m], name=name).apgr)
            except TelaError:  # a fold where both models score the same: APGR undefined, left out
                continue
        table[name] = {"fold_mean": float(np.mean(per)), "fold_sd": float(np.std(per)), "pooled": pooled.apgr}
        print(f"  readout {name:9s} fold-mean APGR {np.mean(per):.3f} (sd {np.std(per):.3f})  pooled {pooled.apgr:.3f}")
    best = max(table, key=lambda k: table[k]["fold_mean"])
    print(f"chosen on training subjects: {best}")
    held, _ = score_records(router, eval_side, args.score_batch_size)
    warr = ev.outcome_arrays(eval_side, weak, strong)
    heldout = {
        name: ev.evaluate_scores(w, warr.weak, warr.strong, name=name).apgr for name, w in readouts(held.probs).items()
    }
    print(
        "held-out APGR by readout (reported, not chosen from): " + ", ".join(f"{k} {v:.3f}" for k, v in heldout.items())
    )
    return {"cv": table, "chosen": best, "heldout": heldout, "pool": len(pool)}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "--gpu" not in sys.argv:  # on CPU the default model comes from a local GGUF; never reach the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
