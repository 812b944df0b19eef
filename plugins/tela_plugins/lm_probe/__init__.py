"""Builtin plugin: ``lm-probe``, a router family over a small causal LM's hidden states.

See :mod:`tela_plugins.lm_probe.family` for the family and :mod:`tela_plugins.lm_probe.features` for the
cached feature extraction. torch and transformers are imported only when features are computed.
"""

from __future__ import annotations

from typing import Any

from tela_core import hookimpl
from tela_plugins.lm_probe.family import LmProbeScorer

__all__ = ["LmProbeScorer"]


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(LmProbeScorer)
