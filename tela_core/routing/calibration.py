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

__all__ = ["TrafficLine", "read_traffic", "calibrate_on_traffic"]


@dataclass
class TrafficLine:
    """One freshly routed request of a decision log."""

    lineno: int
    w: float
    prompt: str | None
    version: str | None


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
        by_router.setdefault(name, []).append(TrafficLine(lineno, float(w), prompt, version))
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
    strong_share: float,
    router_name: str | None = None,
    policy: str = "calibrated",
    policy_options: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
) -> dict[str, Any]:
    """Set ``router_dir``'s threshold so ``strong_share`` of the logged traffic would go to the
    strong model under *this* router's scores, and save it as its ``policy``. Returns what was
    saved, from how many requests, how many were rescored, and the warnings to show."""
    import numpy as np

    if not 0.0 <= strong_share <= 1.0:
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
