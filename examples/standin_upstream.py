"""A STAND-IN for a remote model API: a tiny OpenAI-compatible chat server on loopback.

It is not a model. It answers every chat-completions request with its own name ("I am small"),
so you can see which upstream `tela serve` picked, without an API key, a GPU or a network. The
tests, the README tour and ``bench/serve_overhead.py`` use it in place of the real upstreams
(vLLM, Ollama, llama.cpp's server, OpenAI, ...) that a deployment would point tela at.

    python examples/standin_upstream.py --model small --port 8001 &
    python examples/standin_upstream.py --model big --port 8002 &

Endpoints: ``POST /v1/chat/completions`` (JSON, or server-sent events ending ``data: [DONE]`` when
``stream`` is true; a usage chunk when ``stream_options.include_usage`` is), ``GET /v1/models``,
``GET /stats`` (requests seen, answered, and cut off by the client) and ``POST /control`` with
``{"mode": "ok" | "fail" | "stall" | "stall-stream", "stall_s": 30, "delay_ms": 0}`` to make it
fail (HTTP 500), stall before answering, or stall after the first streamed chunk.

It is no judge: its replies hold no rating, so ``tela judge`` reads no verdict from it. For a
stand-in judge, and upstreams that replay real models' answers, see docs/own-models.md, "Rehearse
offline" (``tela_core.testkit.replay_upstream``).

Standard library only (uvloop is used when installed); one process, asyncio, HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

__all__ = ["StandIn", "main"]


class StandIn:
    """The server's state and its request handling."""

    def __init__(self, model: str, delay_ms: float = 0.0) -> None:
        self.model = model
        self.mode = "ok"
        self.stall_s = 30.0
        self.delay_ms = float(delay_ms)
        self.stats = {"requests": 0, "answered": 0, "cut_off": 0}
        self.last_body: Any = None

    # -- HTTP plumbing ------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length") or 0)
                body = await reader.readexactly(n) if n else b""
                keep = await self.route(method, path.split("?")[0], body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, obj: Any) -> None:
        payload = json.dumps(obj).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Status")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    async def route(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return await self.chat(body, writer)
        if method == "GET" and path == "/v1/models":
            self._send(
                writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "stand-in"}]}
            )
        elif method == "GET" and path == "/stats":
            self._send(writer, 200, {**self.stats, "mode": self.mode, "model": self.model, "last_body": self.last_body})
        elif method == "POST" and path == "/control":
            cmd = json.loads(body or b"{}")
            self.mode = cmd.get("mode", self.mode)
            self.stall_s = float(cmd.get("stall_s", self.stall_s))
            self.delay_ms = float(cmd.get("delay_ms", self.delay_ms))
            if cmd.get("reset"):
                self.stats = {"requests": 0, "answered": 0, "cut_off": 0}
            self._send(writer, 200, {"mode": self.mode, "stall_s": self.stall_s, "delay_ms": self.delay_ms})
        else:
            self._send(
                writer,
                404,
                {
                    "error": {
                        "message": f"{method} {path}: not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        await writer.drain()
        return True

    # -- chat completions ---------------------------------------------------------------------

    async def chat(self, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        self.stats["requests"] += 1
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(
                writer,
                400,
                {"error": {"message": "bad JSON", "type": "invalid_request_error", "param": None, "code": None}},
            )
            await writer.drain()
            return True
        self.last_body = body
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000.0)
        if self.mode == "fail":
            self._send(
                writer,
                500,
                {
                    "error": {
                        "message": f"stand-in {self.model} told to fail",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            await writer.drain()
            return True
        if self.mode == "stall":
            if await self._cut_off_while(asyncio.sleep(self.stall_s), writer):
                return False
        text = f"I am {self.model}."
        prompt_tokens = sum(
            len(str(m.get("content", "")).split()) for m in body.get("messages", []) if isinstance(m, dict)
        )
        created = int(time.time())
        cid = f"chatcmpl-standin-{self.stats['requests']}"
        if not body.get("stream"):
            self._send(
                writer,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": self.model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": 3,
                        "total_tokens": prompt_tokens + 3,
                    },
                },
            )
            await writer.drain()
            self.stats["answered"] += 1
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

        def event(obj: Any) -> bytes:
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        pieces = ["I am ", f"{self.model}", "."]
        try:
            writer.write(event(chunk({"role": "assistant", "content": ""})))
            await writer.drain()
            if self.mode == "stall-stream":
                if await self._cut_off_while(asyncio.sleep(self.stall_s), writer):
                    return False
            for p in pieces:
                writer.write(event(chunk({"content": p})))
            writer.write(event(chunk({}, "stop")))
            if (body.get("stream_options") or {}).get("include_usage"):
                writer.write(
                    event(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": self.model,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": prompt_tokens,
                                "completion_tokens": 3,
                                "total_tokens": prompt_tokens + 3,
                            },
                        }
                    )
                )
            writer.write(event(b"[DONE]") + b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.stats["cut_off"] += 1
            return False
        self.stats["answered"] += 1
        return True

    async def _cut_off_while(self, wait: Any, writer: asyncio.StreamWriter) -> bool:
        """Wait, but notice when the client hangs up meanwhile (counted as cut off)."""
        transport = writer.transport
        task = asyncio.ensure_future(wait)
        while not task.done():
            await asyncio.wait((task,), timeout=0.02)
            if transport.is_closing() or writer.is_closing() or _peer_gone(writer):
                task.cancel()
                self.stats["cut_off"] += 1
                return True
        return False


def _peer_gone(writer: asyncio.StreamWriter) -> bool:
    reader = getattr(writer, "_protocol", None)
    stream_reader = getattr(reader, "_stream_reader", None)
    return bool(stream_reader is not None and stream_reader.at_eof())


async def serve(model: str, host: str, port: int, delay_ms: float = 0.0, ready: Any = None) -> None:
    standin = StandIn(model, delay_ms)
    server = await asyncio.start_server(standin.handle, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(
        f"stand-in upstream {model!r} (not a model: answers with its own name) on http://{host}:{bound}/v1", flush=True
    )
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="A stand-in for a remote OpenAI-compatible model API (answers with its own name)."
    )
    ap.add_argument("--model", required=True, help="the name it answers with, e.g. small")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001, help="0 picks a free port (printed)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before each answer")
    args = ap.parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found]

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(args.model, args.host, args.port, args.delay_ms))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
