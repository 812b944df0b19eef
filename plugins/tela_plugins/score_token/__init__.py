"""Builtin plugin: the ``score-token`` router family (one forward pass; see :mod:`.scorer`).

torch and transformers are imported inside the scorer's methods, never here.
"""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.score_token.scorer import ScoreTokenOptions, ScoreTokenScorer

__all__ = ["ScoreTokenScorer", "ScoreTokenOptions"]


@hookimpl
def tela_register_scorers(register):
    register(ScoreTokenScorer)
