"""``acme-ollama``: ``tela serve`` upstream client for Ollama's native API (``POST /api/chat``).

Ollama also serves an OpenAI-compatible ``/v1`` (use the builtin ``openai`` client for it); the
native API is the one that takes Ollama's own settings per request: ``keep_alive`` (how long the
model stays loaded) and ``options`` such as ``num_ctx``. This client translates OpenAI's
chat-completions request to ``/api/chat`` and the answer back, streamed (NDJSON to SSE) or not.
aiohttp is imported inside the methods (``pip install 'tela-acme[serve]'``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import TelaError, Upstream, UpstreamError, UpstreamReply

# OpenAI sampling fields -> Ollama ``options`` keys.
_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
_FAILURE_STATUSES = {401, 403, 408, 429}


class OllamaOptions(BaseModel):
    """Settings of ``acme-ollama`` (the upstream's keys in a `tela serve` config; unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        ..., description="Ollama's root, e.g. http://localhost:11434 (requests go to {base_url}/api/chat)."
    )
    keep_alive: str | None = Field(
        None, description="How long Ollama keeps the model loaded after a request, e.g. '30m' (None: Ollama's default)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Ollama model options sent with every request, e.g. {num_ctx: 8192}; request fields win.",
    )
    timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for the answer to start, and between two streamed lines."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a connection.")


def _text(content: Any) -> tuple[str, list[str]]:
    """An OpenAI message content as Ollama's text and base64 images."""
    if isinstance(content, str) or content is None:
        return content or "", []
    texts, images = [], []
    for part in content:
        if part.get("type") == "text":
            texts.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and "," in url:
                images.append(url.split(",", 1)[1])
    return "\n".join(texts), images


def to_ollama(body: Mapping[str, Any], stream: bool, opts: OllamaOptions) -> dict[str, Any]:
    """The ``/api/chat`` request for an OpenAI chat-completions ``body``."""
    messages = []
    for m in body.get("messages", []):
        text, images = _text(m.get("content"))
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": text}
        if images:
            msg["images"] = images
        messages.append(msg)
    options = dict(opts.options)
    for field, key in _OPTION_FIELDS.items():
        if body.get(field) is not None:
            options[key] = body[field]
    req: dict[str, Any] = {"model": body["model"], "messages": messages, "stream": stream}
    if options:
        req["options"] = options
    if opts.keep_alive is not None:
        req["keep_alive"] = opts.keep_alive
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        req["format"] = "json"
    elif fmt.get("type") == "json_schema":
        req["format"] = (fmt.get("json_schema") or {}).get("schema", "json")
    if body.get("tools"):
        req["tools"] = body["tools"]
    return req


def _usage(obj: Mapping[str, Any]) -> dict[str, int]:
    p, c = int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _finish(obj: Mapping[str, Any]) -> str:
    return "length" if obj.get("done_reason") == "length" else "stop"


class OllamaUpstream(Upstream):
    """Forwards chat completions to Ollama's native /api/chat and translates the answer."""

    name = "acme-ollama"
    description = "Ollama's native /api/chat (keep_alive, num_ctx...), answers translated to OpenAI's shape (tela-acme)"
    Options = OllamaOptions
    options: OllamaOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._session: Any = None

    def _client(self) -> Any:
        try:
            import aiohttp
        except ImportError:
            raise TelaError("upstream 'acme-ollama' needs aiohttp: pip install 'tela-acme[serve]'") from None
        if self._session is None or self._session.closed:
            o = self.options
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=o.connect_timeout, sock_read=o.timeout)
            )
        return self._session

    async def chat(self, body: Mapping[str, Any], stream: bool) -> UpstreamReply:
        import aiohttp

        url = self.options.base_url.rstrip("/") + "/api/chat"
        try:
            resp = await self._client().post(url, json=to_ollama(body, stream, self.options))
        except (aiohttp.ClientError, TimeoutError) as e:
            reason = "timeout" if isinstance(e, TimeoutError) else "connect"
            raise UpstreamError(f"ollama at {url}: {type(e).__name__}: {e}", reason) from None
        if resp.status >= 500 or resp.status in _FAILURE_STATUSES:
            text = await resp.text()
            resp.release()
            raise UpstreamError(f"ollama at {url} answered {resp.status}: {text[:200]}", "status", resp.status)
        if resp.status >= 300:
            try:
                message = (await resp.json(content_type=None)).get("error", "")
            except ValueError:
                message = await resp.text()
            resp.release()
            return UpstreamReply(
                status=resp.status,
                body={"error": {"message": str(message), "type": "invalid_request_error", "param": None, "code": None}},
            )
        rid, created, model = "chatcmpl-" + uuid.uuid4().hex, int(time.time()), body["model"]
        if not stream:
            try:
                obj = await resp.json(content_type=None)
            except (ValueError, aiohttp.ClientError, TimeoutError) as e:
                raise UpstreamError(f"ollama at {url}: bad answer ({e})", "protocol") from None
            finally:
                resp.release()
            message = {"role": "assistant", "content": (obj.get("message") or {}).get("content", "")}
            if (obj.get("message") or {}).get("tool_calls"):
                message["tool_calls"] = obj["message"]["tool_calls"]
            return UpstreamReply(
                status=200,
                body={
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": _finish(obj)}],
                    "usage": _usage(obj),
                },
            )

        async def events() -> AsyncIterator[bytes]:
            def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
                obj = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
                return b"data: " + json.dumps(obj).encode() + b"\n\n"

            yield chunk({"role": "assistant", "content": ""}, None)
            try:
                async for raw in resp.content:  # one JSON object per line
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        raise UpstreamError(f"ollama at {url}: bad stream line {raw[:100]!r}", "protocol") from None
                    if "error" in obj:
                        raise UpstreamError(f"ollama at {url}: {obj['error']}", "protocol")
                    text = (obj.get("message") or {}).get("content", "")
                    if text:
                        yield chunk({"content": text}, None)
                    if obj.get("done"):
                        yield chunk({}, _finish(obj), usage=_usage(obj))
                        yield b"data: [DONE]\n\n"
                        return
            except (aiohttp.ClientError, TimeoutError) as e:
                raise UpstreamError(f"ollama at {url}: stream broke ({type(e).__name__})", "protocol") from None
            raise UpstreamError(f"ollama at {url}: stream ended before done", "protocol")

        async def close() -> None:
            resp.release()

        return UpstreamReply(status=200, chunks=events(), close=close)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
