"""Builtin plugin: the ``openai`` upstream client, for any OpenAI-compatible chat endpoint.

vLLM, Ollama, llama.cpp's server, LiteLLM and OpenAI itself all answer
``POST {base_url}/chat/completions``; this client forwards ``tela serve``'s requests there with
aiohttp, over one pooled connection set per upstream. aiohttp is imported when the client is made,
not when tela starts.
"""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.openai_upstream.client import OpenAIUpstream

__all__ = ["OpenAIUpstream"]


@hookimpl
def tela_register_upstreams(register):
    register(OpenAIUpstream)
