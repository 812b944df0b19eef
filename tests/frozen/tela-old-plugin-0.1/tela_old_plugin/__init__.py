"""tela-old-plugin: a source, a formatter, a router family, a policy and a command for tela 0.1.

Registered through entry point group ``tela`` (``old-plugin = "tela_old_plugin"``), one hook per
kind, as docs/plugins.md of tela 0.1 shows.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl

from .commands import add_commands
from .family import KeywordScorer
from .formatter import QuestionOnlyFormatter
from .policy import StrongIfAbove
from .source import LinesSource

__all__ = ["KeywordScorer", "LinesSource", "QuestionOnlyFormatter", "StrongIfAbove"]


@hookimpl
def tela_register_sources(register: Any) -> None:
    register(LinesSource)


@hookimpl
def tela_register_formatters(register: Any) -> None:
    register(QuestionOnlyFormatter)


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(KeywordScorer)


@hookimpl
def tela_register_policies(register: Any) -> None:
    register(StrongIfAbove)


@hookimpl
def tela_register_commands(cli: Any) -> None:
    add_commands(cli)
