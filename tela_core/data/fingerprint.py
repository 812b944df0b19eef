"""What a router was trained on, small enough for its manifest: a bottom-k sketch of the prompts.

Evaluating or calibrating a router on its own training prompts flatters it (a kNN router scores
its training prompts perfectly). The manifest keeps the ``k`` smallest 64-bit hashes of the training
prompts (``train_prompts``); for any later prompt set, the prompts whose hash falls at or below the
largest kept hash are a uniform sample of that set, and for exactly those the sketch answers "was it
trained on?" without error. So :func:`overlap` estimates the share of training prompts in an
evaluation set from a few kilobytes, with no copy of the data. With fewer than ``k`` training
prompts the sketch holds them all and the answer is exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tela_core.infra.io import atomic_write_json
from tela_core.routing.artifact import MANIFEST

__all__ = ["SKETCH_KEY", "prompt_sketch", "overlap", "overlap_warning", "record_training_prompts"]

#: the manifest key holding the sketch
SKETCH_KEY = "train_prompts"
_K = 256


def _h(prompt: str) -> int:
    return int.from_bytes(hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def prompt_sketch(prompts: Iterable[str], k: int = _K) -> dict[str, Any]:
    """``{"n": distinct prompts, "k": k, "hashes": [k smallest hashes as hex]}``."""
    import heapq

    distinct = {_h(p) for p in prompts}
    smallest = heapq.nsmallest(k, distinct)
    return {"n": len(distinct), "k": k, "hash": "blake2b-64", "hashes": [f"{x:016x}" for x in smallest]}


def overlap(sketch: Mapping[str, Any], prompts: Iterable[str]) -> tuple[int, int] | None:
    """(sampled, trained): of the distinct ``prompts`` that the sketch can judge, how many were
    training prompts. None when the sketch is missing or unusable."""
    try:
        kept = {int(x, 16) for x in sketch["hashes"]}
        complete = int(sketch["n"]) <= len(kept)
    except (KeyError, TypeError, ValueError):
        return None
    if not kept:
        return None
    top = max(kept)
    sampled = trained = 0
    for h in {_h(p) for p in prompts}:
        if complete or h <= top:
            sampled += 1
            trained += h in kept
    return sampled, trained


def overlap_warning(manifest: Mapping[str, Any], prompts: Iterable[str], what: str = "evaluation") -> str | None:
    """A warning when a sizeable share (at least 5%) of ``prompts`` were the router's training
    prompts, per the manifest's sketch; None otherwise or when the manifest has no sketch."""
    sketch = manifest.get(SKETCH_KEY)
    if not isinstance(sketch, Mapping):
        return None
    got = overlap(sketch, prompts)
    if got is None:
        return None
    sampled, trained = got
    if not sampled or trained / sampled < 0.05:
        return None
    share = trained / sampled
    exact = int(sketch.get("n", 0)) <= len(sketch.get("hashes", []))
    est = f"{share:.0%}" if exact else f"about {share:.0%} (estimated from {sampled} prompts)"
    return (
        f"warning: {est} of the {what} prompts are the router's own training prompts; "
        "its results on them will look better than on new prompts: use held-out data"
    )


def record_training_prompts(artifact_dir: str | Path, prompts: Iterable[str]) -> None:
    """Add the sketch of ``prompts`` to the artifact's manifest (rewritten atomically)."""
    import json

    path = Path(artifact_dir) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[SKETCH_KEY] = prompt_sketch(prompts)
    atomic_write_json(path, manifest)
