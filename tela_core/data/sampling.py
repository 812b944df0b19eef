"""Deterministic sampling and splitting, identical to what the seed's tools do with seed 42.

- :func:`subsample` is the seed's ``prepare_subsampled_dataset``: pandas
  ``df.sample(n=n, random_state=42)``, which is ``np.random.RandomState(42).choice(len, n,
  replace=False)`` (pandas ``core/common.random_state`` + ``core/sample.sample``).
- :func:`split` is the seed's ``datasets.Dataset.train_test_split(test_size=0.1, seed=42)``: a
  PCG64 permutation from ``np.random.default_rng(seed)``; the first ``ceil(0.1 n)`` indices are
  the eval split, the rest the train split, both in permutation order.
- :func:`group_split` holds whole groups out (the MMLU protocol: evaluate on subjects the router
  never trained on; :data:`MMLU_HELDOUT_SUBJECTS`).

numpy is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.data.records import Record

__all__ = ["subsample", "split", "group_split", "MMLU_HELDOUT_SUBJECTS"]

T = TypeVar("T")

#: The 15 MMLU subjects held out for evaluation (docs/metrics.md); train on the other 42.
MMLU_HELDOUT_SUBJECTS: tuple[str, ...] = (
    "astronomy",
    "clinical_knowledge",
    "college_physics",
    "computer_security",
    "high_school_biology",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_government_and_politics",
    "high_school_psychology",
    "high_school_us_history",
    "logical_fallacies",
    "machine_learning",
    "moral_disputes",
    "sociology",
    "us_foreign_policy",
)


def subsample(records: Sequence[T], n: int | None, seed: int = 42) -> list[T]:
    """``n`` records drawn without replacement, in the order pandas ``df.sample(n, random_state=seed)``
    returns them (so the seed's ``train_data_sample.jsonl`` is reproduced row for row).

    ``n`` None, or ``n >= len(records)``, returns every record in its original order (pandas would
    shuffle at ``n == len`` and refuse ``n > len``; keeping the file as is is what a user asking
    for "at most n" wants).
    """
    items = list(records)
    if n is None or n >= len(items):
        return items
    if n < 0:
        raise TelaError(f"sample size must be >= 0, got {n}")
    import numpy as np

    idx = np.random.RandomState(seed).choice(len(items), size=n, replace=False)
    return [items[int(i)] for i in idx]


def split(records: Sequence[T], eval_fraction: float = 0.1, seed: int = 42) -> tuple[list[T], list[T]]:
    """(train, eval) exactly as ``datasets.Dataset.train_test_split(test_size=eval_fraction,
    seed=seed)`` splits the same rows: the seed's 90/10 split.

    ``eval_fraction`` 0 returns (all records, []). Raises :class:`TelaError` when the split would
    leave the train side empty (as ``datasets`` does).
    """
    items = list(records)
    if eval_fraction == 0:
        return items, []
    if not 0 < eval_fraction < 1:
        raise TelaError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    n = len(items)
    n_eval = math.ceil(eval_fraction * n)
    n_train = n - n_eval
    if n_train <= 0:
        raise TelaError(
            f"cannot split {n} record(s) with eval fraction {eval_fraction}: the train split would be empty"
        )
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    eval_items = [items[int(i)] for i in perm[:n_eval]]
    train_items = [items[int(i)] for i in perm[n_eval : n_eval + n_train]]
    return train_items, eval_items


def group_split(records: Iterable[Record], eval_groups: Iterable[str]) -> tuple[list[Record], list[Record]]:
    """(train, eval): records whose ``group`` is in ``eval_groups`` go to eval, the rest to train.

    Order is kept. Records without a group go to train. Use with :data:`MMLU_HELDOUT_SUBJECTS`
    for the MMLU held-out-subject protocol.
    """
    held = set(eval_groups)
    train: list[Record] = []
    evals: list[Record] = []
    for r in records:
        (evals if r.group is not None and r.group in held else train).append(r)
    return train, evals
