"""tela: train, evaluate and serve LLM routers. The core: hooks, registry, records, CLI.

Importing ``tela_core`` imports no torch, transformers or deepspeed.
"""

from __future__ import annotations

from .components import (
    Backend,
    Component,
    Formatted,
    Formatter,
    NoOptions,
    Policy,
    Scorer,
    Scores,
    Source,
    TrainJob,
    Upstream,
    UpstreamReply,
)
from .errors import DuplicateComponentError, InputError, PluginLoadError, TelaError, UnknownComponentError, UpstreamError
from .family import FamilyScorer, TargetOptions
from .plugins import add_plugin, get_registry, hookimpl, remove_plugin
from .records import Message, Record
from .router import Decision, Router

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "get_registry",
    "add_plugin",
    "remove_plugin",
    "Component",
    "NoOptions",
    "Source",
    "Formatter",
    "Formatted",
    "Backend",
    "TrainJob",
    "Scorer",
    "Scores",
    "Policy",
    "FamilyScorer",
    "TargetOptions",
    "Upstream",
    "UpstreamReply",
    "UpstreamError",
    "Record",
    "Message",
    "Router",
    "Decision",
    "TelaError",
    "InputError",
    "UnknownComponentError",
    "DuplicateComponentError",
    "PluginLoadError",
]
