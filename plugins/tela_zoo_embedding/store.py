"""The part of an embedding family's artifact every such family shares: training embeddings,
the per-model outcome matrix, and the weak/strong pair.

Keeping the whole outcome matrix (not just the two-model target) lets one artifact answer both
"does this prompt need the strong model?" and, for N models, "how likely is each model to be right?".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tela_core.errors import TelaError
from tela_core.records import Record
from tela_core.targets import make_targets, model_names, outcome_matrix

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["TrainData", "train_data", "embed_prompts", "w_from_model_probs"]


class TrainData:
    """Training prompts' targets and outcomes, ready for an embedding family."""

    def __init__(self, y: "np.ndarray", outcomes: "np.ndarray | None", models: list[str], meta: dict[str, Any]) -> None:
        self.y = y
        self.outcomes = outcomes
        self.models = models
        self.meta = meta


def train_data(records: Sequence[Record], target: str, weak: str | None, strong: str | None) -> TrainData:
    """Targets (two-model reading) and the full outcome matrix when records have outcomes."""
    models = model_names(records)
    outcomes = outcome_matrix(records, models) if models else None
    y, meta = make_targets(records, target, weak, strong)
    meta = {**meta, "models": models}
    return TrainData(y, outcomes, models, meta)


def embed_prompts(prompts: Sequence[str], model: str | None) -> "np.ndarray":
    """Cached sentence embeddings (see :mod:`tela_core.embeddings`)."""
    from tela_core.embeddings import embed

    return embed(list(prompts), model)


def w_from_model_probs(p: "np.ndarray", models: list[str], meta: dict[str, Any]) -> "np.ndarray":
    """Two-model w from per-model P(correct): 1 − P(weak) for weak-wrong, (P(s) − P(w) + 1)/2 for gain."""
    import numpy as np

    weak, strong = meta.get("weak"), meta.get("strong")
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


def load_npz(path: Path, expect: Sequence[str] = ()) -> dict[str, "np.ndarray"]:
    """The arrays of an artifact's ``.npz`` (no pickles); one line naming the file when it is
    missing, truncated, not an npz, or lacks one of the ``expect``\ ed arrays."""
    import numpy as np

    if not path.exists():
        raise TelaError(f"{path}: missing from the router artifact")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # truncated or garbage: BadZipFile, EOFError, ValueError, OSError, ...
        raise TelaError(f"{path}: damaged router file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}); "
                        "train the router again") from None
    if expect:
        missing = [k for k in expect if k not in arrays]
        if missing:
            raise TelaError(f"{path}: damaged router file: no array {', '.join(map(repr, missing))}; train the router again")
    return arrays
