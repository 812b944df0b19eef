"""``openai``: forward chat-completions requests to an OpenAI-compatible endpoint with httpx."""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Upstream, UpstreamReply
from tela_core.errors import TelaError, UpstreamError

__all__ = ["OpenAIUpstream", "OpenAIUpstreamOptions"]


class OpenAIUpstreamOptions(BaseModel):
    """Where the endpoint is and how to reach it (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_url: str = Field(..., min_length=1)
    """The API root, e.g. ``http://localhost:8000/v1``; requests go to ``{base_url}/chat/completions``."""
    api_key_env: Optional[str] = None
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
    """Honour HTTP(S)_PROXY / NO_PROXY and SSL_CERT_FILE from the environment."""


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
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            o: OpenAIUpstreamOptions = self.options  # type: ignore[assignment]
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(o.timeout, connect=o.connect_timeout),
                limits=httpx.Limits(max_connections=o.max_connections, max_keepalive_connections=o.max_connections),
                trust_env=o.trust_env,
            )
        return self._client

    async def chat(self, body: Mapping[str, Any], stream: bool) -> UpstreamReply:
        import httpx

        client = self._http()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        request = client.build_request("POST", self._url, content=payload, headers=self._headers)
        try:
            response = await client.send(request, stream=stream)
        except httpx.TimeoutException as e:
            raise UpstreamError(f"{self._url}: timed out ({type(e).__name__})", reason="timeout") from None
        except httpx.HTTPError as e:
            raise UpstreamError(f"{self._url}: {type(e).__name__}: {e}", reason="connect") from None
        if not stream:
            return UpstreamReply(status=response.status_code, body=_json_or_text(response.content))
        if response.status_code >= 300:
            try:
                content = await response.aread()
            except httpx.HTTPError as e:
                raise UpstreamError(f"{self._url}: {type(e).__name__}: {e}", reason="connect") from None
            finally:
                await response.aclose()
            return UpstreamReply(status=response.status_code, body=_json_or_text(content))
        return UpstreamReply(status=response.status_code, chunks=_raw(response, self._url), close=response.aclose)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _raw(response: Any, url: str) -> AsyncIterator[bytes]:
    import httpx

    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException:
        raise UpstreamError(f"{url}: stream stalled (no chunk within the timeout)", reason="timeout") from None
    except httpx.HTTPError as e:
        raise UpstreamError(f"{url}: stream broke: {type(e).__name__}: {e}", reason="connect") from None
    finally:
        await response.aclose()


def _json_or_text(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {"error": {"message": content[:2000].decode("utf-8", "replace"), "type": "upstream_error"}}
