"""Builtin plugin: router families over cached sentence embeddings.

- ``embedding-knn``: mean target of the k nearest training prompts;
- ``embedding-linear``: logistic regression probe;
- ``matrix-factorization``: RouteLLM's MF idea (model vectors · projected prompt embedding);
- ``ensemble``: a calibrated stack of other families, fitted on held-out groups.

Embeddings come from the embedder each family names (``--set family.embedder=NAME``, recorded in
the router; :mod:`tela_core.models.embedders`), computed once and cached by content hash. The
family modules import numpy/torch/sklearn inside their methods only.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl
from tela_plugins.embedding_families.ensemble import EnsembleScorer
from tela_plugins.embedding_families.knn import KnnScorer
from tela_plugins.embedding_families.linear import LinearScorer
from tela_plugins.embedding_families.mf import MatrixFactorizationScorer

__all__ = ["KnnScorer", "LinearScorer", "MatrixFactorizationScorer", "EnsembleScorer"]


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(KnnScorer)
    register(LinearScorer)
    register(MatrixFactorizationScorer)
    register(EnsembleScorer)
