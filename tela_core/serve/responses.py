"""ASGI responses of ``tela serve``: a complete response in one send, and a server-sent-event
stream that stops (and so cancels its upstream call) when the client disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from tela_core.infra.errors import UpstreamError
from tela_core.infra.io import json_line_bytes

from .chat import RequestError

__all__ = [
    "JSON_TYPE",
    "RawResponse",
    "EventStream",
    "raw_headers",
    "json_response",
    "error_response",
    "wait_disconnect",
]

JSON_TYPE = "application/json"


def raw_headers(extra: Mapping[str, str] | None = None, content_type: str = JSON_TYPE) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type.encode())]
    for k, v in (extra or {}).items():
        out.append((k.encode("latin-1"), str(v).encode("latin-1", "replace")))
    return out


class RawResponse:
    """A complete response as one ASGI send (cheaper than Starlette's Response for the hot path).
    ``after`` runs once the body is sent (or the send failed): work that must not delay the answer."""

    __slots__ = ("status", "body", "headers", "after")

    def __init__(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]], after: Callable[[], None] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers + [(b"content-length", str(len(body)).encode())]
        self.after = after

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
        finally:
            if self.after is not None:
                self.after()


def json_response(
    status: int, obj: Any, extra: Mapping[str, str] | None = None, after: Callable[[], None] | None = None
) -> RawResponse:
    # strict JSON (a NaN is null), a lone surrogate kept escaped (infra.io.json_line_bytes)
    return RawResponse(status, json_line_bytes(obj)[:-1], raw_headers(extra), after)


def error_response(err: RequestError, extra: Mapping[str, str] | None = None) -> RawResponse:
    return json_response(err.status, err.envelope(), extra)


class EventStream:
    """Server-sent events from ``chunks``; stops (and so cancels the upstream) when the client
    disconnects, even while the upstream is silent."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        headers: list[tuple[bytes, bytes]],
        done: Callable[[str | None], Awaitable[None]],
    ) -> None:
        self.chunks = chunks
        self.headers = headers
        self.done = done  # called once at the end with None, or "disconnect" / an error reason

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        outcome: str | None = None
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(wait_disconnect(receive))
        try:
            finished, _ = await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            if pump in finished:
                outcome = pump.result()
            else:
                outcome = "disconnect"
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        except BaseException:
            outcome = outcome or "disconnect"
            pump.cancel()
            raise
        finally:
            watch.cancel()
            await self.done(outcome)

    async def _pump(self, send: Any) -> str | None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        outcome = None
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as e:  # mid-stream: too late to fall back; tell the client in-band
            outcome = e.reason
            err = RequestError(502, f"upstream failed mid-stream: {e}", code="upstream_error", type="upstream_error")
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + json_line_bytes(err.envelope()) + b"\n",
                    "more_body": True,
                }
            )
        except OSError:  # the client went away
            return "disconnect"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return outcome


async def wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
