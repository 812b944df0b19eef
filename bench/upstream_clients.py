"""Which async HTTP client `tela serve` should forward requests with: httpx or aiohttp.

Both clients post the same chat-completions request to one STAND-IN upstream
(``examples/standin_upstream.py``, an OpenAI-compatible server on loopback that answers at once), in
one process, alternating rounds: sequential requests (per-request cost) and ``--clients``
concurrent tasks sharing one client (what a proxy does under load). Prints requests per second
and the CPU time this process spent per request, and the ratio aiohttp / httpx.

    .venv/bin/python bench/upstream_clients.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {"model": "standin", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
).encode()


async def run(post, n: int, clients: int) -> tuple[float, float]:
    for _ in range(20):
        await post()
    c0, t0 = time.process_time(), time.perf_counter()
    per = n // clients

    async def worker() -> None:
        for _ in range(per):
            await post()

    await asyncio.gather(*(worker() for _ in range(clients)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return per * clients / wall, cpu * 1000 / (per * clients)


async def main(url: str, n: int, clients: int, rounds: int) -> None:
    import aiohttp
    import httpx

    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=512, max_keepalive_connections=512), trust_env=False)
    ah = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), cookie_jar=aiohttp.DummyCookieJar())
    headers = {"content-type": "application/json"}

    async def post_httpx() -> None:
        r = await hx.post(url, content=BODY, headers=headers)
        r.read()

    async def post_aiohttp() -> None:
        async with ah.post(url, data=BODY, headers=headers) as r:
            await r.read()

    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for name, post in (("httpx", post_httpx), ("aiohttp", post_aiohttp)):
            for c in (1, clients):
                results.setdefault((name, c), []).append(await run(post, n, c))
    await hx.aclose()
    await ah.close()
    print("| client | concurrent | req/s (median) | client CPU ms/req (median) |")
    print("|---|---:|---:|---:|")
    med = {}
    for (name, c), rs in results.items():
        rps = sorted(r[0] for r in rs)[len(rs) // 2]
        cpu = sorted(r[1] for r in rs)[len(rs) // 2]
        med[(name, c)] = (rps, cpu)
        print(f"| {name} | {c} | {rps:.0f} | {cpu:.3f} |")
    for c in (1, clients):
        print(
            f"aiohttp / httpx at {c} concurrent: {med[('aiohttp', c)][0] / med[('httpx', c)][0]:.2f}x req/s, "
            f"{med[('httpx', c)][1] / med[('aiohttp', c)][1]:.2f}x less CPU per request"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1024)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "standin_upstream.py"), "--model", "standin", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = (proc.stdout.readline() if proc.stdout else "").strip().rsplit(" on ", 1)[1]
        asyncio.run(main(base + "/chat/completions", args.requests, args.clients, args.rounds))
    finally:
        proc.terminate()
        proc.wait(10)
