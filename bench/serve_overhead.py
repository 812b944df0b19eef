"""What `tela serve` adds: a stand-in upstream called directly, and through `tela serve`, in one run.

The upstream is a STAND-IN for a remote model API (``examples/standin_upstream.py``: an
OpenAI-compatible server on loopback that answers at once with its own name), so what is measured
is tela's own cost: parsing, routing (scoring the prompt), forwarding over HTTP, and answering.
Both upstream names point at the same stand-in process.

For each router family (``length``, ``embedding-knn``, ``lm-probe``, trained on the bundled
400-prompt MMLU sample, or taken from ``--work`` if already there) and for the direct baseline:

- **saturated**: ``--clients`` concurrent clients (default 32), each sending its next request as
  soon as the last is answered, ``--requests`` in all (``--model-requests`` for the two routers
  that run a model per prompt): requests per second, p50/p99 latency, and the CPU time the server
  process (the stand-in for the direct row, `tela serve` otherwise) spent per request, which
  other jobs on the machine disturb far less than wall-clock numbers;
- **paced**: the same clients at a fixed total rate (``--rate`` req/s, or a quarter of the router's
  saturated throughput if that is less), so latency is not queueing: the p50/p99 that tela adds is
  the paced latency through tela minus the paced latency direct at the same rate;
- for ``lm-probe``, saturated throughput again with ``--max-batch 1`` (every request scored alone):
  the micro-batching gain is batched / batch-1 throughput.

Prompts are the bundled held-out sample's questions (``tela_core/data/mmlu_heldout_sample.jsonl``),
cycled. The load generator is a small keep-alive HTTP/1.1 client in this process (asyncio, uvloop
when installed), so the client's own cost stays small. All processes share the machine's cores:
run it on a quiet machine, and read the numbers as this machine's, at that moment.

    .venv/bin/python bench/serve_overhead.py                       # all three, 3,000 requests each
    .venv/bin/python bench/serve_overhead.py --routers length --requests 1000
    .venv/bin/python bench/serve_overhead.py --routers embedding-knn \
        --embedders minilm,minilm-onnx,minilm-onnx-int8,model2vec

``--embedders`` serves one ``embedding-knn`` router per embedder (each trained with
``--set family.embedder=NAME``), so their rows sit side by side in one run. Every router also gets
a **one-client** run (``--c1-requests`` requests, each sent when the last is answered, through
tela and direct): the latency tela adds to a lone request, beside the paced 32-client numbers.

``--shadow RATE`` adds, for each router, what shadow mode costs the user: the same server started
without shadow mode and with ``--shadow RATE --log-prompts`` (a shadow log in a temporary folder),
``--shadow-rounds`` times each, alternating, every run paced as above with ``--clients`` clients;
the added p50/p99 is the shadow runs' (latencies pooled) minus the plain runs'. It also prints how
many requests were shadowed and dropped (from ``/metrics``), so the shadow calls really ran.

    .venv/bin/python bench/serve_overhead.py --routers length --requests 500 --c1-requests 0 --shadow 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tela_core" / "data" / "mmlu_sample.jsonl"
HELDOUT = REPO / "tela_core" / "data" / "mmlu_heldout_sample.jsonl"
STANDIN = REPO / "examples" / "standin_upstream.py"


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_standin() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model", "standin", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, line.strip().rsplit(" on ", 1)[1]


def start_serve(router: Path, upstream: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """``tela serve`` routing ``router`` between the stand-in ``upstream``'s ``small`` and ``big``."""
    args = ["--router", f"r={router}", "--weak", f"{upstream}#small", "--strong", f"{upstream}#big"]
    return start_tela_serve([*args, *extra])


def start_tela_serve(args: list[str]) -> tuple[subprocess.Popen, str]:
    """``tela serve ARGS`` on a free port, quiet; returns once ``/ready`` answers 200."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tela_core.cli.main import main; main()",
            "serve",
            *args,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tela serve failed:\n{proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("tela serve did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def train(family: str, work: Path, embedder: str | None = None) -> Path:
    out = work / (f"{family}-{embedder}" if embedder else family)
    if (out / "tela.json").is_file():
        return out
    print(f"training {family} on {SAMPLE.name} -> {out} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    extra = ["--set", f"family.embedder={embedder}"] if embedder else []
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from tela_core.cli.main import main; main()",
            "run",
            "--family",
            family,
            "--data",
            str(SAMPLE),
            "--output",
            str(out),
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"  {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------------------------------------------
# Load generator: keep-alive HTTP/1.1, one connection per client
# ------------------------------------------------------------------------------------------------


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        try:
            return await self._post(path, body)
        except (asyncio.IncompleteReadError, ConnectionError):  # the server closed an idle connection
            self.close()
            self.writer = None
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\ncontent-length: "
            f"{len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        n = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                n = int(line[15:])
        await self.reader.readexactly(n)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_load(
    url: str, model: str, prompts: list[str], n: int, clients: int, rate: float | None, keep: bool = False
) -> dict[str, Any]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/v1/chat/completions"
    bodies = [json.dumps({"model": model, "messages": [{"role": "user", "content": p}]}).encode() for p in prompts]
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    start = time.perf_counter()

    async def worker(c: int) -> None:
        nonlocal errors
        cl = Client(host, int(port))
        try:
            for i in counter:
                if rate:
                    due = start + i / rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                t0 = time.perf_counter()
                status = await cl.post(path, bodies[i % len(bodies)])
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        finally:
            cl.close()

    await asyncio.gather(*(worker(c) for c in range(clients)))
    wall = time.perf_counter() - start
    lat.sort()
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000,
        **({"latencies": lat} if keep else {}),
    }


def load(
    url: str, model: str, prompts: list[str], n: int, clients: int, rate: float | None = None, keep: bool = False
) -> dict[str, Any]:
    try:
        import uvloop  # type: ignore[import-not-found]

        return uvloop.run(run_load(url, model, prompts, n, clients, rate, keep))
    except ImportError:
        return asyncio.run(run_load(url, model, prompts, n, clients, rate, keep))


# ------------------------------------------------------------------------------------------------


def scrape(url: str, name: str) -> float:
    """Sum of a counter's samples in the server's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def shadow_row(
    family: str, path: Path, upstream: str, prompts: list[str], args: Any, rate: float, base: list[str]
) -> dict[str, Any]:
    """Paced latency of the router's server without and with shadow mode, in alternating runs."""
    plain: list[float] = []
    shadow: list[float] = []
    shadowed = dropped = 0.0
    errors = 0
    cpu = {False: 0.0, True: 0.0}
    n = max(32, int(rate * args.paced_seconds))
    with tempfile.TemporaryDirectory(prefix="tela-bench-shadow-") as tmp:
        for i in range(args.shadow_rounds * 2):
            on = i % 2 == 1
            extra = (
                ["--shadow", f"{args.shadow:g}", "--shadow-log", str(Path(tmp) / "shadow.jsonl"), "--log-prompts"]
                if on
                else []
            )
            proc, url = start_serve(path, upstream, base + extra)
            try:
                load(url, "router-r", prompts, min(200, n), args.clients)  # warm-up
                c0 = cpu_seconds(proc.pid)
                res = load(url, "router-r", prompts, n, args.clients, rate, keep=True)
                if on:
                    time.sleep(1.0)  # the last shadow calls
                cpu[on] += cpu_seconds(proc.pid) - c0
                errors += res["errors"]
                (shadow if on else plain).extend(res["latencies"])
                if on:
                    shadowed += scrape(url, "tela_shadow_requests_total")
                    dropped += scrape(url, "tela_shadow_dropped_total")
            finally:
                stop(proc)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    row = {
        "router": family,
        "shadow_rate": args.shadow,
        "paced_rate": rate,
        "plain_p50_ms": pct(plain, 0.5),
        "plain_p99_ms": pct(plain, 0.99),
        "shadow_p50_ms": pct(shadow, 0.5),
        "shadow_p99_ms": pct(shadow, 0.99),
        "shadowed": shadowed,
        "dropped": dropped,
        "errors": errors,
        "plain_cpu_ms": cpu[False] * 1000 / max(1, len(plain)),
        "shadow_cpu_ms": cpu[True] * 1000 / max(1, len(shadow)),
    }
    row.update(
        added_p50_ms=row["shadow_p50_ms"] - row["plain_p50_ms"], added_p99_ms=row["shadow_p99_ms"] - row["plain_p99_ms"]
    )
    print(
        f"{family} shadow {args.shadow:g}: added p50 {row['added_p50_ms']:.2f} ms p99 {row['added_p99_ms']:.2f} ms "
        f"({shadowed:.0f} shadowed, {dropped:.0f} dropped)",
        file=sys.stderr,
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routers", default="length,embedding-knn,lm-probe")
    ap.add_argument("--requests", type=int, default=3000, help="requests per saturated run")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rate", type=float, default=100.0, help="paced runs: total requests per second")
    ap.add_argument("--paced-seconds", type=float, default=8.0)
    ap.add_argument(
        "--model-requests",
        type=int,
        default=600,
        help="requests per saturated run of the embedding-knn and lm-probe routers (they run a model per prompt)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("TELA_CACHE", REPO / ".cache" / "tela")) / "bench" / "serve-overhead",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--embedders", default="minilm", help="embedding-knn: one router per embedder named here (comma-separated)"
    )
    ap.add_argument("--c1-requests", type=int, default=200, help="requests of the one-client run (0: skip it)")
    ap.add_argument(
        "--embedding-cache",
        type=int,
        default=0,
        help="tela serve's embedding_cache (default 0: every "
        "request embeds its prompt; the prompts cycle, so an LRU would measure cache hits)",
    )
    ap.add_argument(
        "--shadow",
        type=float,
        default=None,
        metavar="RATE",
        help="also measure shadow mode at this rate against the same server without it",
    )
    ap.add_argument("--shadow-rounds", type=int, default=2, help="plain/shadow runs of each router, alternating")
    ap.add_argument(
        "--inline-below-ms", type=float, default=None, help="tela serve's inline_below_ms (default: its own)"
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    serve_cfg = args.work / f"serve-cache-{args.embedding_cache}-inline-{args.inline_below_ms}.yaml"
    serve_cfg.write_text(
        f"embedding_cache: {args.embedding_cache}\n"
        + (f"inline_below_ms: {args.inline_below_ms}\n" if args.inline_below_ms is not None else "")
    )

    prompts = [json.loads(line)["prompt"] for line in HELDOUT.read_text(encoding="utf-8").split("\n") if line.strip()]
    families = [f for f in args.routers.split(",") if f]
    embedders = [e for e in args.embedders.split(",") if e]
    routers: dict[str, Path] = {}
    for f in families:
        if f == "embedding-knn" and embedders != ["minilm"]:
            for e in embedders:
                routers[f"{f} ({e})"] = train(f, args.work, e)
        else:
            routers[f] = train(f, args.work)
    standin, upstream = start_standin()
    rows: list[dict[str, Any]] = []
    try:
        load(upstream, "small", prompts, 200, args.clients)  # warm-up
        c0 = cpu_seconds(standin.pid)
        direct = load(upstream, "small", prompts, args.requests, args.clients)
        direct["cpu_ms"] = (cpu_seconds(standin.pid) - c0) * 1000 / direct["requests"]
        direct_paced = load(upstream, "small", prompts, int(args.rate * args.paced_seconds), args.clients, args.rate)
        rows.append(
            {
                "router": "(direct)",
                **direct,
                "paced_rate": args.rate,
                "paced_p50_ms": direct_paced["p50_ms"],
                "paced_p99_ms": direct_paced["p99_ms"],
            }
        )
        direct_c1 = load(upstream, "small", prompts, args.c1_requests, 1) if args.c1_requests else None
        print(
            f"direct: {direct['rps']:.0f} req/s, paced p50 {direct_paced['p50_ms']:.2f} ms p99 "
            f"{direct_paced['p99_ms']:.2f} ms",
            file=sys.stderr,
            flush=True,
        )
        for family, path in routers.items():
            lm = family == "lm-probe"
            n = args.requests if family == "length" or "(model2vec)" in family else args.model_requests
            variants = [("batched", ["--config", str(serve_cfg)])] + (
                [("batch 1", ["--config", str(serve_cfg), "--max-batch", "1"])] if lm else []
            )
            for label, extra in variants:
                proc, url = start_serve(path, upstream, extra)
                try:
                    load(url, "router-r", prompts, min(200, n), args.clients)  # warm-up
                    c0 = cpu_seconds(proc.pid)
                    sat = load(url, "router-r", prompts, n, args.clients)
                    sat["cpu_ms"] = (cpu_seconds(proc.pid) - c0) * 1000 / sat["requests"]
                    rate = min(args.rate, max(1.0, sat["rps"] / 4))  # well below saturation: latency, not queueing
                    if label == "batched":
                        paced = load(
                            url, "router-r", prompts, max(32, int(rate * args.paced_seconds)), args.clients, rate
                        )
                        if rate != args.rate:  # direct at the same pace, for the difference
                            dp = load(
                                upstream, "small", prompts, max(32, int(rate * args.paced_seconds)), args.clients, rate
                            )
                        else:
                            dp = direct_paced
                        row = {
                            "router": family,
                            **sat,
                            "paced_rate": rate,
                            "paced_p50_ms": paced["p50_ms"],
                            "paced_p99_ms": paced["p99_ms"],
                            "added_p50_ms": paced["p50_ms"] - dp["p50_ms"],
                            "added_p99_ms": paced["p99_ms"] - dp["p99_ms"],
                        }
                        if direct_c1 is not None:
                            c1 = load(url, "router-r", prompts, args.c1_requests, 1)
                            row.update(
                                c1_added_p50_ms=c1["p50_ms"] - direct_c1["p50_ms"],
                                c1_added_p99_ms=c1["p99_ms"] - direct_c1["p99_ms"],
                            )
                    else:
                        row = {"router": f"{family} ({label})", **sat}
                    rows.append(row)
                    print(
                        f"{row['router']}: {sat['rps']:.0f} req/s"
                        + (
                            f", added p50 {row['added_p50_ms']:.2f} ms p99 {row['added_p99_ms']:.2f} ms"
                            if "added_p50_ms" in row
                            else ""
                        ),
                        file=sys.stderr,
                        flush=True,
                    )
                finally:
                    stop(proc)
            if args.shadow is not None:
                rate = min(args.rate, max(1.0, rows[-1]["rps"] / 4))
                rows.append(shadow_row(family, path, upstream, prompts, args, rate, ["--config", str(serve_cfg)]))
    finally:
        stop(standin)

    shadow_rows = [r for r in rows if "shadow_rate" in r]
    rows = [r for r in rows if "shadow_rate" not in r]
    lm_rows = {r["router"]: r for r in rows}
    print(
        f"\n{args.clients} concurrent clients; saturated runs of {args.requests} requests ({args.model_requests} for "
        "embedding-knn and lm-probe); "
        f"paced at {args.rate:g} req/s or a quarter of the router's saturated throughput if less; "
        f"{os.cpu_count()} CPUs, shared.\n"
    )
    print(
        "| router | saturated req/s | vs direct | p50 ms | p99 ms | server CPU ms/req | paced req/s | added p50 ms | "
        "added p99 ms | 1 client: added p50 / p99 ms | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = rows[0]["rps"]
    for r in rows:
        added = (f"{r['added_p50_ms']:.2f} | {r['added_p99_ms']:.2f}") if "added_p50_ms" in r else "– | –"
        paced = f"{r['paced_rate']:.0f}" if "paced_rate" in r else "–"
        c1 = f"{r['c1_added_p50_ms']:.2f} / {r['c1_added_p99_ms']:.2f}" if "c1_added_p50_ms" in r else "–"
        print(
            f"| {r['router']} | {r['rps']:.0f} | {r['rps'] / base:.2f}× | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['cpu_ms']:.2f} | {paced} | {added} | {c1} | {r['errors']} |"
        )
    knn = [r for r in rows if r["router"].startswith("embedding-knn")]
    base_knn = next((r for r in knn if r["router"] in ("embedding-knn", "embedding-knn (minilm)")), None)
    if base_knn and len(knn) > 1:
        print(
            "\nsaturated req/s against embedding-knn with minilm: "
            + ", ".join(f"{r['router']} {r['rps'] / base_knn['rps']:.1f}×" for r in knn if r is not base_knn)
        )
    if "lm-probe" in lm_rows and "lm-probe (batch 1)" in lm_rows:
        gain = lm_rows["lm-probe"]["rps"] / lm_rows["lm-probe (batch 1)"]["rps"]
        print(f"\nlm-probe micro-batching gain (batched / batch 1 throughput, {args.clients} clients): {gain:.2f}×")
    if shadow_rows:
        print(
            f"\nshadow mode (rate {args.shadow:g}, --log-prompts), {args.clients} clients paced, {args.shadow_rounds} "
            "runs each way, alternating:\n"
        )
        print(
            "| router | paced req/s | plain p50 / p99 ms | shadow p50 / p99 ms | added p50 ms | added p99 ms | server "
            "CPU ms/req plain / shadow | shadowed | dropped | errors |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in shadow_rows:
            print(
                f"| {r['router']} | {r['paced_rate']:.0f} | {r['plain_p50_ms']:.2f} / {r['plain_p99_ms']:.2f} | "
                f"{r['shadow_p50_ms']:.2f} / {r['shadow_p99_ms']:.2f} "
                f"| {r['added_p50_ms']:.2f} | {r['added_p99_ms']:.2f} | {r['plain_cpu_ms']:.2f} / "
                f"{r['shadow_cpu_ms']:.2f} | {r['shadowed']:.0f} | {r['dropped']:.0f} | {r['errors']} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows + shadow_rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
