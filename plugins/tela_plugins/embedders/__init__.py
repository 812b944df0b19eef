"""Builtin plugin: the embedders the embedding families choose from (``--set family.embedder=NAME``).

- ``model2vec`` (:mod:`.static`): the default: static embeddings distilled once from the local
  MiniLM (no download) into ``$TELA_CACHE/models/`` by ``make install`` or the first use, served
  without torch; or any model2vec model a user names;
- ``minilm`` (:mod:`.sentence`): all-MiniLM-L6-v2 on torch through sentence-transformers (every
  router trained before embedders were components used it, and still loads with it);
- ``sentence-transformers``: any sentence-transformers model a user names (``embedder_options.model``:
  a local folder, or a name found in the local Hugging Face cache first);
- ``minilm-onnx`` and ``minilm-onnx-int8`` (:mod:`.onnx`): the same MiniLM exported once to ONNX
  Runtime (fp32, and int8 dynamic quantisation), the export kept in ``$TELA_CACHE/models/``.

Each imports its runtime (torch, onnxruntime, model2vec) on first use; a missing one is one line
with the install command.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl

from .onnx import MiniLMOnnxEmbedder, MiniLMOnnxInt8Embedder
from .sentence import MiniLMEmbedder, SentenceTransformerEmbedder
from .static import Model2VecEmbedder

__all__ = [
    "MiniLMEmbedder",
    "SentenceTransformerEmbedder",
    "MiniLMOnnxEmbedder",
    "MiniLMOnnxInt8Embedder",
    "Model2VecEmbedder",
]


@hookimpl
def tela_register_embedders(register: Any) -> None:
    register(MiniLMEmbedder)
    register(SentenceTransformerEmbedder)
    register(MiniLMOnnxEmbedder)
    register(MiniLMOnnxInt8Embedder)
    register(Model2VecEmbedder)
