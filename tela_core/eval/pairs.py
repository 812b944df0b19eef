"""Which model pairs a router was trained on, and a note when it is judged on another one.

A two-model router learns w = P(the strong model is needed) for the pair(s) its training data
named: RouteLLM's Mixtral/GPT-4, LLMRouter's Gemma/Nemotron, or both (``tela run`` on several
sources keeps each source's pair in the manifest's ``trained_pairs``). Judging it on data of
another pair is legitimate, and the numbers stay honest (every metric replays the eval data's own
outcomes), so ``tela eval`` does not refuse it; but a user must know the router is being asked a
question it was not trained for, so it says so in one line and the report keeps both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tela_core.routing.router import PLACEHOLDER_MODELS

__all__ = ["trained_pairs", "pair_note"]


def trained_pairs(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The real (weak, strong) pairs a router's manifest says it was trained on: ``trained_pairs``
    (``tela run``), else its ``weak``/``strong`` unless those are the role names; [] when unknown."""
    out: list[tuple[str, str]] = []
    given = manifest.get("trained_pairs")
    if isinstance(given, list):
        for p in given:
            if isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(m, str) and m for m in p):
                out.append((p[0], p[1]))
    if out:
        return out
    weak, strong = manifest.get("weak"), manifest.get("strong")
    if isinstance(weak, str) and isinstance(strong, str) and weak and strong and (weak, strong) != PLACEHOLDER_MODELS:
        return [(weak, strong)]
    return []


def pair_note(manifest: Mapping[str, Any], weak: str, strong: str) -> str | None:
    """One line when the router is judged on a pair it was not trained on (None when it was)."""
    pairs = trained_pairs(manifest)
    if (weak, strong) in pairs:
        return None
    here = f"{weak} (weak) / {strong} (strong)"
    if not pairs:
        return (
            "note: the router records no model pair it was trained for (it learnt from labels only); "
            f"judged here on {here}"
        )
    told = "; ".join(f"{w} / {s}" for w, s in pairs)
    return f"note: the router was trained on {told}; judged here on {here}, a pair it was not trained on"
