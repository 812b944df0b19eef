"""Data-parallel scoring: the same prompts scored by one process and by N launched ranks, one run.

What ``tela eval/zoo/calibrate/route --processes N`` does (:mod:`tela_core.eval.parallel`), timed
end to end from the caller's side, router load included, no score cache (every prompt scored):

- **one process, cores / N threads**: ``Router.load`` + :func:`tela_core.eval.score_cache.score_prompts`
  in this process with the threads one rank gets: the baseline the ranks scale from;
- **one process, default threads** (``--default-threads``): what ``tela eval`` does without
  ``--processes`` (torch's own thread count); off by default because on a shared machine torch's
  threads can be several times slower than one (see docs/benchmarks.md);
- **N ranks**: :func:`score_prompts` with ``launch=ScoreLaunch(processes=N)``: torchrun starts N
  ranks (``OMP_NUM_THREADS`` = cores / N each), each loads the router and scores its block of
  chunks, rank 0 gathers over gloo and writes the result.

It prints the times, the speed-up of N ranks over each one-process arm (its seconds / the ranks'
seconds), each rank's model load and scoring seconds, and checks that every arm gives identical
scores. ``--chunk-size`` (default 32, the CLI's is 128) lets a few prompts make N chunks. Routers: the
``score-token`` SmolLM2-135M router of ``bench/route_latency.py`` (``--router`` takes any router
dir), and ``length`` for the launch overhead alone (its scoring costs nothing). Prompts: the
bundled MMLU sample's, repeated past its 300 when ``--prompts`` asks for more.

    .venv/bin/python bench/parallel_scoring.py                       # 64 prompts in chunks of 32, 2 ranks
    .venv/bin/python bench/parallel_scoring.py --prompts 256 --chunk-size 128 --default-threads --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tela_core import get_registry
from tela_core.data.records import Record
from tela_core.eval.parallel import ScoreLaunch
from tela_core.eval.score_cache import score_prompts
from tela_core.routing.router import Router

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def prompts(n: int) -> list[str]:
    """``n`` MMLU questions from the bundled sample, cycled (each numbered, so all are distinct)."""
    from route_latency import questions

    base = questions(300)
    return [base[i % len(base)] + ("" if i < len(base) else f" (#{i})") for i in range(n)]


def length_router(folder: Path, ps: list[str]) -> Path:
    """A ``length`` router fitted on ``ps`` with made-up outcomes (its scores cost nothing: launch overhead)."""
    recs = [Record(prompt=p, outcomes={"weak": float(i % 2), "strong": 1.0}) for i, p in enumerate(ps)]
    out = folder / "length"
    get_registry().create("family", "length", {"weak": "weak", "strong": "strong"}).fit(recs, out, {})
    return out


def one_process(router: Path, ps: list[str], chunk: int, threads: int | None) -> tuple[Any, float]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        scorer = Router.load(router).scorer
        scores, _ = score_prompts(scorer, ps, progress=False, chunk_size=chunk)
        return scores, time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def ranks(router: Path, ps: list[str], processes: int, chunk: int) -> tuple[Any, float, dict[str, Any]]:
    t0 = time.perf_counter()
    scorer = Router.load(router, load_scorer=False).scorer  # names the job; the ranks load the model
    scores, info = score_prompts(
        scorer, ps, progress=False, chunk_size=chunk, launch=ScoreLaunch(processes=processes), router_dir=router
    )
    return scores, time.perf_counter() - t0, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--router", type=Path, default=None, help="router dir (default: route_latency's score-token SmolLM2-135M)"
    )
    ap.add_argument("--prompts", type=int, default=64, help="prompts scored by each arm (default 64)")
    ap.add_argument("--chunk-size", type=int, default=32, help="prompts per chunk (default 32; the CLI's is 128)")
    ap.add_argument("--processes", type=int, default=2, help="ranks of the parallel arm (default 2)")
    ap.add_argument(
        "--default-threads", action="store_true", help="add the one-process arm with torch's default threads"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    import numpy as np

    ps = prompts(args.prompts)
    results: dict[str, Any] = {"prompts": len(ps), "processes": args.processes, "cpus": os.cpu_count(), "routers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        routers = {"length": length_router(Path(tmp), ps)}
        if args.router is not None:
            routers[args.router.name] = args.router
        else:
            from route_latency import router_dir

            routers["score-token (SmolLM2-135M)"] = router_dir("smollm2-135m")
        per_rank_threads = max(1, (os.cpu_count() or 1) // args.processes)
        arms = {f"one process, {per_rank_threads} thread(s)": per_rank_threads}
        if args.default_threads:
            arms["one process, default threads"] = None
        for name, path in routers.items():
            many, t_many, info = ranks(path, ps, args.processes, args.chunk_size)
            row: dict[str, Any] = {f"{args.processes} ranks s": round(t_many, 2), "per_rank": info.get("ranks")}
            print(f"{name}: {len(ps)} prompts in chunks of {args.chunk_size}; {args.processes} ranks {t_many:.1f} s")
            for arm, threads in arms.items():
                one, t_one = one_process(path, ps, args.chunk_size, threads)
                same = bool(
                    np.array_equal(one.w, many.w)
                    and (one.probs is None) == (many.probs is None)
                    and (one.probs is None or np.array_equal(one.probs, many.probs))
                )
                row[arm] = {
                    "seconds": round(t_one, 2),
                    "speedup_of_ranks": round(t_one / t_many, 3),
                    "identical_scores": same,
                }
                print(
                    f"  {arm}: {t_one:.1f} s; {args.processes} ranks' speed-up {t_one / t_many:.2f}x; identical "
                    f"scores: {same}"
                )
            results["routers"][name] = row
            for r in info.get("ranks") or []:
                print(
                    f"  rank {r['rank']}: {r['scored']} prompts, model load {r['load_seconds']} s, "
                    f"load + scoring {r['score_seconds']} s"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
