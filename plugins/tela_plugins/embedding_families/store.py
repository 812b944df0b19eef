"""What the embedding families share: the two-model w read from per-model predictions, and the
``.npz`` files of their artifacts. Prompt embeddings come from the family's embedder
(:class:`tela_core.models.embedders.UsesEmbedder`).

The training target and outcome matrix come from :func:`tela_core.routing.family.train_data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["w_from_model_probs", "save_npz", "load_npz"]


def w_from_model_probs(p: np.ndarray, models: list[str], meta: dict[str, Any]) -> np.ndarray:
    """Two-model w from per-model P(correct): 1 − P(weak) for weak-wrong, (P(s) − P(w) + 1)/2 for gain.

    An N-model router (no weak/strong pair) reads the pair of its ``w_pair``: the models with the
    lowest and the highest mean outcome (:class:`tela_core.routing.family.TrainData`)."""
    import numpy as np

    weak, strong = meta.get("weak"), meta.get("strong")
    if not (weak and strong) and meta.get("w_pair"):
        weak, strong = meta["w_pair"]
    if weak not in models or strong not in models:
        raise TelaError("this artifact has no weak/strong pair; use per-model predictions instead")
    pw, ps = p[:, models.index(weak)], p[:, models.index(strong)]
    if meta.get("target") == "gain":
        return np.clip((ps - pw + 1.0) / 2.0, 0.0, 1.0)
    return np.clip(1.0 - pw, 0.0, 1.0)


def save_npz(path: Path, **arrays: Any) -> None:
    """Write arrays atomically (temp file, then rename)."""
    import os
    import uuid

    import numpy as np

    tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_npz(path: Path, expect: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The arrays of an artifact's ``.npz`` (no pickles); one line naming the file when it is
    missing, truncated, not an npz, or lacks one of the arrays named in ``expect``."""
    import numpy as np

    if not path.exists():
        raise TelaError(f"{path}: missing from the router artifact")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # truncated or garbage: BadZipFile, EOFError, ValueError, OSError, ...
        raise TelaError(
            f"{path}: damaged router file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}); "
            "train the router again"
        ) from None
    if expect:
        missing = [k for k in expect if k not in arrays]
        if missing:
            raise TelaError(
                f"{path}: damaged router file: no array {', '.join(map(repr, missing))}; train the router again"
            )
    return arrays
