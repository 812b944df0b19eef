"""``GET /metrics``: what the server did, in Prometheus' text format (prometheus-client).

============================================  ======================================================
metric                                        what it counts
============================================  ======================================================
``tela_requests_total{router,model,status}``  chat requests by router (``none`` when a client named
                                              an upstream), the model that answered, HTTP status
``tela_routing_seconds{router}``              time from request to routing decision (histogram)
``tela_upstream_seconds{model}``              time the upstream took, to the last byte (histogram)
``tela_upstream_errors_total{model,reason}``  upstream failures (``timeout``, ``connect``, ``status``)
``tela_fallbacks_total{router,from,to}``      requests sent to the other model after a failure
``tela_strong_share{router}``                 share of the last 1,000 routed requests (this process)
                                              that went to the router's strongest model
``tela_routed_total{router,model}``           routing decisions by chosen model (cluster-wide strong
                                              share: sum by model over all replicas)
``tela_tokens_total{model,kind}``             input/output tokens the upstreams reported
``tela_estimated_cost_dollars_total{model}``  tokens x the upstream's configured prices
``tela_batch_size{router}``                   prompts per scorer call (histogram)
``tela_shadow_requests_total{router}``        shadowed requests written to the shadow log
``tela_shadow_dropped_total{router,reason}``  sampled requests not shadowed: ``queue_full``, or
                                              ``shutdown`` (still queued when the server stopped)
``tela_shadow_failed_total{router,model}``    shadow calls that failed (recorded with their error)
``tela_shadow_calls_total{router,model}``     shadow calls made, by the model asked
``tela_shadow_sampled_total{router,sampling}`` routed requests shadow mode sampled (``uniform`` or
                                              ``uncertainty``)
``tela_shadow_share{router}``                 share of the last 1,000 routed requests (this process)
                                              that shadow mode sampled
``tela_shadow_estimated_cost_dollars_total``  what the shadow calls cost (tokens x prices), by model
``tela_router_reloads_total{router,result}``  hot reloads of a router: ``ok`` or ``failed`` (the old
                                              router kept)
``tela_router_version{router,version,id}``    1 for the version each router serves (``version``: its
                                              name in a versions folder, ``v3``, or empty; ``id``:
                                              its tela.json hash), 0 for the ones it served before
``tela_log_lines_lost_total{log}``            lines that could not be written (a full disk) to the
                                              ``decision``, ``shadow`` or ``feedback`` log
``tela_embedding_cache_total{result}``        embedding families' vector lookups in the serving LRU
                                              (``embedding_cache``): ``hit`` or ``miss``
``tela_feedback_total{router,result}``        ``POST /v1/feedback`` verdicts: ``accepted``, or why
                                              not (``unknown_request_id``, ``expired_request_id``,
                                              ``no_answer``, ``unauthorized``, ``invalid_score``, ...);
                                              router ``unknown`` for an id another process issued,
                                              ``none`` for a request passed through unrouted
``tela_feedback_score_total{router}``         sum of the accepted scores (mean: / accepted)
``tela_guard_quality{router,version}``        the guard's live quality of a version: mean score of
                                              its sliding window (this process; :mod:`.guard`)
``tela_guard_window{router,version}``         scores in that window
``tela_guard_regressed{router}``              1 while the current version is worse than the
                                              previous one beyond the guard's bound, else 0
``tela_guard_rollback_total{router,result}``  automatic rollbacks (``guard_rollback``): ``ok``,
                                              ``skipped`` (done elsewhere first) or ``failed``
============================================  ======================================================

With ``--workers N`` the processes share one directory of metric files
(``PROMETHEUS_MULTIPROC_DIR``, which ``tela serve`` sets), so a scrape of any worker sees the
totals of all; ``tela_strong_share`` is then one series per live process (label ``pid``).
prometheus-client is imported when the server starts, not with tela.
"""

from __future__ import annotations

import collections
import os
from typing import Any

from tela_core.models.vector_cache import serving_cache

__all__ = ["ServeMetrics", "MULTIPROC_ENV"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_WINDOW = 1000


class ServeMetrics:
    """The server's Prometheus metrics, on a registry of their own (so that several apps in one
    process, as in tests, do not collide)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tela_requests",
            "Chat requests by router, answering model and HTTP status",
            ["router", "model", "status"],
            registry=r,
        )
        self.routing_seconds = Histogram(
            "tela_routing_seconds", "Time to a routing decision", ["router"], buckets=_TIME_BUCKETS, registry=r
        )
        self.upstream_seconds = Histogram(
            "tela_upstream_seconds", "Upstream time to the last byte", ["model"], buckets=_TIME_BUCKETS, registry=r
        )
        self.upstream_errors = Counter("tela_upstream_errors", "Upstream failures", ["model", "reason"], registry=r)
        self.fallbacks = Counter(
            "tela_fallbacks",
            "Requests sent to the other model after an upstream failure",
            ["router", "from_model", "to_model"],
            registry=r,
        )
        self.routed = Counter("tela_routed", "Routing decisions by chosen model", ["router", "model"], registry=r)
        self.strong_share = Gauge(
            "tela_strong_share",
            f"Share of the last {_WINDOW} routed requests sent to the strongest model (this process)",
            ["router"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.tokens = Counter("tela_tokens", "Tokens reported by upstreams", ["model", "kind"], registry=r)
        self.cost = Counter(
            "tela_estimated_cost_dollars", "Estimated cost: tokens x configured prices", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "tela_batch_size", "Prompts per scorer call", ["router"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.shadowed = Counter(
            "tela_shadow_requests", "Shadowed requests written to the shadow log", ["router"], registry=r
        )
        self.shadow_dropped = Counter(
            "tela_shadow_dropped",
            "Sampled requests not shadowed (queue full, or server stopping)",
            ["router", "reason"],
            registry=r,
        )
        self.shadow_failed = Counter("tela_shadow_failed", "Shadow calls that failed", ["router", "model"], registry=r)
        self.shadow_calls = Counter(
            "tela_shadow_calls", "Shadow calls made, by the model asked", ["router", "model"], registry=r
        )
        self.shadow_sampled_total = Counter(
            "tela_shadow_sampled", "Routed requests shadow mode sampled", ["router", "sampling"], registry=r
        )
        self.shadow_share = Gauge(
            "tela_shadow_share",
            f"Share of the last {_WINDOW} routed requests shadow mode sampled (this process)",
            ["router"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.shadow_cost = Counter(
            "tela_shadow_estimated_cost_dollars",
            "Estimated cost of the shadow calls: tokens x configured prices",
            ["model"],
            registry=r,
        )
        self.reloads = Counter(
            "tela_router_reloads",
            "Hot reloads of a router, by result (failed: the old router kept)",
            ["router", "result"],
            registry=r,
        )
        self.router_version = Gauge(
            "tela_router_version",
            "1 for the version each router serves (version: its name in a versions folder; id: tela.json hash)",
            ["router", "version", "id"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.log_lines_lost = Counter(
            "tela_log_lines_lost",
            "Lines that could not be written to the decision, shadow or feedback log",
            ["log"],
            registry=r,
        )
        self.embedding_cache = Counter(
            "tela_embedding_cache",
            "Vector lookups in the serving LRU of the embedding families",
            ["result"],
            registry=r,
        )
        self.feedback = Counter(
            "tela_feedback",
            "Feedback verdicts by router and result (accepted, or why not)",
            ["router", "result"],
            registry=r,
        )
        self.feedback_score = Counter(
            "tela_feedback_score", "Sum of the accepted feedback scores", ["router"], registry=r
        )
        self.guard_quality = Gauge(
            "tela_guard_quality",
            "Mean feedback score of a router version's sliding window (this process)",
            ["router", "version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.guard_window = Gauge(
            "tela_guard_window",
            "Scores in a router version's sliding window (this process)",
            ["router", "version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.guard_regressed = Gauge(
            "tela_guard_regressed",
            "1 while the current version is worse than the previous one beyond the guard's bound",
            ["router"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.guard_rollbacks = Counter(
            "tela_guard_rollback", "Automatic rollbacks by the guard, by result", ["router", "result"], registry=r
        )
        self._recent: dict[str, collections.deque[bool]] = {}
        self._shadow_recent: dict[str, collections.deque[bool]] = {}
        self.count_embedding_cache()

    def count_embedding_cache(self) -> None:
        """Count this process's serving LRU lookups here, however the routers were loaded: ``tela
        serve`` loads them before it creates the app (so the loader had no metrics to hand them,
        and 4,000 kNN requests left ``tela_embedding_cache_total`` without a sample). A new LRU
        (``serving_cache(capacity)``) keeps its listeners. One app serves a process, so the
        newest one's metrics replace an earlier app's (tests build many in one process)."""
        lru = serving_cache()
        lru.listeners[:] = [f for f in lru.listeners if not isinstance(getattr(f, "__self__", None), ServeMetrics)]
        lru.listeners.append(self.embedding_cache_listener)

    def embedding_cache_listener(self, hits: int, misses: int) -> None:
        """Count one LRU lookup (:class:`tela_core.models.vector_cache.VectorLRU` calls it)."""
        if hits:
            self.embedding_cache.labels("hit").inc(hits)
        if misses:
            self.embedding_cache.labels("miss").inc(misses)

    def observe_batch(self, router: str, size: int, seconds: float) -> None:
        """Count one scorer call of ``size`` prompts (a batcher's ``on_batch``, with ``router`` bound)."""
        self.batch_size.labels(router).observe(size)

    def routed_to(self, router: str, model: str, strongest: bool) -> None:
        self.routed.labels(router, model).inc()
        recent = self._recent.setdefault(router, collections.deque(maxlen=_WINDOW))
        recent.append(strongest)
        self.strong_share.labels(router).set(sum(recent) / len(recent))

    def shadow_sampled(self, router: str, sampling: str, sampled: bool) -> None:
        """Count one routed request shadow mode considered (``sampled`` or not)."""
        if sampled:
            self.shadow_sampled_total.labels(router, sampling).inc()
        recent = self._shadow_recent.setdefault(router, collections.deque(maxlen=_WINDOW))
        recent.append(sampled)
        self.shadow_share.labels(router).set(sum(recent) / len(recent))

    def usage(
        self, model: str, prompt_tokens: int | None, completion_tokens: int | None, price_in: float, price_out: float
    ) -> float | None:
        """Count tokens and cost; the cost in dollars, or None without a usage report."""
        if prompt_tokens is None and completion_tokens is None:
            return None
        pin, pout = int(prompt_tokens or 0), int(completion_tokens or 0)
        self.tokens.labels(model, "input").inc(pin)
        self.tokens.labels(model, "output").inc(pout)
        cost = (pin * price_in + pout * price_out) / 1e6
        if cost:
            self.cost.labels(model).inc(cost)
        return cost

    def exposition(self) -> tuple[bytes, str]:
        """The text to serve at ``/metrics`` and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            reg: Any = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            return generate_latest(reg), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
