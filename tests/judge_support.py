"""What the judge tests share: two models' recorded answers to sums, the replay STAND-IN that
serves them (tela_core.testkit.replay_upstream: a loopback server, not a model API) and
tela collect's output over them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tela_core.testkit.helpers import run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream


def synthetic_sums(n: int = 24) -> dict[str, dict[str, Recorded]]:
    """Two models' recorded answers to n sums: the small one is wrong on every third."""
    rec: dict[str, dict[str, Recorded]] = {"small": {}, "big": {}}
    for i in range(n):
        q = f"What is {i} + {i + 1}?"
        rec["big"][q] = Recorded(f"The sum is {2 * i + 1}.", 10 + i, 6, 1.0)
        rec["small"][q] = Recorded(f"The sum is {2 * i + 1 + (i % 3 == 0)}.", 10 + i, 6, float(i % 3 != 0))
    return rec


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream(synthetic_sums(), judges=["judge"]) as up:
        yield up


@pytest.fixture
def answers(tmp_path: Path, upstream: ReplayUpstream) -> Path:
    """tela collect's output over the synthetic prompts (with reference answers)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": q, "reference": str(2 * i + 1)}) + "\n" for i, q in enumerate(upstream.prompts("big"))
        ),
        encoding="utf-8",
    )
    out = tmp_path / "answers"
    r = run_cli(
        "collect",
        "--prompts",
        prompts,
        "--model",
        f"small={upstream.base_url}#small",
        "--model",
        f"big={upstream.base_url}#big",
        "--price",
        "small=1,2",
        "--price",
        "big=10,30",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    upstream.reset(counts=True)
    return out
