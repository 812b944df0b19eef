"""Hot reload: a retrained or recalibrated router takes effect in a running ``tela serve``.

Triggers: ``SIGHUP`` to the server process (which also opens the decision and shadow logs again,
for log rotation), or ``POST /admin/reload`` with the admin token
(``admin_token_env``; without one configured the endpoint answers 403). Each router's folder is
loaded again, as it is now, on a thread (the event loop keeps answering), and the new router
replaces the old one in one step on the event loop. A request looks its router up once and, with
no pause in between, hands its prompt to that router's batcher; so a request in flight finishes
on the router it started with, and the old router's thread stops only after the prompts it was
given. A router that fails to load (a damaged folder, a model count that no longer matches its
upstreams) is not swapped: the old one keeps serving, and the reason goes to the server log, the
endpoint's answer and ``tela_router_reloads_total{result="failed"}``.

With ``--workers N`` each worker is its own process: ``SIGHUP`` to the main process makes uvicorn
replace the workers one by one (each new worker loads the routers before it takes a connection; a
worker that cannot load them is not swapped in, and the old ones keep serving), and
``POST /admin/reload`` on any worker first loads the routers there to check them, then asks the
main process for that rolling restart.

A router served from a versions folder (:mod:`tela_core.routing.versions`) is *followed*: every
``follow_versions_s`` seconds (default 2) each server process looks at the folder's
``versions.json`` (one ``stat``; the file is read only when it changed) and, when the current
version is no longer the one it serves (``tela promote``, ``tela rollback``), reloads that router
as above (trigger ``follow``). Every replica behind a load balancer thus serves the new version
within that interval, with no call to reach it. A version that does not load is not retried until
the file changes again; the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.routing.versions import VERSIONS_FILE, is_versions_dir, read_state

from .served_routers import load_router

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["Reloader"]

log = logging.getLogger("tela.serve")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, TelaError) and text else f"{type(e).__name__}: {text}" if text else type(e).__name__


class Reloader:
    """Reloads the routers of one server process, one reload at a time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[Any]] = set()
        self._follow_task: asyncio.Task[None] | None = None

    async def reload(self, names: list[str] | None = None, trigger: str = "admin") -> dict[str, dict[str, Any]]:
        """Load ``names`` (default: every router) again from their folders and swap each one that
        loads; what happened to each, by name: ``{"ok": True, "path", "loaded" (``path`` with its
        links resolved: the version loaded), "scorer", "policy",
        "models", "load_s", "swapped_at"}`` (``swapped_at``: Unix time of the swap) or
        ``{"ok": False, "error": WHY}`` (the old router kept)."""
        s = self.server
        async with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for name in names or list(s.config.routers):
                t0 = time.perf_counter()
                try:
                    new = await asyncio.to_thread(load_router, s.config, name, s.metrics)
                except Exception as e:  # whatever a damaged folder raises: keep the old router
                    why = _one_line(e)
                    log.error(
                        "reload (%s): router %s did not load, still serving the one loaded before: %s",
                        trigger,
                        name,
                        why,
                    )
                    s.metrics.reloads.labels(name, "failed").inc()
                    out[name] = {"ok": False, "error": why}
                    continue
                old = s.routers.get(name)
                s.routers[name] = new  # one step on the event loop: later requests see the new router
                swapped_at = time.time()
                s.metrics.reloads.labels(name, "ok").inc()
                out[name] = {**_describe(new, time.perf_counter() - t0), "swapped_at": round(swapped_at, 6)}
                log.info(
                    "reload (%s): router %s reloaded from %s (policy %s)",
                    trigger,
                    name,
                    new.router.path,
                    new.router.policy_spec.get("name"),
                )
                if old is not None:
                    self._retire(old)
            return out

    async def check(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Load ``names`` (default: every router) to see whether they would load, without swapping."""
        s = self.server
        out: dict[str, dict[str, Any]] = {}
        for name in names or list(s.config.routers):
            t0 = time.perf_counter()
            try:
                probe = await asyncio.to_thread(load_router, s.config, name, None)
            except Exception as e:
                why = _one_line(e)
                log.error("reload check: router %s did not load, nothing restarted: %s", name, why)
                s.metrics.reloads.labels(name, "failed").inc()
                out[name] = {"ok": False, "error": why}
                continue
            out[name] = _describe(probe, time.perf_counter() - t0)
            await asyncio.to_thread(probe.batcher.close, 5.0)
        return out

    def _retire(self, old: Any) -> None:
        """Stop the old router's thread once it has scored what it was handed (off the loop)."""
        task = asyncio.ensure_future(asyncio.to_thread(old.batcher.close, 60.0))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- following versions folders ---------------------------------------------------------------

    def start_following(self) -> list[str]:
        """Follow the routers served from a versions folder (module doc); the names followed
        (none when ``follow_versions_s`` is 0 or no router comes from a versions folder)."""
        s = self.server
        every = float(getattr(s.config, "follow_versions_s", 2.0) or 0.0)
        folders = {n: rc.path for n, rc in s.config.routers.items() if is_versions_dir(rc.path)}
        if every <= 0 or not folders:
            return []
        self._follow_task = asyncio.ensure_future(self._follow(folders, every))
        return list(folders)

    async def _follow(self, folders: dict[str, str], every: float) -> None:
        seen: dict[str, tuple[int, int, int] | None] = dict.fromkeys(folders)
        while True:
            await asyncio.sleep(every)
            for name, folder in folders.items():
                try:
                    await self._follow_one(name, folder, seen)
                except asyncio.CancelledError:
                    raise
                except Exception:  # pragma: no cover - following never stops the server
                    log.exception("following the versions folder %s failed", folder)

    async def _follow_one(self, name: str, folder: str, seen: dict[str, tuple[int, int, int] | None]) -> None:
        try:
            st = os.stat(os.path.join(folder, VERSIONS_FILE))
        except OSError as e:
            log.warning(
                "versions folder %s: %s unreadable (%s); still serving what was loaded", folder, VERSIONS_FILE, e
            )
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if seen.get(name) == stamp:
            return
        seen[name] = stamp
        try:
            current = await asyncio.to_thread(lambda: read_state(folder).current)
        except TelaError as e:
            log.warning("versions folder %s: %s; still serving what was loaded", folder, e)
            return
        served = self.server.routers.get(name)
        had = getattr(served.router, "version_name", None) if served is not None else None
        if current is None or current == had:
            return
        log.info(
            "versions folder %s: current version is now %s (serving %s): reloading router %s",
            folder,
            current,
            had,
            name,
        )
        await self.reload([name], trigger="follow")

    def stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            self._follow_task = None

    # -- triggers -------------------------------------------------------------------------------

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (this process). False where signals cannot be handled here (not the
        main thread, as under a test client, or no SIGHUP on this platform)."""
        if not hasattr(signal, "SIGHUP"):
            return False
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (RuntimeError, ValueError, NotImplementedError):
            return False
        return True

    def remove_sighup(self) -> None:
        if hasattr(signal, "SIGHUP"):
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except (RuntimeError, ValueError, NotImplementedError):
                pass

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading routers, opening the logs again")
        self.reopen_logs()
        task = asyncio.ensure_future(self.reload(trigger="SIGHUP"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def reopen_logs(self) -> None:
        """Open the decision and shadow logs again at their paths (after a rotation). A log that
        cannot be opened keeps the file it had, and the server log says why."""
        s = self.server
        for what, target in (
            ("decision", s.decision_log),
            ("shadow", s.shadow.log if s.shadow is not None else None),
            ("feedback", s.feedback.log if s.feedback is not None else None),
        ):
            if target is None:
                continue
            try:
                target.reopen()
            except OSError as e:
                log.error(
                    "SIGHUP: the %s log %s could not be opened again (%s); still writing to the file it had",
                    what,
                    target.path,
                    e,
                )

    async def admin(self, names: list[str] | None) -> tuple[int, dict[str, Any]]:
        """What ``POST /admin/reload`` answers: 200 when every router reloaded, 500 when one did
        not (the old one kept); with ``--workers N``, 202 once the routers check out and the main
        process was asked to replace its workers."""
        s = self.server
        if s.config.workers > 1:
            results = await self.check(names)
            ok = all(r["ok"] for r in results.values())
            if ok:
                os.kill(os.getppid(), signal.SIGHUP)  # uvicorn's main process: a rolling restart
            return (202 if ok else 500), {"ok": ok, "restarting_workers": ok, "routers": results}
        results = await self.reload(names, trigger="admin")
        ok = all(r["ok"] for r in results.values())
        return (200 if ok else 500), {"ok": ok, "routers": results}

    async def aclose(self) -> None:
        self.stop_following()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _describe(served: Any, load_s: float) -> dict[str, Any]:
    spec = served.router.policy_spec
    versions_dir = getattr(served.router, "versions_dir", None)
    return {
        "ok": True,
        "path": str(served.router.path),
        "loaded": os.path.realpath(served.router.path),  # the version behind a link such as runs/live
        # a versions folder's router: the folder, and the version now current there (``v3``)
        "versions": os.path.realpath(versions_dir) if versions_dir is not None else None,
        "version": getattr(served.router, "version_name", None),
        "router_version": served.router.version,
        "scorer": served.router.manifest.get("scorer"),
        "policy": {"name": spec.get("name"), "options": spec.get("options") or {}},
        "models": list(served.router.models),
        "load_s": round(load_s, 3),
    }
