"""Resolving --model: local HF dirs, GGUF files, aliases, and clear errors before any worker starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tela_core.infra.errors import TelaError
from tela_core.models.resolve import check_architecture, default_gguf, resolve_model


def test_local_dir_resolves_with_its_architecture(tiny_model: Path) -> None:
    resolved = resolve_model(str(tiny_model))
    assert resolved.path == tiny_model.resolve()
    assert resolved.model_type == "llama"


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TelaError, match="no such file or directory"):
        resolve_model(str(tmp_path / "nope"))


def test_hub_id_says_tela_is_offline() -> None:
    with pytest.raises(TelaError, match="offline"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(TelaError, match="directory or a .gguf file"):
        resolve_model(str(f))


def test_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(TelaError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(TelaError, match="unsupported architecture 't5'.*causal language model"):
        check_architecture(tmp_path)


def test_remote_code_needs_the_flag(tmp_path: Path) -> None:
    cfg = {"model_type": "my-arch", "auto_map": {"AutoModelForCausalLM": "modeling_my.MyLM"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TelaError, match="--trust-remote-code"):
        check_architecture(tmp_path)
    assert check_architecture(tmp_path, trust_remote_code=True) == "my-arch"


def test_default_model_ships_as_gguf_in_its_package() -> None:
    path = default_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
