"""Builtin plugin: router policies ``threshold``, ``calibrated`` and ``tiers`` (see :mod:`.policies`), and the
N-model ones ``cost-aware``, ``budget`` and ``quality-floor`` (see :mod:`.nmodel`)."""

from __future__ import annotations

from tela_core import hookimpl
from tela_plugins.policies.nmodel import BudgetPolicy, CostAwarePolicy, NModelPolicy, QualityFloorPolicy
from tela_plugins.policies.policies import (
    CalibratedPolicy,
    ThresholdPolicy,
    TiersPolicy,
    calibrate_threshold,
    make_policy,
    strong_share,
)

__all__ = [
    "ThresholdPolicy",
    "CalibratedPolicy",
    "TiersPolicy",
    "NModelPolicy",
    "CostAwarePolicy",
    "BudgetPolicy",
    "QualityFloorPolicy",
    "calibrate_threshold",
    "strong_share",
    "make_policy",
]


@hookimpl
def tela_register_policies(register):
    register(ThresholdPolicy)
    register(CalibratedPolicy)
    register(TiersPolicy)
    register(CostAwarePolicy)
    register(BudgetPolicy)
    register(QualityFloorPolicy)
