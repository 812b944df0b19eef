"""The eval stage: judging routers on real outcome data, the same way for every family.

A library: ``tela eval`` and ``tela zoo`` (and anyone's script) call the same functions, so every
router is judged beside the same baselines. Its modules, in the order the data flows:

- :mod:`~tela_core.eval.outcomes`: the weak/strong outcome (and cost) arrays of records.
- :mod:`~tela_core.eval.score_cache`: :func:`score_prompts` through any scorer, cached by content.
- :mod:`~tela_core.eval.replay`: :func:`evaluate_scores` (curve and metrics, as
  :mod:`tela_core.eval.metrics` defines them), :func:`baselines` (random and oracle, with costs),
  :func:`policy_point`.
- :mod:`~tela_core.eval.report` and :mod:`~tela_core.eval.plots`: ``report.json``, ``report.md``
  and ``quality.png``.
- :mod:`~tela_core.eval.zoo`: train several families on one split and compare them.
- :mod:`~tela_core.eval.nmodel`: N-model routing judged by quality against cost (AIQ).
- :mod:`~tela_core.eval.demo`: ``tela demo``'s steps (train, calibrate, judge held out, show).

The names below are re-exported so ``from tela_core import eval as ev`` reaches the two-model
evaluation in one import; the zoo and N-model modules are imported by name. numpy and
matplotlib are imported inside the functions.
"""

from __future__ import annotations

from .outcomes import OutcomeArrays, model_names, outcome_arrays, resolve_pair
from .plots import plot_curves
from .replay import (
    RANDOM_SEEDS,
    Baselines,
    Evaluation,
    baselines,
    evaluate,
    evaluate_scores,
    oracle_scores,
    policy_point,
    random_baseline,
    random_scores,
)
from .report import REPORT_FILES, build_report, render_markdown, write_report
from .score_cache import router_hash, score_cache_dir, score_prompts

__all__ = [
    "RANDOM_SEEDS",
    "REPORT_FILES",
    "Evaluation",
    "OutcomeArrays",
    "outcome_arrays",
    "model_names",
    "resolve_pair",
    "evaluate_scores",
    "evaluate",
    "Baselines",
    "baselines",
    "random_baseline",
    "oracle_scores",
    "random_scores",
    "policy_point",
    "score_prompts",
    "router_hash",
    "score_cache_dir",
    "build_report",
    "render_markdown",
    "write_report",
    "plot_curves",
]
