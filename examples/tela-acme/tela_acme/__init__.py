"""tela-acme: a third-party tela plugin with one component of every kind, and a command.

- ``acme-csv`` source: one CSV with ``correct:<model>`` (and ``cost:<model>``) columns.
- ``acme-compact`` formatter: the question only, middle-cut to a character budget.
- ``acme-ngram`` backend and family: a 1..5 score model (softmax regression on n-grams of the
  formatted prompt) that ``tela run --backend acme-ngram`` trains in seconds on a CPU.
- ``acme-tfidf`` family: logistic regression on TF-IDF n-grams; trains itself (``tela zoo``).
- ``acme-budget`` policy: at most a share of prompts to the strong model, never below a floor on w.
- ``acme-ollama`` upstream: ``tela serve`` talking to Ollama's native ``/api/chat``.
- ``tela acme summary``: what a router folder is, without loading it.

Only the standard library, pydantic and tela_core are imported here; numpy, scipy and aiohttp
load inside the methods that use them, so ``tela --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl

from . import commands
from .backend import NgramBackend, NgramScorer
from .family import TfidfScorer
from .formatter import CompactFormatter
from .policy import BudgetPolicy
from .source import AcmeCsvSource
from .upstream import OllamaUpstream

__all__ = [
    "AcmeCsvSource",
    "CompactFormatter",
    "NgramBackend",
    "NgramScorer",
    "TfidfScorer",
    "BudgetPolicy",
    "OllamaUpstream",
]
__version__ = "0.1.0"


@hookimpl
def tela_register_sources(register: Any) -> None:
    register(AcmeCsvSource)


@hookimpl
def tela_register_formatters(register: Any) -> None:
    register(CompactFormatter)


@hookimpl
def tela_register_backends(register: Any) -> None:
    register(NgramBackend)


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(TfidfScorer)
    register(NgramScorer)


@hookimpl
def tela_register_policies(register: Any) -> None:
    register(BudgetPolicy)


@hookimpl
def tela_register_upstreams(register: Any) -> None:
    register(OllamaUpstream)


@hookimpl
def tela_register_commands(cli: Any) -> None:
    commands.register(cli)
