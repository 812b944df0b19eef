"""Helpers for the ``tela serve`` tests: stand-in upstreams and a `tela serve` process on loopback.

The upstreams are STAND-INS for remote model APIs (``examples/standin_upstream.py``): small
OpenAI-compatible servers that answer with their own model name, stream, and can be told to fail
or stall. Nothing here reaches a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "examples" / "standin_upstream.py"
SAMPLE = REPO / "tela_core" / "data" / "mmlu_sample.jsonl"


def env() -> dict[str, str]:
    from tela_core.testkit.helpers import OFFLINE_VARS

    e = dict(os.environ)
    e.update(OFFLINE_VARS)
    e.setdefault("TELA_CACHE", str(REPO / ".cache" / "tela"))
    e.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def standin(model: str) -> Iterator[str]:
    """A stand-in upstream answering as ``model``; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model", model, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(),
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if " on http://" not in line:
            raise RuntimeError(f"stand-in {model} did not start: {line}")
        yield line.strip().rsplit(" on ", 1)[1]
    finally:
        proc.terminate()
        proc.wait(10)


def control(base_url: str, **cmd: Any) -> dict[str, Any]:
    """Tell a stand-in how to behave (``mode="fail"|"stall"|"stall-stream"|"ok"``, ``stall_s``, ``reset``)."""
    root = base_url.rsplit("/v1", 1)[0]
    req = urllib.request.Request(root + "/control", data=json.dumps(cmd).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stats(base_url: str) -> dict[str, Any]:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(root + "/stats", timeout=10) as r:
        return json.loads(r.read())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class TelaServe:
    """A running ``tela serve`` process."""

    def __init__(
        self, args: list[str], port: int, extra_env: dict[str, str] | None = None, ready_timeout: float = 90.0
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = []
        e = env()
        e.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tela_core.cli.main import main; main()", "serve", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=e,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"tela serve exited with {self.proc.returncode}:\n{out}")
            try:
                status, _ = get(self.url + "/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        out = self.stop()
        raise RuntimeError(f"tela serve did not become ready in {ready_timeout:g} s; its output:\n{out[-3000:]}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.stdout.read() if self.proc.stdout else ""


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        got = {}
        if "{" in head:
            for part in head[head.index("{") + 1 : head.rindex("}")].split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    got[k.strip()] = v.strip().strip('"')
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def train_length_router(out: Path) -> Path:
    """A ``length`` router trained on the bundled MMLU sample (well under a second)."""
    from tela_core.testkit.helpers import run_cli

    res = run_cli("run", "--family", "length", "--data", SAMPLE, "--output", out)
    assert res.exit_code == 0, res.output
    return out


def wait_until(pred: Any, timeout: float = 30.0) -> None:
    """Wait until ``pred()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


_Load = TypeVar("_Load", bound="ClientLoad")


class ClientLoad:
    """Concurrent clients sending requests back to back, on a thread of their own, from ``with`` until
    its end: a subclass's ``send`` makes client ``c``'s request ``i`` (from 1) and keeps what it got;
    an httpx error on a request is kept in ``errors`` and the client goes on."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.clients = url, clients
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def send(self, client: Any, c: int, i: int) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:

            async def worker(c: int) -> None:
                i = 0
                while not self._stop.is_set():
                    i += 1
                    try:
                        await self.send(client, c, i)
                    except httpx.HTTPError as e:
                        self.errors.append(f"{type(e).__name__}: {e}")

            await asyncio.gather(*(worker(c) for c in range(self.clients)))

    def __enter__(self: _Load) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(60)


class EchoStandIn:
    """A STAND-IN for a remote model API, in this process (a thread of its own): an
    OpenAI-compatible chat server on loopback whose answer depends only on its model name and the
    request's last user turn (``"<model> answers <hash of the prompt>"``, no timestamps, no
    counters), so two runs of the same requests get byte-identical answers, and each answer says
    which prompt it was for. Set ``mode`` to ``"fail"`` (HTTP 500) and ``delay_s`` to slow it
    down; ``done_lag_s`` holds a stream's end (the chunked terminator) back that long after its
    ``data: [DONE]`` event, as a remote API's last TCP segment can be; a ``hold`` (a
    ``threading.Event``) keeps every answer back until it is set. ``calls`` counts the chat
    requests it got (``calls_by_prompt`` by answer id)."""

    def __init__(self, model: str) -> None:
        import asyncio
        import threading

        self.model = model
        self.mode = "ok"
        self.delay_s = 0.0
        self.done_lag_s = 0.0
        self.hold: threading.Event | None = None
        self.calls = 0
        self.calls_by_prompt: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._server: Any = None

        async def boot() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            started.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"standin-{model}", daemon=True)
        self._thread.start()
        started.wait(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    @staticmethod
    def answer_for(model: str, prompt: str) -> str:
        import hashlib

        return f"{model} answers {hashlib.sha1(prompt.encode()).hexdigest()[:12]}"

    def close(self) -> None:
        import asyncio

        async def shutdown() -> None:  # its handlers too (one may be waiting out done_lag_s)
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:]) if k}
                n = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(n) if n else b""
                body = json.loads(raw or b"{}")
                self.calls += 1
                while self.hold is not None and not self.hold.is_set():
                    await asyncio.sleep(0.01)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                out = self._reply(body)
                if self.done_lag_s and body.get("stream") and out.endswith(b"0\r\n\r\n"):
                    writer.write(out[:-5])  # up to and with data: [DONE]; the terminator later
                    await writer.drain()
                    await asyncio.sleep(self.done_lag_s)
                    out = out[-5:]
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _reply(self, body: dict[str, Any]) -> bytes:
        import hashlib

        if self.mode == "fail":
            payload = json.dumps(
                {
                    "error": {
                        "message": f"stand-in {self.model} told to fail",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            ).encode()
            return (
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % len(payload)
                + payload
            )
        users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        prompt = str(users[-1].get("content", "")) if users else ""
        text = self.answer_for(self.model, prompt)
        cid = "chatcmpl-" + hashlib.sha1(f"{self.model}|{prompt}".encode()).hexdigest()[:16]
        self.calls_by_prompt[cid] = self.calls_by_prompt.get(cid, 0) + 1
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 3, "total_tokens": len(prompt.split()) + 3}
        if not body.get("stream"):
            payload = json.dumps(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": 0,
                    "model": self.model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            ).encode()
            return (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload)
                + payload
            )

        def event(obj: Any) -> bytes:
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            return b"%x\r\n" % len(data) + data + b"\r\n"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        out += event(chunk({"role": "assistant", "content": ""}))
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            out += event(chunk({"content": piece}))
        out += event(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            out += event(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }
            )
        return out + event(b"[DONE]") + b"0\r\n\r\n"


@contextlib.contextmanager
def echo_pair() -> Iterator[dict[str, EchoStandIn]]:
    """The two STAND-IN upstreams most serve tests route between, ``small`` (weak) and ``big``
    (strong), closed at the end."""
    small, big = EchoStandIn("small"), EchoStandIn("big")
    try:
        yield {"small": small, "big": big}
    finally:
        small.close()
        big.close()


@contextlib.contextmanager
def kept_log(name: str = "tela.serve") -> Iterator[list[logging.LogRecord]]:
    """What logger ``name`` gets (INFO and up) while the block runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    lg = logging.getLogger(name)
    handler, level = Keep(level=logging.DEBUG), lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        yield records
    finally:
        lg.removeHandler(handler)
        lg.setLevel(level)
