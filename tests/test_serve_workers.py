"""`tela serve --workers 2` from a TOML config file: `/ready` answers 200 once both processes are up,
metrics add up across them, and the decision log (with prompts, as configured) gets one whole line
per request.

The upstreams are STAND-INS for remote model APIs (examples/standin_upstream.py): OpenAI-compatible
servers on loopback that answer with their own model name.
"""

from __future__ import annotations

import asyncio
import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from serve_support import TelaServe, free_port, get, metric, standin, train_length_router  # noqa: E402


def test_two_workers(tmp_path):
    from tela_core import Router

    router_dir = train_length_router(tmp_path / "len")
    router = Router.load(router_dir)
    log = tmp_path / "decisions.jsonl"
    with standin("small") as small, standin("big") as big:
        cfg = tmp_path / "serve.toml"
        cfg.write_text(
            f'workers = 2\nlog_prompts = true\ndecision_log = "{log}"\n'
            f'[routers.len]\npath = "{router_dir}"\nupstreams = ["small", "big"]\n'
            f'[upstreams.small]\nbase_url = "{small}"\nprice_input = 1.0\nprice_output = 2.0\n'
            f'[upstreams.big]\nbase_url = "{big}"\nprice_input = 10.0\nprice_output = 20.0\n'
        )
        server = TelaServe(["--config", str(cfg)], free_port())  # returns once /ready answers 200
        try:
            # /ready means both workers are up (not only the one the probe reached): two live
            # processes, each a worker of this server, registered once its router was loaded
            status, body = get(server.url + "/ready")
            workers = json.loads(body)["workers"]
            assert status == 200 and workers["expected"] == workers["ready"] == 2, body
            assert len(set(workers["pids"])) == 2 and server.proc.pid not in workers["pids"]
            for pid in workers["pids"]:
                with open(f"/proc/{pid}/stat") as fh:  # a child of the server's main process
                    assert int(fh.read().rsplit(")", 1)[1].split()[1]) == server.proc.pid
            prompts = [f"q{i} " + "why " * (i * 7) for i in range(40)]
            expected = ["small" if m == router.models[0] else "big" for m in router.route(prompts)]

            async def main():
                async def one(p):  # a new connection each (the kernel picks the worker)
                    async with httpx.AsyncClient(base_url=server.url) as c:
                        r = await c.post(
                            "/v1/chat/completions",
                            json={"model": "router-len", "messages": [{"role": "user", "content": p}]},
                        )
                        return r.status_code, r.json()["model"]

                return await asyncio.gather(*(one(p) for p in prompts))

            results = asyncio.run(main())
            assert results == [(200, m) for m in expected]
            text = get(server.url + "/metrics")[1]
            assert metric(text, "tela_requests_total", router="len", status="200") == 40  # every worker's counts
            # which worker took which connection is the kernel's choice: only that the ones that
            # routed are this server's workers (one series per process) is the server's promise
            pids = {
                int(line.split('pid="')[1].split('"')[0])
                for line in text.splitlines()
                if line.startswith("tela_strong_share{")
            }
            assert pids and pids <= set(workers["pids"]), text
            tokens_in = sum(len(p.split()) for p in prompts)
            assert metric(text, "tela_tokens_total", kind="input") == tokens_in
            want_cost = sum(
                (len(p.split()) * (1.0 if m == "small" else 10.0) + 3 * (2.0 if m == "small" else 20.0)) / 1e6
                for p, m in zip(prompts, expected)
            )
            assert metric(text, "tela_estimated_cost_dollars_total") == pytest.approx(want_cost)
        finally:
            out = server.stop()
    assert "Traceback" not in out, out
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 40 and sorted(r["prompt"] for r in lines) == sorted(prompts)
    assert all(r["upstream"] == expected[prompts.index(r["prompt"])] for r in lines)
