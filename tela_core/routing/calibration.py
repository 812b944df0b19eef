"""Calibrating a router on the traffic it served: ``tela calibrate --traffic LOG``.

The threshold must come from the scores *this* router gives the traffic, not the scores in the
log, which are those of whatever router version served it (often the one before a retrain). So:

- a logged request with its text (the server ran with ``log_prompts``) is scored again with the
  router being calibrated;
- a request logged without its text keeps its logged score only when the log says the same router
  version scored it (``router_version``, :func:`tela_core.routing.artifact.router_version`); a
  line from another version is refused, naming both versions; a line that names no version (a log
  written before tela recorded it) is used with a warning;
- a shadow log (lines with ``answers``: only the sampled share of requests) is refused: it is not
  the traffic, and the decision log is;
- fewer than :data:`~tela_core.routing.operating_point.MIN_SAMPLE` requests give a warning.

A router among N models is calibrated to a budget instead (``--budget``, $ per 1,000 requests):
:func:`calibrate_budget` sets its ``budget`` policy's λ so that the mean cost of the models it would
pick for the calibration prompts (from each one's predicted quality) meets the budget. On traffic,
the logged prompts are scored again; a request logged without its text keeps the per-model quality
the log holds for it, under the same version rule as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tela_core.infra.errors import InputError, TelaError
from tela_core.infra.logfile import read_log
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest, read_policy, router_version, write_policy
from tela_core.routing.operating_point import small_sample_warning
from tela_core.routing.router import Router

__all__ = [
    "TrafficLine",
    "read_traffic",
    "calibrate_on_traffic",
    "calibrate_budget",
    "budget_policy",
    "calibration_line",
]


@dataclass
class TrafficLine:
    """One freshly routed request of a decision log."""

    lineno: int
    w: float
    prompt: str | None
    version: str | None
    #: each model's predicted quality as logged (N-model routers), else None
    quality: dict[str, float] | None = None


@dataclass
class _Traffic:
    router: str
    lines: list[TrafficLine] = field(default_factory=list)


def read_traffic(log: str | Path, router: str | None = None) -> _Traffic:
    """The freshly routed requests of ``router`` (a served router's name) in the decision log
    ``log``: passed-through requests and sticky follow-up turns are left out. With ``router`` None
    the log must hold one router only. A shadow log is refused."""
    by_router: dict[str, list[TrafficLine]] = {}
    for lineno, rec in read_log(log, "decision log"):
        if isinstance(rec.get("answers"), dict):
            raise InputError(
                Path(log),
                lineno,
                "this is a shadow log (its lines hold both models' 'answers' for a sampled share of requests), not a "
                "decision log; calibrate on the decision log tela serve writes for every request (decision_log: in "
                "the serve config, or --decision-log)",
            )
        name, w = rec.get("router"), rec.get("w")
        if not isinstance(name, str) or not isinstance(w, (int, float)) or isinstance(w, bool) or rec.get("sticky"):
            continue
        prompt = rec.get("prompt") if isinstance(rec.get("prompt"), str) else None
        version = rec.get("router_version") if isinstance(rec.get("router_version"), str) else None
        q = rec.get("quality")
        quality = (
            {str(k): float(v) for k, v in q.items()}
            if isinstance(q, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in q.values())
            else None
        )
        by_router.setdefault(name, []).append(TrafficLine(lineno, float(w), prompt, version, quality))
    if not by_router:
        raise InputError(Path(log), None, "no routed requests in this decision log")
    if router is None:
        if len(by_router) > 1:
            raise TelaError(
                f"{log}: the log holds several routers ({', '.join(sorted(by_router))}); pick one with "
                "--traffic-router NAME"
            )
        router = next(iter(by_router))
    if router not in by_router:
        raise TelaError(f"{log}: no requests routed by {router!r}; routers in the log: {', '.join(sorted(by_router))}")
    return _Traffic(router, by_router[router])


def calibrate_on_traffic(
    router_dir: str | Path,
    log: str | Path,
    strong_share: float | None,
    router_name: str | None = None,
    policy: str = "calibrated",
    policy_options: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
    budget: float | None = None,
) -> dict[str, Any]:
    """Set ``router_dir``'s threshold so ``strong_share`` of the logged traffic would go to the
    strong model under *this* router's scores, and save it as its ``policy``; with ``budget`` (a
    router among N models) its ``budget`` policy's λ instead (:func:`calibrate_budget`). Returns
    what was saved, from how many requests, how many were rescored, and the warnings to show."""
    import numpy as np

    if budget is not None:
        return _budget_on_traffic(
            router_dir, log, budget, router_name, policy, policy_options, trust_remote_code, score_batch_size
        )
    if strong_share is None or not 0.0 <= strong_share <= 1.0:
        raise TelaError(f"--strong-share must be in [0, 1], got {strong_share}")
    manifest = read_manifest(router_dir)
    reg = get_registry()
    if not hasattr(reg.get("policy", policy), "calibrate"):
        able = [n for n in reg.names("policy") if hasattr(reg.get("policy", n), "calibrate")]
        raise TelaError(f"policy {policy!r} does not calibrate; policies that do: {', '.join(able)}")
    traffic = read_traffic(log, router_name)
    version = router_version(router_dir)
    warnings: list[str] = []
    bare = [t for t in traffic.lines if t.prompt is None]
    other = sorted({t.version for t in bare if t.version is not None and t.version != version})
    if other:
        first = next(t for t in bare if t.version in other)
        raise InputError(
            Path(log),
            first.lineno,
            f"{sum(t.version in other for t in bare)} requests were scored by router version {', '.join(other)}, and "
            f"{router_dir} is version {version} (retrained since?); the log holds no prompt text to score them again "
            "with this one (serve with log_prompts: true), so their scores would calibrate another router. "
            "Calibrate on traffic this version served, or on prompts with --data",
        )
    unversioned = [t for t in bare if t.version is None]
    if unversioned:
        warnings.append(
            f"warning: {len(unversioned)} logged requests name no router version and carry no prompt text: "
            "their scores are those of the router that served them, taken as they are (if it was an older "
            "version of this router, serve this one and calibrate on its traffic)"
        )
    w = np.array([t.w for t in traffic.lines], dtype=float)
    texts = [(i, t.prompt) for i, t in enumerate(traffic.lines) if t.prompt is not None]
    if texts:
        router = Router.load(router_dir, trust_remote_code=trust_remote_code, score_batch_size=score_batch_size)
        fresh = router.score([p for _, p in texts])
        for (i, _), x in zip(texts, fresh):
            w[i] = float(x)
    few = small_sample_warning(
        len(w), "this calibration", "the threshold will move as traffic grows; calibrate again on more"
    )
    if few:
        warnings.append(few)
    old = read_policy(router_dir)
    models = list(old.get("models") or [])
    pair = [manifest.get("weak"), manifest.get("strong")]
    if (not models or models == ["weak", "strong"]) and all(isinstance(m, str) and m for m in pair):
        models = [str(m) for m in pair]  # as Router.load reads them
    models = models or ["weak", "strong"]
    if len(models) != 2:
        models = [models[0], models[-1]]
    base = reg.create("policy", policy, {**dict(policy_options or {}), "strong_share": strong_share})
    how = (
        f"rescored with version {version}"
        if len(texts) == len(w)
        else (
            f"{len(texts)} rescored with version {version}, {len(w) - len(texts)} as logged"
            if texts
            else "scores as logged"
        )
    )
    calibrated = base.calibrate(w, data=f"{log} (traffic of {traffic.router}; {how})")
    options = calibrated.options.model_dump(mode="json")
    write_policy(router_dir, policy, options, models)
    return {
        "router": traffic.router,
        "requests": int(len(w)),
        "rescored": len(texts),
        "version": version,
        "options": options,
        "models": models,
        "previous": old.get("name"),
        "warnings": warnings,
    }


def budget_policy(
    router: Router, budget: float, policy: str = "budget", policy_options: Mapping[str, Any] | None = None
) -> Any:
    """The uncalibrated budget policy for ``router``: its saved costs (or those of ``policy_options``)
    and ``budget`` ($ per 1,000 requests). Refuses a router that routes a pair and a policy that
    does not calibrate to a budget."""
    import math

    if not (budget > 0 and math.isfinite(budget)):
        raise TelaError(f"--budget must be > 0 ($ per 1,000 requests), got {budget}")
    reg = get_registry()
    cls = reg.get("policy", policy)
    if getattr(cls, "knob", None) != "budget" or not hasattr(cls, "calibrate"):
        able = [n for n in reg.names("policy") if getattr(reg.get("policy", n), "knob", None) == "budget"]
        raise TelaError(f"policy {policy!r} does not calibrate to a budget; policies that do: {', '.join(able)}")
    if len(router.models) < 3 and not hasattr(router.scorer, "predict_models"):
        raise TelaError(
            f"{router.path}: this router routes between {', '.join(router.models)}; --budget calibrates a router among "
            "N models (calibrate this one with --strong-share)"
        )
    saved = getattr(router.policy.options, "costs", None)
    options = {**({"costs": saved} if saved else {}), **dict(policy_options or {}), "budget": budget}
    return reg.create("policy", policy, options)


def calibrate_budget(
    router: Router,
    quality: Any,
    models: list[str],
    budget: float,
    data: str,
    policy: str = "budget",
    policy_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Calibrate ``router``'s budget policy on predicted ``quality`` ((n, M), columns ``models``) of
    calibration prompts and save it (over the router's models, cheap -> strong). Returns what was
    saved, as :func:`calibrate_on_traffic` does."""
    import numpy as np

    base = budget_policy(router, budget, policy, policy_options)
    q = np.asarray(quality, dtype=float)
    if len(router.models) >= 3:
        order = [m for m in router.models if m in models]
    else:  # a pair router of a family that predicts every model: route among all of them, cheap -> strong
        cost = base.cost_vector(models)
        order = [models[int(j)] for j in np.argsort(cost, kind="stable")]
    if len(order) < 2:
        raise TelaError(
            f"{router.path}: the family predicts quality for {', '.join(models)}, not for the policy's models"
        )
    calibrated = base.calibrate(q[:, [models.index(m) for m in order]], order, data=data)
    options = calibrated.options.model_dump(mode="json")
    write_policy(router.path, policy, options, order)
    few = small_sample_warning(len(q), "this calibration", "calibrate on more prompts the router did not train on")
    warnings = [few] if few else []
    spent = options.get("achieved_cost")
    if spent is not None and spent > budget * (1 + 1e-9):
        warnings.append(
            f"warning: the budget ${budget:.4g} per 1,000 requests is below what the cheapest choice costs on these "
            f"prompts (${spent:.4g} per 1,000): every prompt goes to the cheapest model, {order[0]}"
        )
    return {
        "options": options,
        "models": order,
        "previous": router.policy_spec.get("name"),
        "requests": int(len(q)),
        "warnings": warnings,
    }


def _budget_on_traffic(
    router_dir: str | Path,
    log: str | Path,
    budget: float,
    router_name: str | None,
    policy: str,
    policy_options: Mapping[str, Any] | None,
    trust_remote_code: bool,
    score_batch_size: int | None,
) -> dict[str, Any]:
    """:func:`calibrate_on_traffic` for a router among N models: every logged request's predicted
    quality under this router (rescored, or as logged by this version), then :func:`calibrate_budget`."""
    import numpy as np

    router = Router.load(router_dir, trust_remote_code=trust_remote_code, score_batch_size=score_batch_size)
    budget_policy(router, budget, policy if policy != "calibrated" else "budget", policy_options)  # refuse early
    traffic = read_traffic(log, router_name)
    version = router.version
    models = list(router.models)
    rows: list[Any] = [None] * len(traffic.lines)
    texts = [(i, t.prompt) for i, t in enumerate(traffic.lines) if t.prompt is not None]
    if texts:
        s = router.scores([p for _, p in texts], quality=True)
        if s.quality is None:
            raise TelaError(f"{router_dir}: family {router.manifest.get('scorer')!r} predicts no per-model quality")
        cols = list(s.models or models)
        for (i, _), row in zip(texts, np.asarray(s.quality, dtype=float)):
            rows[i] = [row[cols.index(m)] for m in models]
    for i, t in enumerate(traffic.lines):
        if rows[i] is not None:
            continue
        if t.version is not None and t.version != version:
            raise InputError(
                Path(log),
                t.lineno,
                f"this request was scored by router version {t.version}, and {router_dir} is version {version}; "
                "the log holds no prompt text to score it again (serve with log_prompts: true)",
            )
        if t.quality is None or any(m not in t.quality for m in models):
            raise InputError(
                Path(log),
                t.lineno,
                "a request logged without its text or every model's predicted quality; a budget is calibrated on "
                "each model's predicted quality (serve with log_prompts: true)",
            )
        rows[i] = [t.quality[m] for m in models]
    how = f"{len(texts)} rescored with version {version}" + (
        f", {len(rows) - len(texts)} as logged" if len(texts) < len(rows) else ""
    )
    name = policy if policy != "calibrated" else "budget"
    done = calibrate_budget(
        router, np.array(rows, dtype=float), models, budget, f"{log} (traffic of {traffic.router}; {how})", name,
        policy_options,
    )  # fmt: skip
    done.update(router=traffic.router, rescored=len(texts), version=version)
    return done


def calibration_line(done: dict[str, Any], target: str, where: Path, how: str | None = None) -> str:
    """What ``tela calibrate`` says it saved: the threshold and its share, or the budget's λ and cost,
    on ``target`` (``calibration prompts``; ``how`` they were scored, for traffic)."""
    o = done["options"]
    how = f"{how}; " if how else ""
    if "budget" in o:
        return (
            f"budget ${o['budget']:.4g} per 1,000 requests: λ {o['lam']:.4g} spends ${o['achieved_cost']:.4g} per "
            f"1,000 on {o['calibration_prompts']} {target} ({how}models picked from their predicted quality among "
            f"{len(done['models'])}); saved to {where / 'policy.json'}{_replacing(done)}"
        )
    return (
        f"threshold {o['threshold']:.6f}: {o['achieved_share']:.3f} of {o['calibration_prompts']} {target} go to the "
        f"strong model ({how}target {o['strong_share']}); saved to {where / 'policy.json'}{_replacing(done)}"
    )


def _replacing(done: dict[str, Any]) -> str:
    """Which saved policy the calibration replaced ("(was calibrated)" read as if it had been calibrated)."""
    return f" (replacing its {done['previous']} policy)" if done.get("previous") else ""
