"""``tela serve``: an OpenAI-compatible routing proxy in front of upstream models.

- :mod:`.config`: the settings (YAML/TOML file and flags), validated into :class:`ServeConfig`;
- :mod:`.chat`: what is read from a request (model name, routing text);
- :mod:`.batcher`: concurrent requests micro-batched into one scorer call on a worker thread;
- :mod:`.served_routers`: the routers a process serves, loaded and set up for serving;
- :mod:`.server`: what one server process holds (routers, upstream clients, logs) and the
  authorisation checks every endpoint shares;
- :mod:`.app`: the ASGI app (Starlette) and its endpoints, methods of :class:`~.app.ServeApp`;
  :mod:`.proxy`: the chat endpoint (route, forward, fall back, record); :mod:`.responses`: its ASGI
  responses;
- :mod:`.shadow`: shadow mode (the models not chosen answer too, off the response path) and its log;
- :mod:`.reload`: hot reload of the routers (SIGHUP, ``POST /admin/reload``);
- :mod:`.metrics`: Prometheus metrics; :mod:`.decisions`: the decision log and calibration on it;
- :mod:`.runner`: starting uvicorn with one or N worker processes.

Upstream clients are plugins (:class:`tela_core.components.Upstream`, hook
``tela_register_upstreams``); the builtin ``openai`` one speaks to any OpenAI-compatible endpoint.
Nothing here imports Starlette, uvicorn, aiohttp or prometheus-client until a server is built.
"""

from __future__ import annotations

from .config import ConfigError, ServeConfig, build_config

__all__ = ["ServeConfig", "ConfigError", "build_config"]
