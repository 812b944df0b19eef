"""tela's own tests use the test kit a plugin author gets (tela_core/testkit/pytest_plugin.py, loaded by
pytest through tela's ``pytest11`` entry point): every test runs offline, with this checkout's
caches, and finds the public datasets beside the checkout when they are there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from guide_support import GuideRun, run_own_models_guide
from judge_support import answers, upstream  # noqa: F401 (the judge tests' fixtures)
from training_support import SCHEDULER_VARS, TrainedRun, multi_rank_args, one_rank_args, train

REPO = Path(__file__).resolve().parents[1]

# tests/frozen/ holds copies of third-party plugin packages written for older tela releases; their
# tests run against the package installed (tests/test_frozen_plugin.py), never collected from here.
collect_ignore = ["frozen"]

# The team's development machines keep the public datasets beside the checkout; elsewhere the
# tests that need them find what `tela data get` fetched, or skip saying so.
if (REPO.parent / "shared" / "data").is_dir():
    os.environ.setdefault("TELA_TEST_DATA", str(REPO.parent / "shared" / "data"))


def _cache_vars() -> dict[str, str]:
    """tela's cache, and DeepSpeed's compiled ops where tela keeps them for this Python environment
    (:func:`tela_core.train.extensions.extensions_dir`: a folder per venv, so a checkout's test runs
    and a CI clone's never rebuild the op over each other)."""
    from tela_core.train.extensions import extensions_dir

    cache = os.environ.get("TELA_CACHE") or str(Path.home() / ".cache" / "tela")
    extensions = os.environ.get("TORCH_EXTENSIONS_DIR") or str(extensions_dir({"TELA_CACHE": cache}))
    return {"TELA_CACHE": cache, "TORCH_EXTENSIONS_DIR": extensions}


@pytest.fixture(autouse=True)
def _tela_env(tela_offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline (``tela_offline``); DeepSpeed's JIT-built ops and converted models are cached where
    tela keeps them in any shell (``$TELA_CACHE``, else ``~/.cache/tela``, which ``make install``
    fills; the ops in a folder per venv there, ``_cache_vars``) and reused across runs (a test
    that needs an empty cache asks for ``isolated_cache``). Set here so that the ``tela``
    subprocesses of every test use the same cache."""
    for var, value in _cache_vars().items():
        monkeypatch.setenv(var, value)


def _session_env() -> dict[str, str | None]:
    """What ``_tela_env`` gives a test, for session fixtures (set up before any test's own
    fixtures), as overrides: offline, tela's cache, no scheduler's variables."""
    from tela_core.testkit.helpers import OFFLINE_VARS

    return {**dict.fromkeys(SCHEDULER_VARS), **OFFLINE_VARS, **_cache_vars()}


@pytest.fixture(scope="session")
def trained_router(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A score-token router ``tela run`` trained on one CPU rank (DeepSpeed ZeRO-3, the tiny Llama,
    2 epochs on 48 records, 5 of them held out): trained once per session for the tests that read
    it. Copy ``.path`` before changing anything in it."""
    out = tmp_path_factory.mktemp("one-rank") / "router"
    return train(one_rank_args(tiny_model, out), _session_env())


@pytest.fixture(scope="session")
def two_rank_router(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One node, two CPU ranks (gloo), every one of 24 records trained on, seed 7: the run the
    two-node one must reproduce (tests/test_multinode.py), and the data-parallel one of
    tests/test_train_deepspeed.py. Trained once per session; copy ``.path`` before changing it."""
    out = tmp_path_factory.mktemp("two-ranks") / "router"
    return train(multi_rank_args(tiny_model, out, 2), _session_env())


@pytest.fixture(scope="session")
def own_models_guide(tmp_path_factory: pytest.TempPathFactory) -> GuideRun:
    """docs/own-models.md rehearsed once per session (tests/guide_support.py), with every command as
    written: tests/test_guide_offline.py and tests/test_flywheel.py check what it left."""
    return run_own_models_guide(tmp_path_factory.mktemp("own-models-guide"), _session_env())
