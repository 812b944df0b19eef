"""Builtin plugin: real routing outcome data as data sources.

- ``routellm-csv``: RouteLLM's per-subject CSVs (prompt + one True/False column per model).
- ``llmrouter-json``: LLMRouter's ``[{question, scores}]`` JSON with ``default_llm.json`` prices.
- ``routerarena``: RouterArena's folder of per-model JSONL results with real $ costs.

Each yields records carrying per-model outcomes (and costs where known) and a seed-format
training example whose 1..5 label comes from the weak/strong outcomes (:mod:`.common`).
"""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.outcomes.common import OutcomeOptions, OutcomeSource, label_for
from tela_plugins.outcomes.llmrouter import LLMRouterJsonSource
from tela_plugins.outcomes.routellm import RouteLLMCsvSource
from tela_plugins.outcomes.routerarena import RouterArenaSource

__all__ = [
    "OutcomeOptions",
    "OutcomeSource",
    "label_for",
    "RouteLLMCsvSource",
    "LLMRouterJsonSource",
    "RouterArenaSource",
]


@hookimpl
def tela_register_sources(register):
    register(RouteLLMCsvSource)
    register(LLMRouterJsonSource)
    register(RouterArenaSource)
