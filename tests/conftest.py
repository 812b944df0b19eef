"""tela's own tests use the test kit a plugin author gets (tela_core/testkit/pytest_plugin.py, loaded by
pytest through tela's ``pytest11`` entry point): every test runs offline, with this checkout's
caches, and finds the public datasets beside the checkout when they are there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tests/frozen/ holds copies of third-party plugin packages written for older tela releases; their
# tests run against the package installed (tests/test_frozen_plugin.py), never collected from here.
collect_ignore = ["frozen"]

# The team's development machines keep the public datasets beside the checkout; elsewhere the
# tests that need them find what `tela data get` fetched, or skip saying so.
if (REPO.parent / "shared" / "data").is_dir():
    os.environ.setdefault("TELA_TEST_DATA", str(REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _tela_env(tela_offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline (``tela_offline``); DeepSpeed's JIT-built ops and converted models are cached where
    tela keeps them in any shell (``$TELA_CACHE``, else ``~/.cache/tela``, which ``make install``
    fills) and reused across runs (a test that needs an empty cache asks for ``isolated_cache``).
    Set here so that the ``tela`` subprocesses of every test use the same cache."""
    cache = os.environ.get("TELA_CACHE") or str(Path.home() / ".cache" / "tela")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path(cache) / "torch_extensions"))
    monkeypatch.setenv("TELA_CACHE", cache)
