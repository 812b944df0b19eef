"""Where the bench scripts read their data: the folders ``tela data get NAME`` fills.

Fetch once (``tela data get routellm-mmlu``, or ``--from DIR`` with a copy downloaded by hand);
the scripts then find the data in ``$TELA_CACHE/datasets/NAME``, on any machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tela_core.data.download import MANIFEST, dataset_dir

__all__ = ["dataset"]


def dataset(name: str) -> Path:
    """The fetched folder of catalogue dataset ``name``; exit with the command to fetch it if absent."""
    d = dataset_dir(name)
    if not (d / MANIFEST).is_file():
        sys.exit(f"{d}: dataset {name} is not fetched; run `tela data get {name}` (or `--from DIR`) first")
    return d
