"""``tela demo`` end to end on a tiny model (slow): it trains, calibrates, judges and routes.

A stand-in base model (``tela_core.testkit.helpers.build_tiny_model``, a two-layer Llama) replaces
SmolLM2-135M so the test takes a minute or two; everything else is what ``make demo`` runs: the
bundled training-side sample, ``deepspeed-z3``, calibration on training-side prompts it did not
train on, evaluation on the bundled held-out sample, and routing through the Router API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_judges_and_routes_both_ways(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    exe = Path(sys.executable).with_name("tela")
    res = subprocess.run(
        [
            str(exe),
            "demo",
            "--model",
            str(tiny_model),
            "--sample",
            "16",
            "--calibration",
            "24",
            "--knn",
            "always",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    text = res.stdout
    # the router, random and the oracle judged on the held-out sample, with numbers
    for name in ("score-token (16 records, z3)", "random (mean of 10 seeds)", "oracle", "embedding-knn"):
        assert re.search(re.escape(name) + r"[^\n]*?\s+APGR\s+-?\d\.\d{3}", text), (name, text)
    assert "300 prompts, 15 subjects it never trained on" in text
    assert ("beats random" in text) != ("did NOT beat random" in text)
    # the saved policy is the calibrated one, calibrated on 24 training-side prompts
    policy = json.loads((out / "policy.json").read_text())
    assert policy["name"] == "calibrated" and policy["options"]["calibration_prompts"] == 24
    assert policy["models"] == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    # decisions differ by prompt: the lowest-w prompts go to the weak model, the highest to the strong one
    lines = [ln for ln in text.splitlines() if re.match(r"\s+w=\d\.\d{3} -> ", ln)]
    assert len(lines) == 6
    ws = [float(re.search(r"w=(\d\.\d{3})", ln).group(1)) for ln in lines]
    assert ws == sorted(ws)
    assert "-> weak" in lines[0] and "-> strong" in lines[-1]
    assert all(re.search(r"\[weak (right|wrong), strong (right|wrong)\]", ln) for ln in lines)
