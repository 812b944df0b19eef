"""A test plugin for data-parallel scoring (tests/test_parallel_scoring.py), importable by the ranks.

``counting-length`` is the ``length`` family with two test hooks, driven by environment variables
(the ranks inherit them from the command that launches them):

- ``TELA_TEST_SCORE_CALLS=FILE``: every ``score`` call appends ``RANK N`` (``-`` for no rank) to
  FILE, so a test sees which rank scored how many prompts;
- ``TELA_TEST_KILL=FILE``: FILE holds ``RANK CALL``; that rank SIGKILLs itself at its CALL-th call
  (0-based), once ``TELA_TEST_KILL_AFTER`` chunk files (``TELA_TEST_CHUNKS``, a glob) exist, and
  removes FILE first so that a rerun lives.

The plugin reaches the ranks because the test registers it in-process and data-parallel scoring
passes such plugins on (``tela_core.eval.parallel``).
"""

from __future__ import annotations

import glob
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tela_core import hookimpl
from tela_core.components import Scores
from tela_plugins.baselines import LengthScorer


class CountingLength(LengthScorer):
    """``length``, logging its calls and dying on request."""

    name = "counting-length"
    description = "test: the length family, counting its score calls"
    calls = 0

    def score(self, prompts: Sequence[str]) -> Scores:
        rank = os.environ.get("RANK", "-")
        kill = os.environ.get("TELA_TEST_KILL")
        if kill and Path(kill).is_file():
            who, at = Path(kill).read_text().split()
            if who == rank and int(at) == CountingLength.calls:
                want = int(os.environ.get("TELA_TEST_KILL_AFTER", "0"))
                deadline = time.time() + 60
                while len(glob.glob(os.environ.get("TELA_TEST_CHUNKS", ""))) < want and time.time() < deadline:
                    time.sleep(0.05)
                Path(kill).unlink()
                os.kill(os.getpid(), signal.SIGKILL)
        CountingLength.calls += 1
        log = os.environ.get("TELA_TEST_SCORE_CALLS")
        if log:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{rank} {len(prompts)}\n")
        return super().score(prompts)


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(CountingLength)
