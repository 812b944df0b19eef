"""Upstream model endpoints' settings, shared by ``tela serve``, ``tela collect`` and ``tela judge``.

A config file's ``upstreams`` section names each model endpoint once::

    upstreams:
      small: {base_url: "http://127.0.0.1:8001/v1", model: mixtral-8x7b, price_input: 0.6, price_output: 0.6}
      big:   {base_url: "https://api.openai.com/v1", model: gpt-4o, api_key_env: OPENAI_API_KEY,
              price_input: 2.5, price_output: 10, max_concurrency: 4, requests_per_minute: 500}

and the flags ``URL#MODEL`` (``tela serve --weak/--strong``, ``tela collect --model``) build the
same object. Every problem is one line naming the file (or flag) and the key, e.g.
``serve.yaml: upstreams.big.timeout: Input should be greater than 0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tela_core.infra.errors import TelaError, config_parse_error
from tela_core.plugins import get_registry

__all__ = [
    "ConfigError",
    "UpstreamConfig",
    "read_config_file",
    "parse_upstream_flag",
    "check_upstream",
    "validation_message",
    "one_line",
]


class ConfigError(TelaError):
    """A bad setting, named by file (or flag) and key."""


class UpstreamConfig(BaseModel):
    """One upstream model endpoint (``upstreams.NAME``). Keys tela does not know go to the
    upstream client's options (``tela plugins show upstream openai``: ``base_url``,
    ``api_key_env``, ``timeout``, ...)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str = "openai"
    """The upstream client plugin (``tela plugins list --kind upstream``)."""
    model: str | None = None
    """The model id sent to the upstream. Default: the upstream's name."""
    price_input: float = Field(0.0, ge=0, le=100_000, allow_inf_nan=False)
    """Dollars per million input (prompt) tokens, for the estimated-cost metric and ``tela collect``'s budget."""
    price_output: float = Field(0.0, ge=0, le=100_000, allow_inf_nan=False)
    """Dollars per million output (completion) tokens."""
    max_concurrency: int | None = Field(None, ge=1)
    """``tela collect`` / ``tela judge``: calls in flight at once to this upstream (default 8)."""
    requests_per_minute: float | None = Field(None, gt=0, allow_inf_nan=False)
    """``tela collect`` / ``tela judge``: most requests started in any 60 seconds (default: no limit)."""
    tokens_per_minute: float | None = Field(None, gt=0, allow_inf_nan=False)
    """``tela collect`` / ``tela judge``: most tokens (prompt + answer) in any 60 seconds (default: no limit)."""

    def client_options(self) -> dict[str, Any]:
        """The keys meant for the upstream client plugin."""
        return dict(self.model_extra or {})


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def validation_message(where: str, e: ValidationError) -> str:
    """The first problem of a pydantic error as ``WHERE: key.path: message (and N more)``."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{where}: {loc}: {one_line(err['msg'])}{more}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML (``.yaml``/``.yml``/other) or TOML (``.toml``) file, with
    router paths made absolute relative to the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as e:  # parse errors carry the line in their message
        kind = "TOML" if p.suffix.lower() == ".toml" else "YAML"
        raise ConfigError(config_parse_error(p, kind, e)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    routers = data.get("routers")
    if isinstance(routers, dict):
        for name, r in routers.items():
            if isinstance(r, str):
                r = routers[name] = {"path": r}
            if isinstance(r, dict) and isinstance(r.get("path"), str):
                # abspath, not resolve(): a symbolic link stays one, so a hot reload reads where it points then
                r["path"] = os.path.abspath(p.parent / r["path"]) if not os.path.isabs(r["path"]) else r["path"]
    return data


def parse_upstream_flag(value: str, flag: str) -> tuple[str, str]:
    """``URL#MODEL`` -> (base URL, model id)."""
    url, sep, model = value.rpartition("#")
    if not sep or not url or not model:
        raise ConfigError(f"{flag}: expected URL#MODEL (e.g. http://127.0.0.1:8001/v1#mixtral-8x7b), got {value!r}")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{flag}: the URL must start with http:// or https://, got {url!r}")
    return url, model


def check_upstream(name: str, up: UpstreamConfig, where: str) -> None:
    """The upstream's client plugin exists and accepts its options (validated by the plugin's own
    options model); a :class:`ConfigError` naming ``where`` and ``upstreams.NAME`` if not."""
    key = f"upstreams.{name}"
    try:
        cls = get_registry().get("upstream", up.type)
    except TelaError as e:
        raise ConfigError(f"{where}: {key}.type: {e}") from None
    try:
        cls.Options(**up.client_options())
    except ValidationError as e:
        raise ConfigError(validation_message(f"{where}: {key}", e)) from None
