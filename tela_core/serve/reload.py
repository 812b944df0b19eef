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

Every reload also reads the config file again (:func:`.config.reread_config`: the file and the
flags, as at start) and applies its ``routers`` and ``upstreams`` in the same step as the routers:
an upstream whose settings changed gets a new client (the old one is closed
:data:`RETIRED_CLIENT_GRACE_S` later), a router the file adds is loaded, one it drops is no longer
served. A request takes the server's routers and upstreams once, at one moment, and keeps them to
its end (fallbacks and shadow calls included). A file that does not read, a client that cannot be
made, or upstreams that would leave a router (the new version, or the one kept) routing to a model
with no upstream change nothing at all, counted as a failed reload of every router. The other
settings are read once, at start.

With ``--workers N`` each worker is its own process: ``SIGHUP`` to the main process makes uvicorn
replace the workers one by one (each new worker reads the config file and loads the routers before
it takes a connection; a worker that cannot is not swapped in, and the old ones keep serving), and
``POST /admin/reload`` on any worker first loads the routers there to check them, then asks the
main process for that rolling restart.

A router served from a versions folder (:mod:`tela_core.routing.versions`) is *followed*: every
``follow_versions_s`` seconds (default 2) each server process looks at the folder's
``versions.json`` (one ``stat``; the file is read only when it changed) and, when the current
version is no longer the one it serves (``tela promote``, ``tela rollback``), reloads that router
as above (trigger ``follow``). Every replica behind a load balancer thus serves the new version
within that interval, with no call to reach it. A version that does not load is not retried until
``versions.json`` or the config file changes again (a version promoted before its new model's
upstream was in the file loads once it is); the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from tela_core.infra.errors import TelaError
from tela_core.plugins.discovery import get_registry
from tela_core.routing.versions import VERSIONS_FILE, is_versions_dir, read_state

from .config import ConfigError, ServeConfig, UpstreamConfig, reread_config
from .readiness import READY_DIR_ENV
from .served_routers import ServedRouter, load_router, mark_version

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["Reloader", "RETIRED_CLIENT_GRACE_S", "remember_config", "worker_config"]

log = logging.getLogger("tela.serve")

#: Seconds an upstream client that a reload replaced or removed stays open for the requests (and
#: shadow calls) that started on it, before it is closed (at shutdown at the latest).
RETIRED_CLIENT_GRACE_S = 600.0


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
        self._retired_clients: list[Any] = []
        #: what the last reload did to the upstreams (``POST /admin/reload`` answers it)
        self.last: dict[str, Any] = {}

    async def reload(self, names: list[str] | None = None, trigger: str = "admin") -> dict[str, dict[str, Any]]:
        """Read the config file again (its routers and upstreams: :func:`.config.reread_config`),
        load ``names`` (default: every router; with them any router the file adds or changes)
        from their folders, and swap in one step on the event loop the upstreams and each router
        that loaded. What happened to each router, by name: ``{"ok": True, "path", "loaded"
        (``path`` with its links resolved: the version loaded), "scorer", "policy", "models",
        "load_s", "swapped_at"}`` (``swapped_at``: Unix time of the swap), ``{"ok": True,
        "removed": True}`` (no longer in the file) or ``{"ok": False, "error": WHY}`` (the old
        router kept). A file that does not read, or upstreams that would leave a router serving a
        model with no upstream, change nothing at all: every router answers ``ok: False``."""
        s = self.server
        async with self._lock:
            t0 = time.perf_counter()
            where = _where(s.config)
            try:
                cfg, later = await asyncio.to_thread(_read_config, s.config)
                ups, made, summary = self._clients(cfg)
            except Exception as e:  # a file that does not read, a client that cannot be made
                return self._refuse(names or list(s.config.routers), trigger, f"{where}: {_one_line(e)}")
            targets = _targets(s.config, cfg, names, s.routers)
            out: dict[str, dict[str, Any]] = {}
            loaded: dict[str, ServedRouter] = {}
            for name in targets:
                t1 = time.perf_counter()
                try:
                    loaded[name] = await asyncio.to_thread(load_router, cfg, name, None)
                except Exception as e:  # whatever a damaged folder raises: keep the old router
                    why = _one_line(e)
                    log.error(
                        "reload (%s): router %s did not load, %s: %s",
                        trigger,
                        name,
                        "still serving the one loaded before" if name in s.routers else "not served",
                        why,
                    )
                    s.metrics.reloads.labels(name, "failed").inc()
                    out[name] = {"ok": False, "error": why}
                    continue
                out[name] = _describe(loaded[name], time.perf_counter() - t1)
            serving = {n: loaded.get(n) or s.routers[n] for n in cfg.routers if n in loaded or n in s.routers}
            orphans = {n: sorted({u for u in r.upstream_of.values() if u not in ups}) for n, r in serving.items()}
            orphans = {n: us for n, us in orphans.items() if us}
            if orphans:  # a router would route to a model with no upstream: nothing changes
                for r in loaded.values():
                    await asyncio.to_thread(r.batcher.close, 5.0)
                for _uc, client in made:
                    await _aclose(client)
                n, us = next(iter(orphans.items()))
                kept = "the version loaded before, which" if n not in loaded else "its new version, which"
                why = (
                    f"{where}: router {n} would serve {kept} routes to {', '.join(us)}, no longer an upstream; "
                    "nothing applied"
                )
                return self._refuse(targets, trigger, why, out)
            # -- the swap: one step on the event loop, no await until it is done --------------------
            old_routers, old_ups, old_entries = s.routers, s.upstreams, s.config.routers
            entries = {n: (cfg if n in loaded else s.config).routers[n] for n in serving}
            s.config = cfg.model_copy(update={"routers": entries})
            s.upstreams = ups
            s.routers = serving
            if s.shadow is not None:
                s.shadow.upstreams = ups
            swapped_at = time.time()
            # -------------------------------------------------------------------------------------------
            for name, new in loaded.items():
                new.batcher.on_batch = functools.partial(s.metrics.observe_batch, name)
                mark_version(s.metrics, name, new.router)
                s.metrics.reloads.labels(name, "ok").inc()
                out[name]["swapped_at"] = round(swapped_at, 6)
                log.info(
                    "reload (%s): router %s reloaded from %s (policy %s)",
                    trigger,
                    name,
                    new.router.path,
                    new.router.policy_spec.get("name"),
                )
            for name, old in old_routers.items():
                if serving.get(name) is not old:
                    self._retire(old)
                if name not in serving and name not in out:
                    out[name] = {"ok": True, "removed": True}
                    log.info("reload (%s): router %s is no longer in %s: not served", trigger, name, where)
            for name, (uc, client) in old_ups.items():
                if ups.get(name, (None, None))[1] is not client:
                    self._retire_client(client)
            if any(summary.values()):
                log.info(
                    "reload (%s): upstreams from %s: %s",
                    trigger,
                    where,
                    "; ".join(f"{k} {', '.join(v)}" for k, v in summary.items() if v),
                )
            if later:
                log.warning(
                    "reload (%s): %s: %s changed; a reload applies routers and upstreams only, the rest at a restart",
                    trigger,
                    where,
                    ", ".join(later),
                )
            if s.shadow is None and any(r.shadow > 0 for r in serving.values()):
                log.warning(
                    "reload (%s): shadow mode was off when this server started; it starts at a restart", trigger
                )
            self.last = {"upstreams": summary, "restart_keys": later, "s": round(time.perf_counter() - t0, 3)}
            if summary != {"added": [], "changed": [], "removed": []} or entries != old_entries:
                await asyncio.to_thread(remember_config, s.config)
            return out

    def _clients(
        self, cfg: ServeConfig
    ) -> tuple[dict[str, tuple[UpstreamConfig, Any]], list[tuple[UpstreamConfig, Any]], dict[str, list[str]]]:
        """The upstream clients for ``cfg``: those whose settings did not change are kept, the
        others made (raises when one cannot be, closing those it made). Also the new ones, and
        the names ``added``, ``changed`` and ``removed``."""
        s = self.server
        reg = get_registry()
        ups: dict[str, tuple[UpstreamConfig, Any]] = {}
        made: list[tuple[UpstreamConfig, Any]] = []
        summary: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        for name, uc in cfg.upstreams.items():
            had = s.upstreams.get(name)
            if had is not None and had[0] == uc:
                ups[name] = had
                continue
            try:
                ups[name] = (uc, reg.create("upstream", uc.type, uc.client_options()))
            except Exception as e:
                for _uc, client in made:  # none of them serves: closed (an openai client has opened nothing yet)
                    task = asyncio.ensure_future(_aclose(client))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
                raise ConfigError(f"upstreams.{name}: {_one_line(e)}") from None
            made.append(ups[name])
            summary["added" if had is None else "changed"].append(name)
        summary["removed"] = sorted(n for n in s.upstreams if n not in ups)
        return ups, made, summary

    def _refuse(
        self, names: list[str], trigger: str, why: str, out: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Nothing swapped: the log line, ``tela_router_reloads_total{result="failed"}`` for each
        router not already counted, ``{"ok": False, "error": why}`` for each."""
        s = self.server
        log.error("reload (%s): %s; still serving the routers and upstreams loaded before", trigger, why.rstrip("; "))
        out = dict(out or {})
        for name in names:
            before = out.get(name, {})
            if before.get("ok") is not False:  # not counted yet
                s.metrics.reloads.labels(name, "failed").inc()
            out[name] = {"ok": False, "error": f"{before['error']}; {why}" if before.get("error") else why}
        self.last = {"upstreams": None, "error": why}
        return out

    async def check(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Read the config file again and load ``names`` (default: every router; with them any the
        file adds or changes) to see whether they would load, without swapping anything."""
        s = self.server
        try:
            cfg, _later = await asyncio.to_thread(_read_config, s.config)
            _ups, made, _summary = self._clients(cfg)
        except Exception as e:
            why = f"{_where(s.config)}: {_one_line(e)}"
            log.error("reload check: %s; nothing restarted", why)
            for name in names or list(s.config.routers):
                s.metrics.reloads.labels(name, "failed").inc()
            return {name: {"ok": False, "error": why} for name in names or list(s.config.routers)}
        for _uc, client in made:
            await _aclose(client)
        out: dict[str, dict[str, Any]] = {}
        for name in _targets(s.config, cfg, names, s.routers):
            t0 = time.perf_counter()
            try:
                probe = await asyncio.to_thread(load_router, cfg, name, None)
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

    def _retire_client(self, client: Any) -> None:
        """Close an upstream client a reload replaced once the requests that started on it are
        surely done (:data:`RETIRED_CLIENT_GRACE_S`), or at shutdown."""
        self._retired_clients.append(client)

        def close() -> None:
            if client in self._retired_clients:
                self._retired_clients.remove(client)
                task = asyncio.ensure_future(_aclose(client))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

        asyncio.get_running_loop().call_later(RETIRED_CLIENT_GRACE_S, close)

    async def close_retired(self) -> None:
        """Close the upstream clients reloads replaced (at shutdown, after shadow mode's calls)."""
        clients, self._retired_clients = self._retired_clients, []
        for client in clients:
            await _aclose(client)

    # -- following versions folders ---------------------------------------------------------------

    def start_following(self) -> list[str]:
        """Follow the routers served from a versions folder (module doc); the names followed now
        (a reload may add or remove some). Nothing when ``follow_versions_s`` is 0, or when no
        router comes from a versions folder and there is no config file to add one."""
        s = self.server
        every = float(getattr(s.config, "follow_versions_s", 2.0) or 0.0)
        followed = list(_folders(s.config))
        if every <= 0 or not (followed or _config_file(s.config)):
            return []
        self._follow_task = asyncio.ensure_future(self._follow(every))
        return followed

    async def _follow(self, every: float) -> None:
        seen: dict[str, tuple[Any, ...] | None] = {}
        while True:
            await asyncio.sleep(every)
            for name, folder in _folders(self.server.config).items():
                try:
                    await self._follow_one(name, folder, seen)
                except asyncio.CancelledError:
                    raise
                except Exception:  # pragma: no cover - following never stops the server
                    log.exception("following the versions folder %s failed", folder)

    async def _follow_one(self, name: str, folder: str, seen: dict[str, tuple[Any, ...] | None]) -> None:
        try:
            st = os.stat(os.path.join(folder, VERSIONS_FILE))
        except OSError as e:
            log.warning(
                "versions folder %s: %s unreadable (%s); still serving what was loaded", folder, VERSIONS_FILE, e
            )
            return
        # the config file too: a version refused for want of its upstream loads once the file has it
        stamp = (folder, st.st_mtime_ns, st.st_size, st.st_ino, _stamp(_config_file(self.server.config)))
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
        body: dict[str, Any] = {"ok": ok, "routers": results}
        if self.last.get("upstreams") is not None:
            body["upstreams"] = self.last["upstreams"]
        if self.last.get("restart_keys"):
            body["restart_keys"] = self.last["restart_keys"]
        return (200 if ok else 500), body

    async def aclose(self) -> None:
        self.stop_following()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


#: In ``$TELA_SERVE_READY_DIR`` (``--workers N``): the settings the last worker to start or reload
#: serves with, for a worker that replaces one that died while the config file does not read.
LAST_CONFIG = "config.json"


def remember_config(config: ServeConfig) -> None:
    """Keep ``config`` as the settings workers serve with (:data:`LAST_CONFIG`; nothing without
    ``--workers N``)."""
    d = os.environ.get(READY_DIR_ENV)
    if not d:
        return
    tmp = os.path.join(d, f".{LAST_CONFIG}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(config.model_dump_json())
        os.replace(tmp, os.path.join(d, LAST_CONFIG))
    except OSError as e:  # the directory was removed under the server
        log.warning("could not keep the settings in use in %s: %s", d, e)


def worker_config(config: ServeConfig, workers_up: int) -> ServeConfig:
    """The settings a new ``--workers N`` process serves with: ``config`` (from the main process)
    with the config file's routers and upstreams as they are now. When the file does not read: a
    worker started by a reload (``workers_up`` already N) raises, so that uvicorn keeps the
    workers before; one replacing a worker that died serves with the settings the others serve
    with (:func:`remember_config`), so one bad edit of the file cannot stop the server."""
    try:
        got = reread_config(config)
    except ConfigError as e:
        if workers_up >= config.workers:
            log.error("reload: %s; this worker does not start, the workers before it keep serving", e)
            raise
        d = os.environ.get(READY_DIR_ENV)
        try:
            with open(os.path.join(d or "", LAST_CONFIG), encoding="utf-8") as fh:
                config = ServeConfig.model_validate_json(fh.read())
        except (OSError, ValueError):
            pass  # none kept yet: the settings the server started with
        log.error("%s; this worker replaces one that stopped and serves with the settings the others serve with", e)
        return config
    if got is None:
        return config
    new, later = got
    if later:
        log.warning(
            "%s: %s changed; a reload applies routers and upstreams only, the rest at a restart",
            _where(new),
            ", ".join(later),
        )
    return new


def _folders(config: ServeConfig) -> dict[str, str]:
    """The routers served from a versions folder, and their folders."""
    return {n: rc.path for n, rc in config.routers.items() if is_versions_dir(rc.path)}


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_config(config: ServeConfig) -> tuple[ServeConfig, list[str]]:
    """The settings a reload applies (the config file read again), and the keys it leaves to a
    restart; ``config`` itself when there is no file to read."""
    got = reread_config(config)
    return got if got is not None else (config, [])


def _config_file(config: ServeConfig) -> str | None:
    """The config file a reload reads again (None: settings from flags only)."""
    return (config.reread or {}).get("config_file") or None


def _where(config: ServeConfig) -> str:
    return _config_file(config) or config.source


def _targets(old: ServeConfig, new: ServeConfig, names: list[str] | None, served: dict[str, Any]) -> list[str]:
    """The routers a reload loads: ``names`` (default: all) and those the file added or changed,
    in the file's order; not those it no longer has."""
    asked = set(names or new.routers)
    return [n for n in new.routers if n in asked or n not in served or old.routers.get(n) != new.routers[n]]


async def _aclose(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # pragma: no cover - closing is best effort
        log.exception("closing an upstream client failed")


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
