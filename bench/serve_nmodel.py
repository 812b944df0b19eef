"""What routing among nine models adds to `tela serve`'s latency, beside two models, in one run.

Four routers trained on the same prompts of LLMRouter's 9-model data (`tela data get llmrouter`),
with the default (fast) embedder: ``embedding-knn`` and ``matrix-factorization`` over two models
(the data's default pair, cheapest and most accurate) and over all nine, each with the policy
``tela run`` gives it (two models: a threshold; nine: an N-model policy, which reads every model's
predicted quality). One `tela serve`
process serves all four (``embedding_cache: 0``, so every request embeds its prompt), each model an
upstream name with the data's prices, all pointing at one STAND-IN for a remote model API
(``examples/standin_upstream.py``: an OpenAI-compatible server on loopback that answers at once
with its own name, not a model), so what is measured is tela's own cost.

``--clients`` concurrent clients (default 32) send requests paced at ``--rate`` req/s in all,
``--rounds`` rounds, each round running the direct baseline (the stand-in called directly) and
every router in turn (each round in a rotated order), so that a disturbance of the shared machine
falls on all of them alike.
Latencies of a row are pooled over its rounds; the **added** p50/p99 is the row's minus the
direct baseline's. On a shared machine one disturbed run can own a pooled p99, so each row also
gets the median over rounds of its per-round p50/p99, and the server's CPU time per request
(measured around each run; less disturbed by other jobs than wall-clock numbers). Prompts are the
data's held-out questions, cycled. Before the server starts, each router's ``Router.decide`` is
timed in this process on 300 prompts, one at a time (the scoring part of the added latency, with no
HTTP and no queueing). Goal (issue 28): nine models add no more than two.

    .venv/bin/python bench/serve_nmodel.py                       # 3 rounds, 60 req/s, 8 s a run
    .venv/bin/python bench/serve_nmodel.py --rounds 5 --rate 100 --train 5608 --work runs/bench-nmodel
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchdata import dataset
from serve_overhead import cpu_seconds, load, start_standin, start_tela_serve, stop

DATA = dataset("llmrouter")
PAIR = ("gemma-2-9b-it", "llama-3.1-nemotron-51b-instruct")  # the data's default pair (weak, strong)


def cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-c", "from tela_core.cli.main import main; main()", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def records(n: int, models: list[str] | None, out: Path) -> Path:
    """The first ``n`` training records, outcomes and costs kept for ``models`` (None: all nine)."""
    from tela_core.plugins import get_registry

    src = get_registry().create("source", "llmrouter-json", {})
    with out.open("w", encoding="utf-8") as f:
        for r in list(src.records(DATA / "dcrouter_preprocessed_train.json"))[:n]:
            obj = r.to_json()
            if models is not None:
                obj["outcomes"] = {m: obj["outcomes"][m] for m in models}
                obj["costs"] = {m: obj["costs"][m] for m in models}
            f.write(json.dumps(obj) + "\n")
    return out


def train(family: str, data: Path, out: Path) -> Path:
    """``tela run`` as a user runs it: its own policy (two models: a threshold; nine: N-model)."""
    t0 = time.perf_counter()
    pair = ["--set", f"source.models.weak={PAIR[0]}", "--set", f"source.models.strong={PAIR[1]}"]
    cli("run", "--family", family, "--data", str(data), "--output", str(out), *pair)
    print(f"  trained {out.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def start(config: Path) -> tuple[subprocess.Popen, str]:
    return start_tela_serve(["--config", str(config)])


def decide_ms(path: Path, prompts: list[str]) -> tuple[float, float]:
    """p50/p99 ms of ``Router.decide`` on one prompt at a time, serving's vector cache off."""
    from tela_core import Router
    from tela_core.models import vector_cache

    vector_cache.use_shard_cache(False)
    vector_cache.serving_cache(0)
    router = Router.load(path)
    for p in prompts[:20]:
        router.decide([p])
    times = []
    for p in prompts[20:320]:
        t0 = time.perf_counter()
        router.decide([p])
        times.append(time.perf_counter() - t0)
    return pct(times, 0.5), pct(times, 0.99)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    from tela_plugins.outcomes.llmrouter import load_prices

    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1000, help="training prompts (the first N of the train file)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rate", type=float, default=60.0, help="total requests per second of every paced run")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each paced run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="keep the routers here (reused when there)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="tela-bench-nmodel-"))
    work.mkdir(parents=True, exist_ok=True)
    prices = load_prices(DATA / "default_llm.json")
    nine = list(json.loads((DATA / "dcrouter_preprocessed_train.json").read_text())[0]["scores"])
    routers: dict[str, tuple[Path, list[str]]] = {}
    for family, short in (("embedding-knn", "knn"), ("matrix-factorization", "mf")):
        for models in (list(PAIR), nine):
            name = f"{short}-{len(models)}"
            out = work / name
            if not (out / "tela.json").is_file():
                data = records(args.train, models, work / f"records-{len(models)}.jsonl")
                train(family, data, out)
            routers[name] = (out, models)

    upstream_proc, upstream = start_standin()
    config = work / "serve.yaml"
    config.write_text(
        json.dumps(
            {
                "routers": {n: {"path": str(p), "upstreams": [f"u-{m}" for m in ms]} for n, (p, ms) in routers.items()},
                "upstreams": {
                    f"u-{m}": {
                        "base_url": upstream,
                        "model": m,
                        "price_input": prices[m][0],
                        "price_output": prices[m][1],
                    }
                    for m in nine
                },
                "embedding_cache": 0,
            }
        ),
        encoding="utf-8",
    )
    test = json.loads((DATA / "dcrouter_preprocessed_test.json").read_text())
    prompts = [r["question"] for r in test]
    n = max(args.clients, int(args.rate * args.seconds))
    decide = {name: decide_ms(path, prompts) for name, (path, _) in routers.items()}
    lat: dict[str, list[float]] = {k: [] for k in ["direct", *routers]}
    per_round: dict[str, list[tuple[float, float]]] = {k: [] for k in lat}
    cpu: dict[str, float] = {k: 0.0 for k in routers}
    errors: dict[str, int] = {k: 0 for k in lat}
    proc, url = start(config)
    try:
        for name in routers:  # warm-up: every router's first requests, off the record
            load(url, f"router-{name}", prompts, 64, args.clients)
        names = ["direct", *routers]
        for rnd in range(args.rounds):
            # each round in another order, so that no row always runs right after the same one
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                c0 = cpu_seconds(proc.pid)
                if name == "direct":
                    res = load(upstream, f"u-{PAIR[0]}", prompts, n, args.clients, args.rate, keep=True)
                else:
                    res = load(url, f"router-{name}", prompts, n, args.clients, args.rate, keep=True)
                    cpu[name] += cpu_seconds(proc.pid) - c0
                lat[name].extend(res["latencies"])
                per_round[name].append((res["p50_ms"], res["p99_ms"]))
                errors[name] += res["errors"]
                print(
                    f"round {rnd + 1} {name}: p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stop(proc)
        stop(upstream_proc)

    d50, d99 = pct(lat["direct"], 0.5), pct(lat["direct"], 0.99)
    md50 = statistics.median(x for x, _ in per_round["direct"])
    md99 = statistics.median(y for _, y in per_round["direct"])
    rows: list[dict[str, Any]] = []
    for name, (_, models) in routers.items():
        rows.append(
            {
                "router": name,
                "models": len(models),
                "p50_ms": pct(lat[name], 0.5),
                "p99_ms": pct(lat[name], 0.99),
                "added_p50_ms": pct(lat[name], 0.5) - d50,
                "added_p99_ms": pct(lat[name], 0.99) - d99,
                "rounds_added_p50_ms": statistics.median(x for x, _ in per_round[name]) - md50,
                "rounds_added_p99_ms": statistics.median(y for _, y in per_round[name]) - md99,
                "decide_p50_ms": decide[name][0],
                "decide_p99_ms": decide[name][1],
                "cpu_ms_per_request": cpu[name] * 1000 / max(1, len(lat[name])),
                "requests": len(lat[name]),
                "errors": errors[name],
            }
        )
    print(
        f"\n{args.clients} clients paced at {args.rate:g} req/s, {args.rounds} rounds of {n} requests per row; "
        f"{args.train} training prompts; direct p50 {d50:.2f} ms, p99 {d99:.2f} ms ({errors['direct']} errors)\n"
    )
    print(
        "| router | models | added p50 / p99 ms (pooled) | added p50 / p99 ms (median of rounds) | "
        "server CPU ms/req | Router.decide p50 / p99 ms | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['router']} | {r['models']} | {r['added_p50_ms']:.2f} / {r['added_p99_ms']:.2f} | "
            f"{r['rounds_added_p50_ms']:.2f} / {r['rounds_added_p99_ms']:.2f} | {r['cpu_ms_per_request']:.2f} | "
            f"{r['decide_p50_ms']:.3f} / {r['decide_p99_ms']:.3f} | {r['errors']} |"
        )
    by = {r["router"]: r for r in rows}
    for fam in ("knn", "mf"):
        two, many = by[f"{fam}-2"], by[f"{fam}-9"]
        added = (
            f"added p50 {many['rounds_added_p50_ms']:.2f} vs {two['rounds_added_p50_ms']:.2f} ms, "
            f"added p99 {many['rounds_added_p99_ms']:.2f} vs {two['rounds_added_p99_ms']:.2f} ms (medians of rounds)"
        )
        ratio = many["cpu_ms_per_request"] / max(1e-9, two["cpu_ms_per_request"])
        decide_ = f"decide p50 {many['decide_p50_ms']:.3f} vs {two['decide_p50_ms']:.3f} ms"
        print(f"{fam}: nine vs two models: {added}, {decide_}, CPU/req {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"direct": {"p50_ms": d50, "p99_ms": d99}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
