"""Router metrics exactly as ``docs/metrics.md`` defines them (APGR, CPT, AUC, the quality curve):
the names of :mod:`tela_core.routing.metrics`, where they are defined, below the operating point
that :mod:`tela_core.routing.operating_point` chooses with them. Evaluation code and scripts import
them from here or from there: the same functions."""

from __future__ import annotations

from tela_core.routing.metrics import (
    APGR_GRID_STEPS,
    CPT_GRID_STEPS,
    Curve,
    apgr,
    auc,
    cpt,
    curve,
    quality_curve,
    round_half_up_count,
    routing_order,
    strong_counts,
    trapezoid,
)

__all__ = [
    "APGR_GRID_STEPS",
    "CPT_GRID_STEPS",
    "Curve",
    "round_half_up_count",
    "routing_order",
    "strong_counts",
    "quality_curve",
    "curve",
    "apgr",
    "auc",
    "cpt",
    "trapezoid",
]
