"""pytest fixtures for tela and its plugins, loaded by pytest whenever tela is installed.

tela declares this module in the ``pytest11`` entry-point group, so a plugin package's tests get
the fixtures below with no import and no ``conftest.py`` line:

``tela_offline``
    Sets the offline environment (:data:`tela_core.testkit.helpers.OFFLINE_VARS`: no hub is reached) for
    the test. Opt-in, so installing tela changes no other project's tests; to run every test of a
    package offline (tela's own tests do), put in its ``conftest.py``::

        @pytest.fixture(autouse=True)
        def _offline(tela_offline: None) -> None: ...
``isolated_cache``
    A fresh, empty ``TELA_CACHE`` under the test's ``tmp_path``; returns its path.
``tiny_model``
    A real two-layer Llama and its tokenizer saved as a Hugging Face folder (built once per
    session, under a second): :func:`tela_core.testkit.helpers.build_tiny_model`.
``tiny_router``
    A ``score-token`` router artifact around that kind of model, built once per session
    (:func:`tela_core.testkit.helpers.build_tiny_router`). Shared: copy it before changing it.
``tela_cli``
    ``tela`` run in this process (:class:`tela_core.testkit.helpers.TelaCli`; session-scoped, so
    module-scoped fixtures can use it too): ``tela_cli(*args)`` returns
    a result with ``exit_code`` and ``output``; ``.json(*args)`` and ``.error(*args)`` check the
    exit code and return the parsed JSON or the one ``Error:`` line.
``register_plugin``
    ``register_plugin(obj, name)`` registers a module or object with ``@hookimpl`` methods as an
    in-process plugin and returns the rebuilt registry; every plugin so registered is removed when
    the test ends, pass or fail.

Only ``pytest`` and the standard library are imported here; tela itself loads inside the fixtures,
so pytest starts as fast with tela installed as without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tela_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing reaches a model or dataset hub during the test; tokenizers start no thread pool."""
    from tela_core.testkit.helpers import OFFLINE_VARS

    for var, value in OFFLINE_VARS.items():
        monkeypatch.setenv(var, value)
    yield
    from tela_core.models import vector_cache

    vector_cache.use_shard_cache(True)  # an in-process `tela serve` turns it off for its process


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``TELA_CACHE`` (``tmp_path / "cache"``, not created yet) for this test only.
    Derived models (the default embedder's static distillation, ONNX exports) stay in the outer
    cache's ``models/`` folder (``TELA_MODELS``): built once for the whole session, not per test."""
    from tela_core.models.vector_cache import models_dir

    monkeypatch.setenv("TELA_MODELS", str(models_dir()))
    cache = tmp_path / "cache"
    monkeypatch.setenv("TELA_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with ``[[1]]``..``[[5]]`` and a pad token, saved as an HF folder (built once, < 1 s)."""
    from tela_core.testkit.helpers import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``score-token`` router artifact (untrained tiny model, threshold policy over weak/strong),
    built once per session: copy it (``shutil.copytree``) before a test changes it."""
    from tela_core.testkit.helpers import build_tiny_router

    return build_tiny_router(tmp_path_factory.mktemp("tiny-router"))


@pytest.fixture(scope="session")
def tela_cli() -> Any:
    """``tela`` in this process: ``tela_cli(*args, input=None, env=None)`` -> click ``Result``;
    ``tela_cli.json(*args)`` and ``tela_cli.error(*args)`` (see :class:`tela_core.testkit.helpers.TelaCli`)."""
    from tela_core.testkit.helpers import TelaCli

    return TelaCli()


@pytest.fixture
def register_plugin() -> Iterator[Callable[[Any, str], Any]]:
    """``register_plugin(obj, name)``: ``obj`` is an in-process plugin until the test ends; returns
    the rebuilt registry (``registry.create(kind, name)``; the CLI sees the plugin too)."""
    from tela_core.testkit.helpers import registered_plugin

    with ExitStack() as stack:

        def register(plugin: Any, name: str) -> Any:
            return stack.enter_context(registered_plugin(plugin, name))

        yield register
