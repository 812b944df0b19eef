"""Calibrating a router on prompts (``tela calibrate --data``): score them, set the policy, save it.

A router between two models gets the threshold that sends a target share of the prompts to the
strong model (its ``calibrated`` policy); a router among N models gets the λ of its ``budget``
policy that meets a budget in $ per 1,000 requests on them
(:func:`tela_core.routing.calibration.calibrate_budget`). Either way the scores (for N models, each
model's predicted quality) go through the score cache and may be sharded over ranks. Calibration on
a ``tela serve`` decision log lives in :mod:`tela_core.routing.calibration`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tela_core.infra.errors import TelaError
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import write_policy
from tela_core.routing.calibration import budget_policy, calibrate_budget
from tela_core.routing.operating_point import small_sample_warning
from tela_core.routing.router import Router

from .score_cache import router_hash, score_cache_dir, score_prompts

__all__ = ["calibrate_on_prompts"]


def calibrate_on_prompts(
    router_dir: Path,
    prompts: Sequence[str],
    data: str,
    strong_share: float | None = None,
    budget: float | None = None,
    policy: str | None = None,
    policy_options: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
    launch: Any = None,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Calibrate the router in ``router_dir`` on ``prompts`` (described by ``data``) to
    ``strong_share`` or, for a router among N models, ``budget``; save and return what was saved
    (``options``, ``models``, ``previous``, ``warnings``)."""
    parallel = bool(launch is not None and launch.parallel)
    cache = None if no_cache else score_cache_dir(Path(router_dir) / ".score-cache")
    if budget is not None:
        router = Router.load(
            router_dir, trust_remote_code=trust_remote_code, score_batch_size=score_batch_size, load_scorer=not parallel
        )
        budget_policy(router, budget, policy or "budget", policy_options)  # a pair router fails before scoring
        s, _info = score_prompts(
            router.scorer,
            list(prompts),
            router_id=router_hash(router_dir) if cache else None,
            cache_dir=cache,
            description=f"scoring {len(prompts)} calibration prompts" + (f" ({launch.describe()})" if parallel else ""),
            launch=launch,
            router_dir=Path(router_dir),
            quality=True,  # the budget's λ is found on each model's predicted quality
        )
        if s.quality is None:
            raise TelaError(f"{router_dir}: family {router.manifest.get('scorer')!r} predicts no per-model quality")
        models = list(s.models or router.models)
        return calibrate_budget(router, s.quality, models, budget, data, policy or "budget", policy_options)
    if strong_share is None or not 0.0 <= strong_share <= 1.0:
        raise TelaError(f"--strong-share must be in [0, 1], got {strong_share}")
    reg = get_registry()
    name = policy or "calibrated"
    if not hasattr(reg.get("policy", name), "calibrate") or getattr(reg.get("policy", name), "knob", None):
        able = [n for n in reg.names("policy") if hasattr(reg.get("policy", n), "calibrate")]
        able = [n for n in able if not getattr(reg.get("policy", n), "knob", None)]
        raise TelaError(f"policy {name!r} does not calibrate; policies that do: {', '.join(able)}")
    base = reg.create("policy", name, {**dict(policy_options or {}), "strong_share": strong_share})
    r = Router.load(
        router_dir, trust_remote_code=trust_remote_code, score_batch_size=score_batch_size, load_scorer=not parallel
    )
    scores, _info = score_prompts(
        r.scorer,
        list(prompts),
        router_id=router_hash(router_dir) if cache else None,
        cache_dir=cache,
        description=f"scoring {len(prompts)} calibration prompts" + (f" ({launch.describe()})" if parallel else ""),
        launch=launch,
        router_dir=Path(router_dir),
    )
    calibrated = base.calibrate(scores.w, data=data)
    models = r.models if len(r.models) == 2 else [r.models[0], r.models[-1]]
    options = calibrated.options.model_dump(mode="json")
    write_policy(router_dir, name, options, models)
    few = small_sample_warning(
        len(prompts), "this calibration", "calibrate on more prompts the router did not train on"
    )
    return {"options": options, "models": models, "previous": r.policy_spec["name"], "warnings": [few] if few else []}
