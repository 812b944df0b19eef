"""``openai``: forward chat-completions requests to an OpenAI-compatible endpoint with aiohttp.

aiohttp rather than httpx: with 32 concurrent requests to the same stand-in upstream, httpx spent
15x the CPU per request of aiohttp, more than the whole rest of ``tela serve``
(``bench/upstream_clients.py``, quoted in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Upstream, UpstreamReply
from tela_core.infra.errors import TelaError, UpstreamError
from tela_core.infra.io import NonFiniteError, json_line

__all__ = ["OpenAIUpstream", "OpenAIUpstreamOptions"]


class OpenAIUpstreamOptions(BaseModel):
    """Where the endpoint is and how to reach it (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_url: str = Field(..., min_length=1)
    """The API root, e.g. ``http://localhost:8000/v1``; requests go to ``{base_url}/chat/completions``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the upstream's API key (sent as a bearer token). None: no key."""
    timeout: float = Field(60.0, gt=0)
    """Seconds to wait for the upstream's answer to start, and between two streamed chunks."""
    connect_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for a connection."""
    max_connections: int = Field(512, ge=1)
    """Connections kept open to this upstream (per server process)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request (e.g. an organisation id)."""
    trust_env: bool = True
    """Use the proxy HTTP(S)_PROXY / NO_PROXY name for this upstream (read once, at start)."""


class OpenAIUpstream(Upstream):
    """POST the request to ``{base_url}/chat/completions``; stream the server-sent events back."""

    name = "openai"
    description = "any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp, LiteLLM, OpenAI)"
    Options = OpenAIUpstreamOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o: OpenAIUpstreamOptions = self.options  # type: ignore[assignment]
        headers = {"content-type": "application/json", **o.headers}
        if o.api_key_env:
            key = os.environ.get(o.api_key_env)
            if not key:
                raise TelaError(f"environment variable {o.api_key_env} (the upstream's api_key_env) is not set")
            headers["authorization"] = f"Bearer {key}"
        self._url = o.base_url.rstrip("/") + "/chat/completions"
        self._headers = headers
        self._session: Any = None
        self._proxy = _env_proxy(self._url) if o.trust_env else None  # once, not per request

    def _http(self) -> Any:
        """One aiohttp session (and connection pool) per upstream, made in the running loop."""
        if self._session is None or self._session.closed:
            import aiohttp

            o: OpenAIUpstreamOptions = self.options  # type: ignore[assignment]
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=o.max_connections, limit_per_host=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=o.connect_timeout, sock_read=o.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must never reach another's request
                trust_env=False,
            )
        return self._session

    async def chat(self, body: Mapping[str, Any], stream: bool) -> UpstreamReply:
        import asyncio

        import aiohttp

        session = self._http()
        try:  # strict JSON: a NaN (say a temperature) is never sent as the non-JSON `NaN`
            payload = json_line(body, what="request body", separators=(",", ":")).encode("utf-8")
        except NonFiniteError as e:
            raise UpstreamError(f"{self._url}: {e}", reason="error") from None
        try:
            response = await session.post(self._url, data=payload, headers=self._headers, proxy=self._proxy)
        except asyncio.TimeoutError:
            raise UpstreamError(f"{self._url}: timed out", reason="timeout") from None
        except aiohttp.ClientError as e:
            raise UpstreamError(f"{self._url}: {type(e).__name__}: {e}", reason="connect") from None
        if not stream or response.status >= 300:
            try:
                content = await response.read()
            except asyncio.TimeoutError:
                response.close()
                raise UpstreamError(f"{self._url}: timed out reading the answer", reason="timeout") from None
            except aiohttp.ClientError as e:
                response.close()
                raise UpstreamError(f"{self._url}: {type(e).__name__}: {e}", reason="connect") from None
            response.release()
            headers = {k.lower(): v for k, v in response.headers.items()} if response.status >= 300 else None
            return UpstreamReply(status=response.status, body=_json_or_text(content), headers=headers)

        async def close() -> None:
            response.close()  # mid-stream: drop the connection rather than reuse it

        return UpstreamReply(status=response.status, chunks=_events(response, self._url), close=close)

    async def check(self, model: str) -> None:
        """``GET {base_url}/models``: the key is accepted and ``model`` is listed (free, unlike a chat
        call). An endpoint without that route (404/405) gets the one-token chat request instead."""
        import asyncio

        import aiohttp

        url = self._url.rsplit("/chat/completions", 1)[0] + "/models"
        headers = {k: v for k, v in self._headers.items() if k != "content-type"}
        try:
            async with self._http().get(url, headers=headers, proxy=self._proxy) as response:
                status, content = response.status, await response.read()
        except asyncio.TimeoutError:
            raise UpstreamError(f"{url}: timed out", reason="timeout") from None
        except aiohttp.ClientError as e:
            raise UpstreamError(f"{url}: {type(e).__name__}: {e}", reason="connect") from None
        body = _json_or_text(content)
        if status in (404, 405):
            return await super().check(model)
        if status >= 300:
            err = body.get("error") if isinstance(body, dict) else None
            msg = err.get("message") if isinstance(err, dict) else err
            raise UpstreamError(
                f"{url}: HTTP {status}: {' '.join(str(msg or body).split())[:300]}", reason="status", status=status
            )
        data = body.get("data") if isinstance(body, dict) else None
        ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
        if ids and model not in ids:
            shown = ", ".join(str(i) for i in ids[:8]) + (", ..." if len(ids) > 8 else "")
            raise UpstreamError(
                f"{url}: model {model!r} is not among this upstream's models ({shown})", reason="model", status=404
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _events(response: Any, url: str) -> AsyncIterator[bytes]:
    import asyncio

    import aiohttp

    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except asyncio.TimeoutError:
        raise UpstreamError(f"{url}: stream stalled (no chunk within the timeout)", reason="timeout") from None
    except aiohttp.ClientError as e:
        raise UpstreamError(f"{url}: stream broke: {type(e).__name__}: {e}", reason="connect") from None
    response.release()


def _env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY name for ``url``, or None."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _json_or_text(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {"error": {"message": content[:2000].decode("utf-8", "replace"), "type": "upstream_error"}}
