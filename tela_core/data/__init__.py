"""Small datasets that ship with tela, for the default run and the demo.

- ``mmlu_sample.jsonl``: 400 seed-format records (with per-model outcomes and subject) from the
  42 MMLU *training* subjects of RouteLLM's outcome data.
- ``mmlu_heldout_sample.jsonl``: 300 records from the 15 held-out subjects, for evaluation.

See ``ATTRIBUTION.md`` for origin and license, and ``make_sample.py`` for the derivation.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tela_core.infra.errors import TelaError

__all__ = ["sample_path", "SAMPLES"]

#: the bundled files
SAMPLES: tuple[str, ...] = ("mmlu_sample.jsonl", "mmlu_heldout_sample.jsonl")


def sample_path(name: str = "mmlu_sample.jsonl") -> Path:
    """Filesystem path of a bundled data file (works from a source checkout and an installed wheel)."""
    if name not in SAMPLES:
        raise TelaError(f"no bundled sample {name!r}; bundled: {', '.join(SAMPLES)}")
    ref = resources.files(__name__) / name
    return Path(str(ref))
