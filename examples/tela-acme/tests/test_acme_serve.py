"""The ``acme-ollama`` upstream inside a real ``tela serve``, against a loopback stand-in for Ollama.

The stand-in is NOT Ollama (no model runs here, and nothing may reach the network): a tiny aiohttp
app on 127.0.0.1 that speaks Ollama's ``/api/chat`` wire format (one JSON answer, or NDJSON lines
when streaming), answers with its own name and records each request, so the test can check both
directions of the translation and which upstream the router picked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("openai")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandinOllama:
    """Loopback stand-in for Ollama's /api/chat; ``requests`` keeps every JSON body it got."""

    def __init__(self, name: str) -> None:
        self.name, self.port, self.requests = name, _free_port(), []  # type: ignore[var-annotated]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        async def chat(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            self.requests.append(body)
            text = f"I am {self.name}."
            if not body.get("stream"):
                return web.json_response(
                    {
                        "model": body["model"],
                        "message": {"role": "assistant", "content": text},
                        "done": True,
                        "done_reason": "stop",
                        "prompt_eval_count": 7,
                        "eval_count": 4,
                    }
                )
            resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await resp.prepare(request)
            for word in text.split(" "):
                await resp.write(
                    json.dumps({"message": {"role": "assistant", "content": word + " "}, "done": False}).encode()
                    + b"\n"
                )
            await resp.write(
                json.dumps(
                    {
                        "message": {"content": ""},
                        "done": True,
                        "done_reason": "length",
                        "prompt_eval_count": 7,
                        "eval_count": 4,
                    }
                ).encode()
                + b"\n"
            )
            return resp

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/api/chat", chat)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()


@pytest.fixture(scope="module")
def served(tfidf_router, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``tela serve`` with an acme-tfidf router whose two upstreams are acme-ollama clients."""
    d = tmp_path_factory.mktemp("serve")
    shutil.copytree(tfidf_router, d / "tfidf")
    small, big = StandinOllama("small"), StandinOllama("big")
    dead = _free_port()  # nothing listens here: a connection error, so tela serve falls back
    port = _free_port()
    config = {
        "routers": {
            "tfidf": {"path": "tfidf", "upstreams": ["small", "big"]},
            "broken": {"path": "tfidf", "upstreams": ["gone", "big"]},
        },
        "upstreams": {
            "small": {
                "type": "acme-ollama",
                "model": "llama3.2:1b",
                "base_url": f"http://127.0.0.1:{small.port}",
                "keep_alive": "30m",
                "options": {"num_ctx": 8192},
            },
            "big": {"type": "acme-ollama", "model": "llama3.3:70b", "base_url": f"http://127.0.0.1:{big.port}"},
            "gone": {"type": "acme-ollama", "model": "x", "base_url": f"http://127.0.0.1:{dead}", "connect_timeout": 2},
        },
        "port": port,
    }
    (d / "serve.yaml").write_text(json.dumps(config))
    exe = Path(sys.executable).with_name("tela")
    proc = subprocess.Popen(
        [str(exe), "serve", "--config", str(d / "serve.yaml"), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"tela serve did not become ready:\n{proc.communicate()[0]}")
            time.sleep(0.3)
        yield {"url": f"http://127.0.0.1:{port}/v1", "small": small, "big": big}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


HARD = (
    "Evaluate the definite integral of x^3 - 2x from 0 to 4, then prove the result with the fundamental theorem "
    "of calculus."
)


def test_routed_request_is_translated_to_ollama_and_back(served):
    from openai import OpenAI

    client = OpenAI(base_url=served["url"], api_key="none")
    raw = client.chat.completions.with_raw_response.create(
        model="router-tfidf-0.0",
        messages=[{"role": "user", "content": [{"type": "text", "text": HARD}]}],
        max_tokens=64,
        temperature=0.2,
    )
    answer = raw.parse()
    assert raw.headers["x-tela-model"] == "big" and answer.choices[0].message.content == "I am big."
    assert answer.usage.prompt_tokens == 7 and answer.usage.completion_tokens == 4
    sent = served["big"].requests[-1]
    assert sent["model"] == "llama3.3:70b" and sent["stream"] is False
    assert sent["messages"] == [{"role": "user", "content": HARD}]  # content parts joined to Ollama's text
    assert sent["options"] == {"num_predict": 64, "temperature": 0.2}

    raw = client.chat.completions.with_raw_response.create(
        model="router-tfidf-1.0", messages=[{"role": "user", "content": "Hi!"}]
    )
    assert raw.headers["x-tela-model"] == "small" and raw.parse().choices[0].message.content == "I am small."
    sent = served["small"].requests[-1]
    assert sent["keep_alive"] == "30m" and sent["options"] == {"num_ctx": 8192}  # the upstream's own options


def test_streamed_ndjson_becomes_server_sent_events(served):
    from openai import OpenAI

    client = OpenAI(base_url=served["url"], api_key="none")
    chunks = list(
        client.chat.completions.create(
            model="router-tfidf-1.0", stream=True, messages=[{"role": "user", "content": "Hi!"}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "I am small. " and served["small"].requests[-1]["stream"] is True
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_unreachable_ollama_falls_back_to_the_other_model(served):
    from openai import OpenAI

    client = OpenAI(base_url=served["url"], api_key="none")
    raw = client.chat.completions.with_raw_response.create(
        model="router-broken-1.0", messages=[{"role": "user", "content": "Hi!"}]
    )
    assert raw.headers["x-tela-fallback"] == "gone" and raw.headers["x-tela-model"] == "big"
    assert raw.parse().choices[0].message.content == "I am big."
