"""Helpers for tela-acme's tests: the real `tela` CLI, and the bundled MMLU sample as an acme-csv file.

Every test drives the installed ``tela`` command in a subprocess, so the plugin is found the way a
user's tela finds it: through its ``tela`` entry point.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tela_core.testkit import OFFLINE_VARS


def tela(*args: Any, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed ``tela ARGS...``; with ``check``, a non-zero exit fails the test with its output."""
    exe = Path(sys.executable).with_name("tela")
    env = {**os.environ, **OFFLINE_VARS, "COLUMNS": "200"}
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"tela {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def tela_json(*args: Any) -> Any:
    return json.loads(tela(*args).stdout)


def write_acme_csv(jsonl: Path, out: Path) -> Path:
    """The bundled seed JSONL (with outcomes) rewritten as an acme-csv file, with a price per model."""
    from tela_core.plugins import get_registry

    records = list(get_registry().create("source", "jsonl", {}).records(jsonl))
    models = list(records[0].outcomes)
    prices = {models[0]: 0.0001, models[1]: 0.003}  # Mixtral, GPT-4 Turbo: $ per query, roughly
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "group", "prompt", *(f"correct:{m}" for m in models), *(f"cost:{m}" for m in models)])
        for r in records:
            w.writerow(
                [
                    r.id,
                    r.group,
                    r.prompt,
                    *("true" if r.outcomes[m] >= 0.5 else "false" for m in models),
                    *(prices[m] for m in models),
                ]
            )
    return out
