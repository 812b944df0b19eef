"""Builtin plugin: data from where it lives, through Hugging Face ``datasets``.

- ``hf``: anything ``datasets.load_dataset`` opens (hub id with config/split/revision, a folder, a
  ``save_to_disk`` folder, parquet/JSON/CSV files), read through a column mapping.
- ``routellm-judge``: RouteLLM's GPT-4-judge data (``routellm/gpt4_dataset``); ``mixtral_score``
  is the seed's 1..5 label.
- ``arena``: Chatbot Arena battles turned into strong-vs-weak outcomes by Elo tier or model pair.
- ``routerbench``: RouterBench's per-model outcomes and costs (N models); pickles only on request.

``datasets``, ``pandas`` and ``pyarrow`` are imported inside the readers, never at import time.
"""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.hf.arena import ArenaSource
from tela_plugins.hf.hf import HFSource
from tela_plugins.hf.routellm_gpt4 import RouteLLMJudgeSource
from tela_plugins.hf.routerbench import RouterBenchSource

__all__ = ["HFSource", "RouteLLMJudgeSource", "ArenaSource", "RouterBenchSource"]


@hookimpl
def tela_register_sources(register):
    register(HFSource)
    register(RouteLLMJudgeSource)
    register(ArenaSource)
    register(RouterBenchSource)
