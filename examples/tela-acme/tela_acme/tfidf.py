"""TF-IDF features over word n-grams, and their save format (JSON + ``.npz``, never a pickle).

numpy and scipy are imported inside the functions, so ``tela --help`` does not pay for them.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core import TelaError
from tela_core.infra.io import atomic_write_json

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

# Words, numbers, and the symbols that mark maths and code (they predict difficulty).
_TOKEN = re.compile(r"[a-z]+|\d+|[=+\-*/^<>∫∑√π≤≥≠{}()\[\]$\\]")


def ngrams(text: str, n_max: int) -> list[str]:
    """Lower-cased tokens and the n-grams (n <= n_max) of ``text``, joined by a space."""
    toks = _TOKEN.findall(text.lower())
    out = list(toks)
    for n in range(2, n_max + 1):
        out.extend(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
    return out


class Tfidf:
    """A fitted vocabulary with idf weights; ``transform`` gives L2-normalised sublinear TF-IDF rows."""

    def __init__(self, vocab: dict[str, int], idf: Sequence[float], ngram_max: int) -> None:
        self.vocab, self.ngram_max = vocab, ngram_max
        import numpy as np

        self.idf = np.asarray(idf, dtype=np.float64)

    @classmethod
    def fit(cls, texts: Sequence[str], ngram_max: int, min_df: int, max_features: int) -> Tfidf:
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(ngrams(t, ngram_max)))
        kept = [g for g, c in df.items() if c >= min_df]
        kept.sort(key=lambda g: (-df[g], g))  # most frequent first; ties by name, so fits are reproducible
        kept = kept[:max_features]
        if not kept:
            raise TelaError(f"no n-gram occurs in {min_df} or more training prompts; lower min_df")
        n = len(texts)
        vocab = {g: i for i, g in enumerate(kept)}
        idf = [math.log((1 + n) / (1 + df[g])) + 1.0 for g in kept]
        return cls(vocab, idf, ngram_max)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        import numpy as np
        import scipy.sparse as sp

        indptr, indices, data = [0], [], []
        for t in texts:
            counts = Counter(g for g in ngrams(t, self.ngram_max) if g in self.vocab)
            cols = [self.vocab[g] for g in counts]
            vals = np.array([1.0 + math.log(c) for c in counts.values()]) * self.idf[cols] if cols else np.zeros(0)
            norm = float(np.linalg.norm(vals)) or 1.0
            indices.extend(cols)
            data.extend((vals / norm).tolist())
            indptr.append(len(indices))
        return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, len(self.vocab)))

    def save(self, directory: Path) -> None:
        atomic_write_json(
            directory / "tfidf.json", {"ngram_max": self.ngram_max, "vocab": list(self.vocab), "idf": self.idf.tolist()}
        )

    @classmethod
    def load(cls, directory: Path) -> Tfidf:
        path = directory / "tfidf.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls({g: i for i, g in enumerate(data["vocab"])}, data["idf"], int(data["ngram_max"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TelaError(f"{path}: not a tela-acme TF-IDF vocabulary ({e})") from None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write ``.npz`` atomically (temporary file, then rename)."""
    import os

    import numpy as np

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:  # an artifact never runs code
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise TelaError(f"{path}: cannot read ({e})") from None
