"""Start the server: uvicorn with one process, or ``--workers N`` processes.

One process loads the routers before it binds its port, so a bad router fails at once with a one-line error. With N
workers the parent loads each router once to check it, then every worker loads its own copy before it accepts a
connection (uvicorn needs an app factory, :func:`tela_core.serve.app.create_app_from_env`, which reads the settings
from ``$TELA_SERVE_CONFIG``), shares Prometheus metric files in ``$PROMETHEUS_MULTIPROC_DIR`` and registers in
``$TELA_SERVE_READY_DIR`` once up, so ``/ready`` answers 200 only when all N are (:mod:`.readiness`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import Any

from tela_core.infra.errors import TelaError

from .app import configure_logging, create_app
from .config import ENV_VAR, ServeConfig
from .feedback import KEY_ENV as FEEDBACK_KEY_ENV
from .readiness import READY_DIR_ENV
from .served_routers import load_routers

__all__ = ["serve", "check_serve_extra"]


def check_serve_extra() -> None:
    """A clear error when the ``serve`` extra is not installed."""
    missing = []
    for mod in ("starlette", "uvicorn", "aiohttp", "prometheus_client"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise TelaError(f"`tela serve` needs {', '.join(missing)}: pip install 'tela[serve]'")


#: Seconds a new worker (``--workers N``, on SIGHUP) has to load its routers and start.
WORKER_START_TIMEOUT = 180


def _uvicorn_kwargs(config: ServeConfig) -> dict[str, Any]:
    import importlib.util
    import inspect

    import uvicorn

    kw: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": 75,  # longer than a load balancer's idle timeout (60 s is common)
        "backlog": 4096,
    }
    if config.workers > 1 and "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # SIGHUP replaces the workers one by one, each new one only once it is ready; its routers
        # load first (an LM router takes seconds, more on a busy machine), so give it time.
        kw["timeout_worker_healthcheck"] = WORKER_START_TIMEOUT
    if importlib.util.find_spec("httptools"):
        kw["http"] = "httptools"
    if importlib.util.find_spec("uvloop"):
        kw["loop"] = "uvloop"
    return kw


def serve(config: ServeConfig) -> None:
    """Run the server until interrupted."""
    check_serve_extra()
    import uvicorn

    configure_logging(config.log_level)

    if config.workers <= 1:
        routers = load_routers(config)
        uvicorn.run(create_app(config, routers=routers), **_uvicorn_kwargs(config))
        return
    for r in load_routers(config).values():  # check every router loads before forking workers
        r.batcher.close()
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="tela-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    ready_dir = tempfile.mkdtemp(prefix="tela-serve-ready-")  # workers register here: /ready counts them
    os.environ[READY_DIR_ENV] = ready_dir
    os.environ[ENV_VAR] = config.to_env()
    if config.feedback_log and not os.environ.get(FEEDBACK_KEY_ENV, "").strip():
        os.environ[FEEDBACK_KEY_ENV] = secrets.token_hex(16)  # the workers sign ids with one key: each takes all
    try:
        uvicorn.run(
            "tela_core.serve.app:create_app_from_env", factory=True, workers=config.workers, **_uvicorn_kwargs(config)
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
        shutil.rmtree(ready_dir, ignore_errors=True)
