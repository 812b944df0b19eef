"""`tela serve` side by side with RouteLLM's OpenAI-compatible server, in one run.

Every target sits in front of the same upstream: a STAND-IN for a remote model API
(``examples/standin_upstream.py``: an OpenAI-compatible server on loopback that answers at once
with its own name), so what is measured is each server's own cost. Targets:

- ``direct``: the stand-in itself, the same-run baseline every "added" latency is measured against;
- ``tela length``: ``tela serve`` with a ``length`` router;
- ``tela embedding-knn (EMBEDDER, default)``: an ``embedding-knn`` router trained with no options,
  i.e. with the embedder a user gets by default (named from the router's manifest);
- ``tela embedding-knn (model2vec)`` and ``(minilm)``: the same family with ``--set
  family.embedder=NAME`` (each left out when it is the default): the static embedder, and MiniLM on
  torch (the default before model2vec);
- ``RouteLLM random``: RouteLLM's ``routellm.openai_server`` with its ``random`` router, when
  RouteLLM is installed (``--routellm-python``: the interpreter of a venv that has it, default:
  this one). RouteLLM's install is heavy: ``pip install 'routellm[serve]'`` pulls torch,
  transformers, datasets, scikit-learn, pandas and litellm (a 2-3 GB venv); the target is skipped,
  with a note, when it is not importable.

All routers are trained on the bundled 400-prompt MMLU sample. Each target gets ``--requests``
requests (default 2,000) from ``--clients`` concurrent keep-alive clients (default 32), each
sending its next request when the last is answered (saturated), split into ``--rounds`` chunks
that are **interleaved** across targets (round r runs every target once, in an order rotated by
r), so a change in the machine's load hits every target alike. **Every prompt is unique** (the
held-out sample's questions, each with a request number appended), so no cache answers a
repeated prompt. Then each target is paced at ``--rate`` req/s, or a quarter of its saturated
throughput if that is less (latency without queueing), again interleaved, with the stand-in paced
at the same rates for the difference.

Printed per target: requests per second saturated, its ratio to the direct baseline and to
RouteLLM's (when it ran), p50/p99 latency and the latency it adds to the direct baseline
(saturated, and paced), and the server's CPU time per request (user + system of the server
process and its threads over the saturated chunks: what other jobs on a shared machine disturb
least).

    .venv/bin/python bench/serve_vs_routellm.py
    .venv/bin/python bench/serve_vs_routellm.py --routellm-python /tmp/routellm-venv/bin/python
    .venv/bin/python bench/serve_vs_routellm.py --requests 500 --targets length,model2vec   # quick look

The load generator is ``bench/serve_overhead.py``'s (asyncio, uvloop when installed, in this
process); all processes share the machine's cores: read the numbers as this machine's, at that
moment.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve_overhead as so  # noqa: E402  (sets the offline variables too)

TARGETS = ("length", "default", "model2vec", "minilm", "routellm")
EMBEDDERS = ("model2vec", "minilm")  # targets that are embedding-knn with that embedder


def manifest_embedder(router: Path) -> str:
    m = json.loads((router / "tela.json").read_text())
    emb = m.get("embedder") or {}
    return str(emb.get("name") if isinstance(emb, dict) else emb or "minilm")


def train(family: str, out: Path, extra: list[str]) -> Path:
    print(f"training {family} {' '.join(extra)} -> {out} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from tela_core.cli.main import main; main()",
            "run",
            "--family",
            family,
            "--data",
            str(so.SAMPLE),
            "--output",
            str(out),
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def routellm_python(arg: str | None) -> str | None:
    """The interpreter that has RouteLLM's server importable, or None."""
    py = arg or sys.executable
    r = subprocess.run(
        [
            py,
            "-c",
            "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('routellm') and "
            "importlib.util.find_spec('fastapi') else 1)",
        ],
        capture_output=True,
    )
    return py if r.returncode == 0 else None


def start_routellm(py: str, upstream: str) -> tuple[subprocess.Popen, str]:
    """``routellm.openai_server`` with its ``random`` router; both of its models go to the stand-in
    (through litellm's ``openai/`` provider and ``--base-url``)."""
    port = so.free_port()
    env = dict(os.environ, OPENAI_API_KEY="unused", LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    proc = subprocess.Popen(
        [
            py,
            "-m",
            "routellm.openai_server",
            "--routers",
            "random",
            "--base-url",
            upstream,
            "--api-key",
            "unused",
            "--strong-model",
            "openai/big",
            "--weak-model",
            "openai/small",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    body = json.dumps({"model": "router-random-0.5", "messages": [{"role": "user", "content": "warm-up"}]}).encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"RouteLLM's server failed:\n{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            req = urllib.request.Request(
                url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("RouteLLM's server did not answer")


class Prompts:
    """Unique prompts: the held-out sample's questions, each with a request number appended."""

    def __init__(self) -> None:
        self.base = [json.loads(line)["prompt"] for line in so.HELDOUT.read_text().splitlines() if line.strip()]
        self.n = 0

    def take(self, k: int) -> list[str]:
        out = [f"{self.base[(self.n + i) % len(self.base)]}\n\n(request {self.n + i})" for i in range(k)]
        self.n += k
        return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)} (direct always runs)"
    )
    ap.add_argument("--requests", type=int, default=2000, help="saturated requests per target")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument(
        "--rounds", type=int, default=4, help="interleaved chunks the requests of each target are split into"
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="paced runs: req/s, or a quarter of the target's saturated rate if less",
    )
    ap.add_argument("--paced-seconds", type=float, default=6.0, help="paced runs: seconds per target at its rate")
    ap.add_argument("--routellm-python", default=None, help="python of a venv with routellm[serve] (default: this one)")
    ap.add_argument(
        "--inline-below-ms", type=float, default=None, help="tela serve's inline_below_ms (default: its own)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    wanted = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(wanted) - set(TARGETS))
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")

    prompts = Prompts()
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="tela-bench-vs-routellm-"))
    atexit.register(shutil.rmtree, work, True)
    cfg = work / "serve.yaml"
    cfg.write_text("" if args.inline_below_ms is None else f"inline_below_ms: {args.inline_below_ms}\n")
    routers: dict[str, Path] = {}
    if "length" in wanted:
        routers["tela length"] = train("length", work / "length", [])
    default_emb = None
    if "default" in wanted:
        path = train("embedding-knn", work / "knn-default", [])
        default_emb = manifest_embedder(path)
        routers[f"tela embedding-knn ({default_emb}, default)"] = path
    for emb in EMBEDDERS:
        if emb not in wanted:
            continue
        if default_emb == emb:
            notes.append(f"{emb} is the default embedder: its row is the default one")
        else:
            routers[f"tela embedding-knn ({emb})"] = train(
                "embedding-knn", work / f"knn-{emb}", ["--set", f"family.embedder={emb}"]
            )
    rl_py = routellm_python(args.routellm_python) if "routellm" in wanted else None
    if "routellm" in wanted and rl_py is None:
        notes.append(
            "RouteLLM not run: routellm[serve] is not importable by "
            f"{args.routellm_python or sys.executable} (pass --routellm-python; its install pulls torch, "
            "transformers, datasets, scikit-learn, pandas and litellm)"
        )

    standin, upstream = so.start_standin()
    procs: dict[str, tuple[subprocess.Popen, str, str]] = {"direct": (standin, upstream, "small")}
    try:
        for name, path in routers.items():
            proc, url = so.start_serve(path, upstream, ["--config", str(cfg)])
            procs[name] = (proc, url, "router-r")
        if rl_py is not None:
            proc, url = start_routellm(rl_py, upstream)
            procs["RouteLLM random"] = (proc, url, "router-random-0.5")
        names = list(procs)
        for name, (proc, url, model) in procs.items():  # warm-up: connections, first-call costs
            so.load(url, model, prompts.take(100), 100, args.clients)

        lat: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, float] = {n: 0.0 for n in names}
        wall: dict[str, float] = {n: 0.0 for n in names}
        errors: dict[str, int] = {n: 0 for n in names}
        per = [args.requests // args.rounds + (1 if i < args.requests % args.rounds else 0) for i in range(args.rounds)]
        for r, n in enumerate(per):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                proc, url, model = procs[name]
                c0 = so.cpu_seconds(proc.pid)
                res = so.load(url, model, prompts.take(n), n, args.clients, keep=True)
                cpu[name] += so.cpu_seconds(proc.pid) - c0
                wall[name] += res["requests"] / res["rps"]
                lat[name].extend(res["latencies"])
                errors[name] += res["errors"]
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

        rows: dict[str, dict[str, Any]] = {}
        for name in names:
            rows[name] = {
                "target": name,
                "requests": len(lat[name]),
                "errors": errors[name],
                "rps": len(lat[name]) / wall[name],
                "p50_ms": pct(lat[name], 0.5),
                "p99_ms": pct(lat[name], 0.99),
                "cpu_ms": cpu[name] * 1000 / len(lat[name]),
            }
        # Paced: each target at its rate, the stand-in directly at the same rates, interleaved.
        rates = {name: min(args.rate, max(1.0, rows[name]["rps"] / 4)) for name in names if name != "direct"}
        paced: dict[tuple[str, float], list[float]] = {}
        jobs = [(name, rate) for name, rate in rates.items()] + [
            ("direct", rate) for rate in sorted(set(rates.values()))
        ]
        for r in range(2):
            for name, rate in jobs if r == 0 else jobs[::-1]:
                proc, url, model = procs[name]
                n = max(32, int(rate * args.paced_seconds / 2))
                res = so.load(url, model, prompts.take(n), n, args.clients, rate, keep=True)
                paced.setdefault((name, rate), []).extend(res["latencies"])
                rows[name]["errors"] += res["errors"]
        d = rows["direct"]
        for name, rate in rates.items():
            row, base = rows[name], paced[("direct", rate)]
            mine = paced[(name, rate)]
            row.update(
                added_p50_ms=row["p50_ms"] - d["p50_ms"],
                added_p99_ms=row["p99_ms"] - d["p99_ms"],
                paced_rate=rate,
                paced_added_p50_ms=pct(mine, 0.5) - pct(base, 0.5),
                paced_added_p99_ms=pct(mine, 0.99) - pct(base, 0.99),
            )
    finally:
        for proc, _, _ in procs.values():
            so.stop(proc)

    rl = rows.get("RouteLLM random")
    load1, load5, _ = os.getloadavg()
    print(
        f"\n{args.requests} requests a target saturated ({args.clients} concurrent clients, {args.rounds} interleaved "
        "rounds, "
        f"every prompt unique), then paced at {args.rate:g} req/s or a quarter of the target's saturated rate; one "
        "stand-in "
        f"upstream; {os.cpu_count()} CPUs, load average {load1:.1f} / {load5:.1f} (1 / 5 min) at the end.\n"
    )
    print(
        "| target | req/s | vs direct | vs RouteLLM | p50 / p99 ms | added p50 / p99 ms (saturated) | paced req/s | "
        "added p50 / p99 ms (paced) | server CPU ms/req | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        vs_rl = f"{row['rps'] / rl['rps']:.1f}×" if rl else "–"
        sat = f"{row['added_p50_ms']:+.1f} / {row['added_p99_ms']:+.1f}" if "added_p50_ms" in row else "–"
        pr = f"{row['paced_rate']:.0f}" if "paced_rate" in row else "–"
        pa = (
            f"{row['paced_added_p50_ms']:+.2f} / {row['paced_added_p99_ms']:+.2f}"
            if "paced_added_p50_ms" in row
            else "–"
        )
        print(
            f"| {name} | {row['rps']:.0f} | {row['rps'] / d['rps']:.2f}× | {vs_rl} | {row['p50_ms']:.1f} / "
            f"{row['p99_ms']:.1f} | {sat} | {pr} | {pa} "
            f"| {row['cpu_ms']:.2f} | {row['errors']} |"
        )
    if rl:
        tela_rows = [r for n, r in rows.items() if n.startswith("tela ")]
        print(
            "\nagainst RouteLLM (same run): "
            + ", ".join(
                f"{r['target']}: {r['rps'] / rl['rps']:.1f}× the req/s, {r['cpu_ms'] / rl['cpu_ms']:.2f}× the CPU a "
                "request"
                for r in tela_rows
            )
        )
    for note in notes:
        print(f"\nnote: {note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"rows": list(rows.values()), "notes": notes, "args": {k: str(v) for k, v in vars(args).items()}},
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
