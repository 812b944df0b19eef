"""Upstream clients, the plugin kind `tela serve` forwards requests through.

The builtin `openai` client is tested against a STAND-IN for a remote model API
(examples/standin_upstream.py, an OpenAI-compatible server on loopback that answers with its own
name and can be told to fail or stall).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from serve_support import control, standin

from tela_core import TelaError, Upstream, UpstreamError, UpstreamReply, hookimpl
from tela_core.plugins.discovery import get_registry


def test_hook_tela_register_upstreams(register_plugin):
    class Canned(Upstream):
        """Answers every request with a fixed text (no network)."""

        name = "test-canned"

        async def chat(self, body, stream):
            return UpstreamReply(status=200, body={"model": body["model"], "choices": [{"message": {"content": "hi"}}]})

    class Plugin:
        @hookimpl
        def tela_register_upstreams(self, register):
            register(Canned)

    reg = register_plugin(Plugin(), "canned")
    assert reg.plugins["canned"].components == [("upstream", "test-canned")]
    assert reg.plugins["canned"].hooks == ["tela_register_upstreams"]
    up = reg.create("upstream", "test-canned")
    reply = asyncio.run(up.chat({"model": "m", "messages": []}, stream=False))
    assert reply.status == 200 and reply.body["model"] == "m"
    asyncio.run(up.aclose())


def test_openai_upstream_is_registered_with_its_options():
    entry = get_registry().entry("upstream", "openai")
    assert entry.plugin == "openai-upstream"
    props = entry.options_schema()["properties"]
    assert {"base_url", "api_key_env", "timeout", "connect_timeout", "max_connections", "headers"} <= set(props)


def test_openai_upstream_needs_its_key_variable(monkeypatch):
    monkeypatch.delenv("TELA_TEST_UPSTREAM_KEY", raising=False)
    with pytest.raises(TelaError, match="TELA_TEST_UPSTREAM_KEY"):
        get_registry().create(
            "upstream", "openai", {"base_url": "http://127.0.0.1:1/v1", "api_key_env": "TELA_TEST_UPSTREAM_KEY"}
        )


def test_openai_upstream_against_a_standin(monkeypatch):
    pytest.importorskip("aiohttp")
    monkeypatch.setenv("TELA_TEST_UPSTREAM_KEY", "sk-upstream")
    body = {"model": "small", "messages": [{"role": "user", "content": "hello there"}]}
    with standin("small") as url:
        up = get_registry().create(
            "upstream", "openai", {"base_url": url, "api_key_env": "TELA_TEST_UPSTREAM_KEY", "timeout": 3.0}
        )

        async def main() -> None:
            try:
                reply = await up.chat(body, stream=False)
                assert reply.status == 200 and reply.body["choices"][0]["message"]["content"] == "I am small."

                r = await up.chat({**body, "stream": True}, stream=True)
                assert r.status == 200 and r.chunks is not None
                data = b"".join([c async for c in r.chunks])
                await r.aclose()
                events = [line[6:] for line in data.decode().split("\n") if line.startswith("data: ")]
                assert events[-1] == "[DONE]"
                assert (
                    "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
                    == "I am small."
                )

                control(url, mode="fail")
                r = await up.chat(body, stream=True)
                assert r.status == 500 and "told to fail" in r.body["error"]["message"]

                # past the 3 s read timeout (a 1 s one was a clock a loaded machine can miss)
                control(url, mode="stall", stall_s=30)
                with pytest.raises(UpstreamError) as ei:
                    await up.chat(body, stream=False)
                assert ei.value.reason == "timeout"
            finally:
                await up.aclose()

        asyncio.run(main())

    async def unreachable() -> None:
        try:
            await up.chat(body, stream=False)
        finally:
            await up.aclose()

    with pytest.raises(UpstreamError) as ei:
        asyncio.run(unreachable())
    assert ei.value.reason == "connect"
