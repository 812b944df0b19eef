"""Fixtures for tela-acme's tests: the bundled MMLU sample as acme-csv files. tela's test kit (its
pytest plugin, there once tela is installed) gives ``tiny_model``, ``tela_offline`` and the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from acme_cli import tela, write_acme_csv

from tela_core.data import sample_path


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``train``: the 400-prompt MMLU sample (42 subjects); ``heldout``: 300 prompts of 15 other subjects."""
    d = tmp_path_factory.mktemp("acme-data")
    return {
        "train": write_acme_csv(sample_path("mmlu_sample.jsonl"), d / "train.csv"),
        "heldout": write_acme_csv(sample_path("mmlu_heldout_sample.jsonl"), d / "heldout.csv"),
    }


@pytest.fixture(autouse=True)
def _offline(tela_offline: None) -> None:
    """Every test runs offline (the `tela` subprocesses inherit the environment)."""


@pytest.fixture(scope="session")
def tfidf_router(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An acme-tfidf router `tela run` trained on the sample (tests that change it copy it first)."""
    out = tmp_path_factory.mktemp("tfidf") / "router"
    tela("run", "--data", data["train"], "--family", "acme-tfidf", "--set", "family.min_df=2", "-o", out)
    return out
