"""Sampling and splitting reproduce the seed's tools exactly (pandas df.sample, datasets split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tela_core import Record, TelaError
from tela_core.data.sampling import MMLU_HELDOUT_SUBJECTS, group_split, split, subsample
from tela_core.testkit.helpers import TelaCli


def test_subsample_is_pandas_sample_order() -> None:
    # pandas: df.sample(n, random_state=42) -> RandomState(42).choice(len, n, replace=False)
    # (pandas/core/common.py random_state, pandas/core/sample.py sample). Pinned values:
    assert subsample(list(range(10)), 3) == [8, 1, 5]
    assert subsample(list(range(100)), 5) == [83, 53, 70, 45, 44]
    items = [f"r{i}" for i in range(1000)]
    expected = np.random.RandomState(42).choice(1000, size=37, replace=False)
    assert subsample(items, 37) == [items[i] for i in expected]
    assert subsample(items, 37, seed=7) != subsample(items, 37)


def test_subsample_all_or_none_keeps_order() -> None:
    items = list("abcde")
    assert subsample(items, None) == items
    assert subsample(items, 5) == items
    assert subsample(items, 50) == items
    assert len(set(subsample(list(range(50)), 49))) == 49


@pytest.mark.parametrize("n", [2, 10, 11, 101, 1000])
@pytest.mark.parametrize("fraction,seed", [(0.1, 42), (0.25, 3)])
def test_split_equals_datasets_train_test_split(n: int, fraction: float, seed: int) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"i": list(range(n))})
    ref = ds.train_test_split(test_size=fraction, seed=seed)
    train, evals = split(list(range(n)), fraction, seed)
    assert train == ref["train"]["i"]
    assert evals == ref["test"]["i"]


def test_split_edge_cases() -> None:
    assert split([1, 2, 3], 0) == ([1, 2, 3], [])
    with pytest.raises(TelaError, match="train split would be empty"):
        split([1], 0.1)
    with pytest.raises(TelaError):
        split([1, 2], 1.0)


def test_group_split_holds_out_whole_groups() -> None:
    recs = [
        Record(prompt=f"q{i}", group=g) for i, g in enumerate(["anatomy", "astronomy", None, "sociology", "anatomy"])
    ]
    train, evals = group_split(recs, MMLU_HELDOUT_SUBJECTS)
    assert [r.prompt for r in train] == ["q0", "q2", "q4"]
    assert [r.prompt for r in evals] == ["q1", "q3"]
    assert len(MMLU_HELDOUT_SUBJECTS) == 15


def test_cli_sample_writes_the_pandas_rows_as_they_were(tmp_path: Path, tela_cli: TelaCli) -> None:
    from tela_core.data.prompts import SYSTEM_PROMPT

    lines = []
    for i in range(20):
        obj = {
            "prompt": f"Q{i}",
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Q{i}"},
                {"role": "assistant", "content": "[[3]]"},
            ],
            "my_key": i,  # unknown keys survive sampling
        }
        lines.append(json.dumps(obj))
    src = tmp_path / "full.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "sample.jsonl"
    result = tela_cli("data", "sample", "--n", "3", src, out)
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["my_key"] for x in out.read_text().splitlines()] == subsample(list(range(20)), 3)
    # no silent overwrite; --force replaces
    again = tela_cli("data", "sample", "--n", "4", src, out)
    assert again.exit_code == 2 and "--force" in again.output
    assert len(out.read_text().splitlines()) == 3
    forced = tela_cli("data", "sample", "--n", "4", "--seed", "1", src, out, "--force")
    assert forced.exit_code == 0
    assert [json.loads(x)["my_key"] for x in out.read_text().splitlines()] == subsample(list(range(20)), 4, seed=1)
