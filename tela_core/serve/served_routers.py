"""The routers one ``tela serve`` process serves: loaded once, each with its batcher and the
upstream each of its models goes to, set up for serving (no vector cache, torch threads, CPU
batch sizes)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tela_core.infra.errors import TelaError
from tela_core.models import vector_cache
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest
from tela_core.routing.router import PLACEHOLDER_MODELS, Router

from .batcher import Batcher
from .config import ConfigError, ServeConfig

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.routing.router import Router

    from .batcher import Batcher
    from .metrics import ServeMetrics

__all__ = ["ServedRouter", "load_routers", "load_router", "mark_version"]

log = logging.getLogger("tela.serve")


@dataclass
class ServedRouter:
    """A loaded router, its batcher, and the upstream each of its models goes to."""

    name: str
    router: Router
    batcher: Batcher
    upstream_of: dict[str, str]  # router model name -> upstream name
    strongest: str
    shadow: float = 0.0  # share of requests shadow mode samples

    def fallback_for(self, model: str) -> str | None:
        """The other model to try when ``model``'s upstream fails: the strongest, or, when the
        strongest failed, the one below it."""
        models = self.router.models
        other = models[-1] if model != models[-1] else models[-2]
        return other if other != model else None

    def fallback_order(self, model: str, quality: Mapping[str, float] | None = None) -> list[str]:
        """The models to try, in turn, when ``model``'s upstream fails: for two models the other one
        (:meth:`fallback_for`); for N models the others by the request's predicted ``quality``,
        highest first (a tie, or a model without a prediction: the stronger first, as with no
        prediction at all)."""
        models = self.router.models
        if len(models) <= 2:
            other = self.fallback_for(model)
            return [other] if other is not None else []
        rank = {m: i for i, m in enumerate(models)}
        others = [m for m in models if m != model]
        if not quality:
            return sorted(others, key=lambda m: -rank[m])
        return sorted(others, key=lambda m: (-float(quality.get(m, -1.0)), -rank[m]))


def load_routers(config: ServeConfig, metrics: ServeMetrics | None = None) -> dict[str, ServedRouter]:
    """Load every configured router and start its batcher thread. Config errors (a router model
    with no upstream) name the key."""
    return {name: load_router(config, name, metrics) for name in config.routers}


def load_router(config: ServeConfig, name: str, metrics: ServeMetrics | None = None) -> ServedRouter:
    """Load router ``name`` from its folder, as it is now, and start its batcher thread: at start,
    and again on a hot reload (:mod:`.reload`). Raises on a router that cannot be served (a
    damaged folder, a model count that does not match its upstreams), naming what is wrong."""
    _serving_mode(config, metrics)
    rc = config.routers[name]
    sbs = rc.score_batch_size if rc.score_batch_size is not None else _cpu_batch_size(rc.path)
    # the batch size reaches the family in load()'s LoadContext; nothing is patched after load
    router = Router.load(rc.path, trust_remote_code=config.trust_remote_code, score_batch_size=sbs)
    models = router.models
    if router.knob is not None:  # an N-model policy: one decision now, not a 500 on every request
        try:
            router.decide(["Is this router able to route?"])
        except TelaError as e:
            raise ConfigError(f"{config.source}: routers.{name}: {router.path}: cannot route: {e}") from None
    if rc.upstreams is not None:
        if len(rc.upstreams) != len(models):
            raise ConfigError(
                f"{config.source}: routers.{name}.upstreams: the router routes between {len(models)} models "
                f"({', '.join(models)}); name {len(models)} upstreams, cheap -> strong"
            )
        upstream_of = dict(zip(models, rc.upstreams))
        if len(models) > 2:  # a later version may order the same models otherwise (cheap -> strong by its costs)
            upstream_of = _by_name(config, models, rc.upstreams) or upstream_of
        _warn_pair(config, name, router.path, models, [upstream_of[m] for m in models])
    else:
        missing = [m for m in models if m not in config.upstreams]
        if missing:
            raise ConfigError(
                f"{config.source}: routers.{name}.upstreams: the router routes between {', '.join(models)}, and "
                f"{', '.join(missing)} is not an upstream; list one upstream per model, cheap -> strong"
            )
        upstream_of = {m: m for m in models}

    on_batch = functools.partial(metrics.observe_batch, name) if metrics is not None else None
    batcher = Batcher(
        router,
        window=config.batch_window_ms / 1000.0,
        max_batch=config.max_batch,
        on_batch=on_batch,
        name=name,
        inline_below_ms=config.inline_below_ms,
        length_ratio=config.length_ratio,
    )
    _limit_torch_threads(config)
    if metrics is not None:
        mark_version(metrics, name, router)
    return ServedRouter(name, router, batcher, upstream_of, strongest=models[-1], shadow=config.shadow_rate(name))


def mark_version(metrics: ServeMetrics, name: str, router: Router) -> None:
    """``tela_router_version``: 1 for the version ``name`` now serves, 0 for those it served before
    (called once the router has loaded, just before it is swapped in)."""
    gauge = metrics.router_version
    for family in gauge.collect():
        for sample in family.samples:
            if sample.labels.get("router") == name and sample.value:
                gauge.labels(**sample.labels).set(0)
    gauge.labels(name, router.version_name or "", router.version).set(1)


def _serves(config: ServeConfig, model: str, upstream: str) -> bool:
    """Whether ``upstream`` is ``model``: by its name, or by the model id it calls."""
    uc = config.upstreams.get(upstream)
    return model == upstream or (uc is not None and model == (uc.model or upstream))


def _by_name(config: ServeConfig, models: list[str], upstreams: list[str]) -> dict[str, str] | None:
    """Each router model to the one listed upstream that is that model (by name or model id); None
    unless every model has exactly one."""
    out: dict[str, str] = {}
    for m in models:
        hits = [u for u in upstreams if _serves(config, m, u)]
        if len(hits) != 1:
            return None
        out[m] = hits[0]
    return out if len(set(out.values())) == len(models) else None


def _warn_pair(config: ServeConfig, name: str, path: object, models: list[str], upstreams: list[str]) -> None:
    """Warn (one line, naming both) when the models the router was trained on are not the
    upstreams it serves, cheap -> strong: each router model should be its upstream's name or
    model id. Its scores say when its cheap model needs its strong one; with other models, or
    the two swapped, they may not hold. Routers that name no pair (``weak``, ``strong``) are
    not checked."""
    if tuple(models) == PLACEHOLDER_MODELS:
        return

    def serves(model: str, upstream: str) -> bool:
        return _serves(config, model, upstream)

    if all(serves(m, u) for m, u in zip(models, upstreams)):
        return
    ids = [
        f"{u} (model {config.upstreams[u].model})"
        if u in config.upstreams and config.upstreams[u].model not in (None, u)
        else u
        for u in upstreams
    ]
    swapped = len(models) == len(upstreams) and all(serves(m, u) for m, u in zip(models, reversed(upstreams)))
    where = (
        f"{config.source}: routers.{name}.upstreams" if config.source != "flags" else f"router {name} (--weak/--strong)"
    )
    log.warning(
        "%s: router %s was trained on %s but serves %s%s: its scores hold for the models it was trained on; "
        "check the upstreams are those (or alike), cheap -> strong",
        where,
        path,
        " < ".join(models),
        " < ".join(ids),
        " (the same models, swapped)" if swapped else "",
    )


def _cpu_batch_size(path: str) -> int | None:
    """1 for a family that runs a model in batches (its options have ``batch_size``) when no GPU
    is visible, else None (the family's default). On a CPU a padded batch costs more per prompt
    than it saves: lm-probe served 32 clients at 4.1-5.2 req/s with batches of 8 against 4.9-5.7
    with batch 1 (bench/serve_overhead.py). The micro-batcher still hands every waiting prompt to
    one scorer call; the family then runs them one forward pass each."""
    try:
        cls = get_registry().get("scorer", read_manifest(path)["scorer"])
    except Exception:  # Router.load reports it properly
        return None
    if "batch_size" not in getattr(cls.Options, "model_fields", {}):
        return None
    try:
        import torch
    except ImportError:
        return None
    return None if torch.cuda.is_available() else 1


def _limit_torch_threads(config: ServeConfig) -> None:
    """Leave a core to the event loop. torch's default (a thread per core) on a busy machine makes
    its threads wait for each other: an embedding scored 8x slower with 2 threads than with 1 on
    this project's 2-core machine under load. numpy's BLAS gets the same budget: a kNN router's
    neighbour search (one prompt against 11k vectors) took 5.8 ms p50 with OpenBLAS's two threads
    and 0.71 ms with one (model2vec embedder, in process)."""
    import sys

    n = config.torch_threads or max(1, (os.cpu_count() or 1) // max(1, config.workers) - 1)
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn (tela[zoo])

        threadpool_limits(n, user_api="blas")
    except ImportError:
        pass
    if "torch" not in sys.modules:
        return
    sys.modules["torch"].set_num_threads(n)


def _serving_mode(config: ServeConfig, metrics: ServeMetrics | None = None) -> None:
    """Live prompts are scored once: embedding families must not read or grow their shard cache;
    they keep the last ``embedding_cache`` prompts' vectors in memory instead (an LRU whose hits
    and misses ``/metrics`` counts)."""
    vector_cache.use_shard_cache(False)
    lru = vector_cache.serving_cache()
    if lru.capacity != config.embedding_cache:  # a hot reload keeps the vectors already cached
        lru = vector_cache.serving_cache(config.embedding_cache)
    if metrics is not None and metrics.embedding_cache_listener not in lru.listeners:
        lru.listeners.append(metrics.embedding_cache_listener)
