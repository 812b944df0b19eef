"""The guard: live quality per router version, and a warning (or a rollback) when a new one is worse.

With ``guard: true`` (and a ``feedback_log``: the guard listens to ``POST /v1/feedback``) each
server process keeps, per router and version, a sliding window of the last ``guard_window`` scores
given to the answers that version routed: users' verdicts (``source: user``) and judges' labels of
shadowed requests sent back through the same endpoint (``source: judge``). A verdict counts for the
version that routed the request, even when it arrives after a reload; a second verdict on the same
request replaces the first.

The *current* version of a router is the one this process serves now, the *previous* one the
version it served before (seen in this process: after a restart the guard waits for a new version).
Once both windows hold ``guard_min`` scores, the guard fires when the current version's mean is
below the previous one's by more than ``guard_margin`` *and* by more than two standard errors of
the difference (so a small window's noise does not fire it). Then:

- ``/metrics`` says so: ``tela_guard_regressed{router}`` is 1 (0 otherwise), beside
  ``tela_guard_quality{router,version}`` and ``tela_guard_window{router,version}``;
- the server log says so in one ``WARNING`` line with both means, the drop and the bound;
- with ``guard_rollback: true`` (off by default) and a router served from a versions folder
  (:mod:`tela_core.routing.versions`) whose version before the current one is the previous version,
  the guard rolls the folder back (a ``rollback`` step with a record saying why, the folder's lock
  held, as ``tela rollback`` does) and reloads the router; ``tela_guard_rollback_total{router,result}``
  counts it (``ok``; ``skipped`` when the folder had moved on: another worker or replica rolled it
  back first, or its version before the current one is not the previous version; ``failed``: the
  folder could not be rolled back, or the version it went back to did not load here, which the log
  says with the version still served).
  Other replicas follow the versions folder as they follow any rollback.

Limits: each process judges from the verdicts it received (with ``--workers N`` or replicas, each
sees its share); a verdict for an id another process issued carries no version and is not counted.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import ServeConfig

__all__ = ["Guard", "Comparison", "compare_windows", "rollback_versions"]

log = logging.getLogger("tela.serve")


@dataclass(frozen=True)
class Comparison:
    """The current version's window against the previous one's."""

    current: str
    previous: str
    mean_current: float
    mean_previous: float
    n_current: int
    n_previous: int
    drop: float
    bound: float
    fired: bool

    def describe(self, router: str) -> str:
        return (
            f"router-{router} version {self.current} scores {self.mean_current:.3f} on its last {self.n_current} "
            f"verdicts, below version {self.previous}'s {self.mean_previous:.3f} (last {self.n_previous}) by "
            f"{self.drop:.3f}, beyond the bound {self.bound:.3f}"
        )


_ROUNDING = 1e-9  # a drop this small is the sums' rounding, not a worse version


def _mean_var(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return mean, var


def compare_windows(
    current: str, cur: list[float], previous: str, prev: list[float], margin: float, minimum: int
) -> Comparison | None:
    """None until both windows hold ``minimum`` scores; else the comparison, ``fired`` when the
    current mean is lower by more than ``margin`` and by more than two standard errors."""
    if len(cur) < minimum or len(prev) < minimum:
        return None
    mc, vc = _mean_var(cur)
    mp, vp = _mean_var(prev)
    se = math.sqrt(vc / len(cur) + vp / len(prev))
    drop = mp - mc
    bound = max(margin, 2.0 * se)
    # rounding: with guard_margin 0, two windows of the very same scores differ by ~1e-16
    return Comparison(current, previous, mc, mp, len(cur), len(prev), drop, bound, drop > bound + _ROUNDING)


class Guard:
    """The guard of one server process (see the module's text)."""

    def __init__(
        self,
        config: ServeConfig,
        server: Any,  # the process's tela_core.serve.server.Server (not imported: it holds this)
        reload: Callable[[list[str]], Awaitable[Any]] | None = None,
    ) -> None:
        self.server = server
        self.size = int(config.guard_window)
        self.minimum = min(int(config.guard_min), self.size)
        self.margin = float(config.guard_margin)
        self.rollback = bool(config.guard_rollback)
        self.reload = reload
        self.windows: dict[tuple[str, str], collections.OrderedDict[str, float]] = {}
        self.current: dict[str, str] = {}
        self.previous: dict[str, str] = {}
        self.fired: dict[str, Comparison] = {}
        self._served: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        for name in config.routers:
            server.metrics.guard_regressed.labels(name).set(0)

    # -- which version serves ---------------------------------------------------------------------

    def serving(self, router: str) -> None:
        """Note a change of the served router (a reload): its version becomes current, the one
        before previous. Cheap: called for every answered request."""
        served = self.server.routers.get(router)
        if served is None or served is self._served.get(router):
            return
        self._served[router] = served
        r = served.router
        version = getattr(r, "version_name", None) or r.version
        before = self.current.get(router)
        if version == before:
            return
        if before is not None:
            self.previous[router] = before
        self.current[router] = version
        if router in self.fired:
            del self.fired[router]
            self.server.metrics.guard_regressed.labels(router).set(0)
        self.check(router)

    # -- verdicts -------------------------------------------------------------------------------

    def observe(self, router: str, version: str, rid: str, score: float, previous: float | None = None) -> None:
        """One verdict on a request ``version`` of ``router`` routed (a repeat replaces the first)."""
        self.serving(router)
        window = self.windows.setdefault((router, version), collections.OrderedDict())
        window.pop(rid, None)
        window[rid] = score
        while len(window) > self.size:
            window.popitem(last=False)
        m = self.server.metrics
        m.guard_quality.labels(router, version).set(sum(window.values()) / len(window))
        m.guard_window.labels(router, version).set(len(window))
        self.check(router)

    def compare(self, router: str) -> Comparison | None:
        cur, prev = self.current.get(router), self.previous.get(router)
        if cur is None or prev is None:
            return None
        wc, wp = self.windows.get((router, cur)), self.windows.get((router, prev))
        if not wc or not wp:
            return None
        return compare_windows(cur, list(wc.values()), prev, list(wp.values()), self.margin, self.minimum)

    def check(self, router: str) -> None:
        c = self.compare(router)
        was = self.fired.get(router)
        if c is not None and c.fired:
            if was is None or was.current != c.current:
                self.fired[router] = c
                self.server.metrics.guard_regressed.labels(router).set(1)
                log.warning("guard: %s", c.describe(router))
                if self.rollback:
                    self._start_rollback(router, c)
        elif was is not None:
            del self.fired[router]
            self.server.metrics.guard_regressed.labels(router).set(0)
            log.info(
                "guard: router-%s version %s no longer below version %s's bound", router, was.current, was.previous
            )

    # -- rollback -------------------------------------------------------------------------------

    def _start_rollback(self, router: str, c: Comparison) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - verdicts arrive on the event loop
            return
        task = loop.create_task(self._rollback(router, c))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rollback(self, router: str, c: Comparison) -> None:
        m = self.server.metrics
        served = self.server.routers.get(router)
        folder = getattr(served.router, "versions_dir", None) if served is not None else None
        if folder is None:
            log.error("guard: cannot roll router-%s back: it is not served from a versions folder", router)
            m.guard_rollbacks.labels(router, "failed").inc()
            return
        try:
            done = await asyncio.to_thread(rollback_versions, folder, c)
        except Exception as e:
            log.error("guard: rolling router-%s back failed: %s", router, " ".join(str(e).split())[:300])
            m.guard_rollbacks.labels(router, "failed").inc()
            return
        if done:
            log.warning("guard: rolled router-%s back from %s to %s", router, c.current, c.previous)
        if self.reload is not None:
            result = (await self.reload([router])).get(router) or {}
            if not result.get("ok"):  # the folder went back, this process did not: say so, count it failed
                log.error(
                    "guard: router-%s: the versions folder is at %s but it did not load here (%s): still serving %s",
                    router,
                    c.previous,
                    result.get("error", "not reloaded"),
                    c.current,
                )
                m.guard_rollbacks.labels(router, "failed").inc()
                return
        m.guard_rollbacks.labels(router, "ok" if done else "skipped").inc()

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def rollback_versions(folder: str | Path, c: Comparison) -> bool:
    """Roll the versions folder back from ``c.current`` to ``c.previous`` with a record of why, the
    folder's lock held. False (nothing changed) when another process did it already or when the
    version before the current one is not ``c.previous``."""
    from tela_core.routing import versions as v

    folder = Path(folder)
    with v.versions_lock(folder):
        state = v.read_state(folder)
        if state.current != c.current or not state.earlier or state.earlier[-1] != c.previous:
            log.info(
                "guard: %s: current %s, before it %s: no rollback from %s to %s",
                folder,
                state.current,
                state.earlier[-1] if state.earlier else None,
                c.current,
                c.previous,
            )
            return False
        v.recover(folder)  # what a killed promote or rollback left
        path = v.next_record_path(folder, "rollback", c.previous)
        rel = str(path.relative_to(folder))
        v.record_step(  # the record is in place only once versions.json names the step
            path,
            {  # the shape of `tela rollback`'s record (tela_core.cli.promote_cmd), said to be the guard's
                "action": "rollback",
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "from": c.current,
                "to": c.previous,
                "reason": "guard",
                "decision": "rollback",
                "by": "guard",
                "why": c.describe(folder.name),
                "version": c.previous,
                "record": str(path.relative_to(folder)),
                "numbers": {
                    "mean_current": c.mean_current,
                    "mean_previous": c.mean_previous,
                    "n_current": c.n_current,
                    "n_previous": c.n_previous,
                    "drop": c.drop,
                    "bound": c.bound,
                },
            },
            lambda: v.set_current(folder, c.previous, "rollback", record=rel, by="guard"),
        )
    return True
