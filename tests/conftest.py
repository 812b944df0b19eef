"""Shared fixtures: an offline environment for every test, and one tiny model per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]

# The team's development machines keep the public datasets beside the checkout; elsewhere the
# tests that need them find what `tela data get` fetched, or skip saying so.
if (REPO.parent / "shared" / "data").is_dir():
    os.environ.setdefault("TELA_TEST_DATA", str(REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _tela_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing reaches a hub; DeepSpeed's JIT-built ops and converted models are cached and reused."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR") or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("TELA_CACHE", os.environ.get("TELA_CACHE") or str(REPO / ".cache" / "tela"))
    yield
    from tela_core import embeddings

    embeddings.use_shard_cache(True)  # an in-process `tela serve` turns it off for its process


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with [[1]]..[[5]] and a pad token, saved as an HF dir (built once, < 1 s)."""
    from tela_core.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
