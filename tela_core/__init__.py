"""tela: train, evaluate and serve LLM routers. The core, read as a map:

- ``hookspecs`` and ``components``: the hooks a plugin implements and the base class of each kind;
- ``plugins/``: plugin discovery and the one registry;
- ``data/``: records, sources' detection, sampling, protocols, the dataset catalogue and downloads;
- ``models/``: base models and sentence embeddings;
- ``routing/``: the Router API, router folders, the family SDK, training targets;
- ``train/``, ``eval/``, ``serve/``: the three stages; ``cli/``: the ``tela`` command;
- ``upstreams/``, ``collect/``, ``judging/``: the paid calls (upstreams' config, collecting answers, judging them);
- ``infra/``: errors, atomic writes, locks, progress, the serve logs, deprecation; ``schema/``: the
  types every layer passes (records, dataset entries); ``testkit/``: fixtures for plugin tests.

Layers, lowest first; a module imports only from its own layer or one below it, at the top or inside
a function (``tests/test_layers.py`` holds it, and that no two modules import each other):

    infra < schema < components, hookspecs < plugins < routing < models < data < train < eval
    < upstreams < serve < collect < judging < cli < testkit

This module, the public facade, sits above them all.

The names in ``__all__`` are the public API (``docs/plugins.md``). Importing ``tela_core`` imports
no torch, transformers or deepspeed.
"""

from __future__ import annotations

from tela_core.data.records import Message, Record
from tela_core.infra.deprecation import MOVED_MODULES, TelaDeprecationWarning, install_module_aliases, package_getattr
from tela_core.infra.errors import (
    DuplicateComponentError,
    InputError,
    JudgeOutputError,
    PluginLoadError,
    TelaError,
    UnknownComponentError,
    UpstreamError,
)
from tela_core.plugins.discovery import add_plugin, get_registry, hookimpl, remove_plugin
from tela_core.routing.family import FamilyScorer, TargetOptions
from tela_core.routing.router import Decision, Router

from .components import (
    Backend,
    Component,
    Embedder,
    Formatted,
    Formatter,
    Judge,
    JudgeItem,
    JudgeRequest,
    LoadContext,
    NoOptions,
    Policy,
    Scorer,
    Scores,
    Source,
    TrainJob,
    TrainSettings,
    Upstream,
    UpstreamReply,
    Verdict,
)

__version__ = "0.2.0.dev0"

install_module_aliases()
#: ``tela_core.records`` and the other pre-0.2 module paths, as attributes (with a warning)
__getattr__ = package_getattr(__name__, MOVED_MODULES)

__all__ = [
    "__version__",
    "TelaDeprecationWarning",
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
    "TrainSettings",
    "Scorer",
    "Scores",
    "LoadContext",
    "Policy",
    "FamilyScorer",
    "TargetOptions",
    "Upstream",
    "UpstreamReply",
    "UpstreamError",
    "Judge",
    "JudgeItem",
    "JudgeRequest",
    "Verdict",
    "JudgeOutputError",
    "Embedder",
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
