"""Each embedder side by side, in one process: routing quality (held-out MMLU APGR of
``embedding-knn``) and the cost of embedding one prompt, as ratios to ``minilm`` (torch).

For every embedder named in ``--embedders``:

- **APGR**: ``embedding-knn`` (k=50, defaults) trained on MMLU's 42 training subjects and scored on
  the 15 held-out ones (protocol ``mmlu-heldout``, docs/metrics.md), through ``tela zoo``'s
  ``run_zoo``; vectors come from (and fill) the shard cache in ``$TELA_CACHE/embeddings/``;
- **embed 1 prompt**: p50/p99 of ``embedder.embed([prompt])`` over ``--prompts`` held-out
  prompts, one at a time (what a lone request costs ``tela serve``), caches off;
- **route 1 prompt**: p50/p99 of the trained kNN router's ``score([prompt])`` (embedding + the
  neighbour search), serving mode (no shard cache, the LRU off);
- **32 prompts**: one ``embed`` call on 32 prompts (what a saturated server's batch costs), per prompt.

The arms are interleaved prompt by prompt, so load from other jobs falls on all of them alike.

    TELA_TEST_DATA=DIR .venv/bin/python bench/embedders_mmlu.py     # DIR holds routellm-mmlu/
    .venv/bin/python bench/embedders_mmlu.py --embedders minilm,model2vec --prompts 100 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from tela_core.data import protocols
from tela_core.eval.zoo import run_zoo
from tela_core.models import vector_cache
from tela_core.models.embedders import get_embedder
from tela_core.plugins.discovery import get_registry
from tela_core.routing.router import Router
from tela_core.testkit import public_data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT = "minilm,minilm-onnx,minilm-onnx-int8,model2vec"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedders", default=DEFAULT)
    ap.add_argument("--prompts", type=int, default=200, help="held-out prompts timed one at a time")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch and ONNX Runtime threads (tela serve on 2 cores uses 1)"
    )
    ap.add_argument("--output", type=Path, default=Path("bench-out/embedders-mmlu"))
    ap.add_argument("--no-apgr", action="store_true", help="latency only (no training, no MMLU scoring)")
    ap.add_argument("--latency-only", action="store_true", help="time the routers an earlier run left in --output")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads, user_api="blas")  # as tela serve does (the kNN search is a BLAS call)
    data = public_data("routellm-mmlu")
    if data is None:
        sys.exit(
            "routellm-mmlu not found: run `tela data get routellm-mmlu` or set TELA_TEST_DATA to a folder holding it"
        )
    records = list(get_registry().create("source", "routellm-csv", {}).records(data))
    train, held = protocols.split("mmlu-heldout", records)
    names = [n for n in args.embedders.split(",") if n]
    rows: dict[str, dict[str, float]] = {n: {} for n in names}

    routers: dict[str, Router] = {}
    for n in names:
        opts = {
            "embedder": n,
            **({"embedder_options": {"threads": args.threads}} if n.startswith("minilm-onnx") else {}),
        }
        done = args.output / n / "routers" / "embedding-knn"
        if args.latency_only and (done / "tela.json").is_file():  # routers of an earlier full run
            routers[n] = Router.load(done)
        elif not args.no_apgr:
            t0 = time.perf_counter()
            res = run_zoo(
                records,
                ["embedding-knn"],
                args.output / n,
                protocol="mmlu-heldout",
                options={"embedding-knn": opts},
                on_event=lambda m: print(" ", m, file=sys.stderr, flush=True),
            )
            fam = res.families[0]
            rows[n].update(apgr=fam.apgr, cpt80=fam.cpt80, zoo_s=time.perf_counter() - t0)
            routers[n] = Router.load(args.output / n / "routers" / "embedding-knn")
        else:
            scorer = get_registry().create("family", "embedding-knn", opts)
            scorer.fit(train[:2000], args.output / "latency-only" / n, {})
            routers[n] = Router.load(args.output / "latency-only" / n)
        print(f"{n}: {rows[n]}", file=sys.stderr, flush=True)

    # Latency, serving mode: no shard cache, LRU off; arms interleaved prompt by prompt.
    vector_cache.use_shard_cache(False)
    vector_cache.serving_cache(0)
    prompts = [r.prompt for r in held][: args.prompts]
    embs = {n: get_embedder(*routers[n].scorer.embedder_choice()) for n in names}
    for n in names:  # warm-up: load models, first-call allocations
        embs[n].embed(prompts[:4])
        routers[n].scorer.score(prompts[:4])
    t_embed: dict[str, list[float]] = {n: [] for n in names}
    t_route: dict[str, list[float]] = {n: [] for n in names}
    for p in prompts:
        for n in names:
            t0 = time.perf_counter()
            embs[n].embed([p])
            t1 = time.perf_counter()
            routers[n].scorer.score([p])
            t2 = time.perf_counter()
            t_embed[n].append((t1 - t0) * 1000)
            t_route[n].append((t2 - t1) * 1000)
    by_len = sorted(prompts, key=len)
    batches = [by_len[i : i + 32] for i in range(0, len(by_len), 32) if len(by_len[i : i + 32]) == 32]
    t_batch: dict[str, float] = {n: 0.0 for n in names}
    for b in batches:
        for n in names:
            t0 = time.perf_counter()
            embs[n].embed(b)
            t_batch[n] += time.perf_counter() - t0
    for n in names:
        rows[n].update(
            embed_p50=statistics.median(t_embed[n]),
            embed_p99=pct(t_embed[n], 0.99),
            route_p50=statistics.median(t_route[n]),
            route_p99=pct(t_route[n], 0.99),
            batch32_ms_per_prompt=t_batch[n] * 1000 / max(1, 32 * len(batches)),
        )

    base_name = "minilm" if "minilm" in rows else names[0]
    base = rows[base_name]
    load = os.getloadavg()
    print(
        f"\n{len(prompts)} held-out MMLU prompts one at a time ({len(batches)} batches of 32, sorted by length); "
        f"{args.threads} thread(s); load average {load[0]:.1f}; ratios against {base_name} in the same run.\n"
    )
    print(
        "| embedder | held-out APGR (kNN) | CPT(80%) | embed 1 prompt p50 / p99 ms | kNN route 1 prompt p50 / p99 ms | "
        f"vs {base_name} (route p50) | 32-prompt batch, ms per prompt |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in names:
        r = rows[n]
        apgr = f"{r['apgr']:.3f}" if "apgr" in r else "–"
        cpt = f"{r['cpt80']:.2f}" if "cpt80" in r else "–"
        print(
            f"| {n} | {apgr} | {cpt} | {r['embed_p50']:.2f} / {r['embed_p99']:.2f} | {r['route_p50']:.2f} / "
            f"{r['route_p99']:.2f} | "
            f"{base['route_p50'] / r['route_p50']:.1f}× faster | {r['batch32_ms_per_prompt']:.2f} |"
        )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
