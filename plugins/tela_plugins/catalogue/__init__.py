"""Builtin plugin: the catalogue of public router datasets ``tela data list`` / ``tela data get`` know.

RouteLLM's MMLU outcome CSVs and GPT-4-judge data, Chatbot Arena battles, LLMRouter's RouterDC
outcomes, RouterArena's cached results and RouterBench, each with its origin, license, pinned
revision and checksums (see :mod:`.entries`). The download logic is the core's
(:mod:`tela_core.data.download`); this plugin only says what exists and where.
"""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.catalogue.entries import ENTRIES

__all__ = ["ENTRIES"]


@hookimpl
def tela_register_datasets(register):
    for entry in ENTRIES:
        register(entry)
