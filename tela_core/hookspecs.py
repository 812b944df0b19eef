"""The hooks a tela plugin can implement.

Every hook receives a ``register`` callback (the simonw/llm shape): call it once per component
class the plugin provides. All hooks are "call every implementation"; none stops at the first
result. A plugin implements only the hooks it needs. Documented one by one in ``docs/plugins.md``.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("tela")

#: What a ``register`` callback accepts: a component class (see :mod:`tela_core.components`).
Register = Callable[[type], None]

# ------------------------------------------------------------------------------------------------
# Data: where records come from and how they become text
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_sources(register: Register) -> None:
    """Register data sources (:class:`tela_core.components.Source` subclasses).

    A source reads a file (or folder) and yields validated :class:`tela_core.data.records.Record`
    objects; outcome sources also fill ``outcomes`` and ``costs``.

    :param register: call ``register(SourceClass)`` once per source.
    :since: 0.1
    """


@hookspec
def tela_register_formatters(register: Register) -> None:
    """Register formatters (:class:`tela_core.components.Formatter` subclasses).

    A formatter turns chat messages into (prompt text, completion text); the same method
    builds the inference prompt, so training and serving cannot drift apart.

    :param register: call ``register(FormatterClass)`` once per formatter.
    :since: 0.1
    """


@hookspec
def tela_register_datasets(register: Callable[[Any], None]) -> None:
    """Register public datasets for ``tela data list`` / ``tela data get``.

    Each is a :class:`tela_core.data.catalogue.DatasetEntry`: origin, license, pinned revision, and the
    files to fetch with their SHA-256 (``None`` where no checksum could be verified).

    :param register: call ``register(DatasetEntry(...))`` once per dataset.
    :since: 0.1
    """


# ------------------------------------------------------------------------------------------------
# Training and routing
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_backends(register: Register) -> None:
    """Register trainer backends (:class:`tela_core.components.Backend` subclasses).

    A backend fine-tunes a base model on formatted examples and leaves a router artifact.

    :param register: call ``register(BackendClass)`` once per backend.
    :since: 0.1
    """


@hookspec
def tela_register_scorers(register: Register) -> None:
    """Register router model families (:class:`tela_core.components.Scorer` subclasses).

    A scorer loads a router artifact and maps prompts to a 1..5 score distribution and to
    ``w`` = P(strong model needed).

    :param register: call ``register(ScorerClass)`` once per family.
    :since: 0.1
    """


@hookspec
def tela_register_policies(register: Register) -> None:
    """Register router policies (:class:`tela_core.components.Policy` subclasses).

    A policy maps scores to a model choice (threshold, calibrated, tiers, ...).

    :param register: call ``register(PolicyClass)`` once per policy.
    :since: 0.1
    """


# ------------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_upstreams(register: Register) -> None:
    """Register upstream clients (:class:`tela_core.components.Upstream` subclasses).

    An upstream client forwards ``tela serve``'s chat requests to a model endpoint over some
    protocol (the builtin ``openai`` speaks OpenAI's chat-completions API).

    :param register: call ``register(UpstreamClass)`` once per upstream client.
    :since: 0.1
    """


# ------------------------------------------------------------------------------------------------
# Judging
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_judges(register: Register) -> None:
    """Register judges (:class:`tela_core.components.Judge` subclasses) for ``tela judge``.

    A judge decides how good each model's answer to a prompt is: it builds the requests to a judge
    model and reads the replies (``llm-judge``, ``pairwise``), or grades by rule against a reference
    answer (``reference``), and returns a :class:`tela_core.components.Verdict`: the 1..5 label of
    the weak model's answer and per-model outcomes. Judges are pure; ``tela judge`` makes the calls.

    :param register: call ``register(JudgeClass)`` once per judge.
    :since: 0.2
    """


# ------------------------------------------------------------------------------------------------
# Embedding
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_embedders(register: Register) -> None:
    """Register embedders (:class:`tela_core.components.Embedder` subclasses).

    An embedder turns texts into fixed-size vectors for the embedding families, which choose one
    by option (``--set family.embedder=NAME``) and record it in the router's manifest (builtins:
    ``minilm``, ``minilm-onnx``, ``minilm-onnx-int8``, ``model2vec``, ``sentence-transformers``).

    :param register: call ``register(EmbedderClass)`` once per embedder.
    :since: 0.2
    """


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


@hookspec
def tela_register_commands(cli: Any) -> None:
    """Add commands to the ``tela`` command line.

    :param cli: the root :class:`click.Group`; use ``@cli.command()`` or ``cli.add_command``.
    :since: 0.1
    """
