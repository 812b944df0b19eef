"""``tela serve``'s settings: a YAML or TOML file, flags for the simple case, one validated object.

A config file names routers and upstreams and how the server behaves::

    routers:
      knn: {path: runs/knn, upstreams: [small, big]}   # cheap -> strong
    upstreams:
      small: {base_url: "http://127.0.0.1:8001/v1", model: mixtral-8x7b, price_input: 0.6, price_output: 0.6}
      big:   {base_url: "https://api.openai.com/v1", model: gpt-4o, api_key_env: OPENAI_API_KEY,
              price_input: 2.5, price_output: 10}
    keys_env: TELA_CLIENT_KEYS        # clients must send one of these bearer keys

The flags ``--router DIR --weak URL#MODEL --strong URL#MODEL`` build the same object. Every problem
is reported in one line that names the file (or flag) and the key, e.g.
``serve.yaml: upstreams.big.timeout: Input should be greater than 0``.

Everything here is JSON-serialisable (:meth:`ServeConfig.to_env` / :meth:`ServeConfig.from_env`),
so ``--workers N`` hands the same settings to every worker process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tela_core.infra.errors import TelaError

__all__ = [
    "ConfigError",
    "RouterConfig",
    "UpstreamConfig",
    "ServeConfig",
    "ENV_VAR",
    "read_config_file",
    "parse_upstream_flag",
    "parse_router_flag",
    "build_config",
]

#: Environment variable that carries the resolved settings to ``--workers`` processes (JSON).
ENV_VAR = "TELA_SERVE_CONFIG"


class ConfigError(TelaError):
    """A bad setting, named by file (or flag) and key."""


class RouterConfig(BaseModel):
    """One router the server loads (``routers.NAME``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str
    """The router folder (``tela run`` / ``tela zoo`` output). Relative to the config file."""
    upstreams: Optional[list[str]] = None
    """Upstream names, one per model the router routes between, cheap -> strong. Default: the
    router's own model names, which must then be upstream names."""
    score_batch_size: Optional[int] = Field(None, ge=1)
    """Prompts per scorer forward pass, for families that batch (LM scorers)."""


class UpstreamConfig(BaseModel):
    """One upstream model endpoint (``upstreams.NAME``). Keys tela does not know go to the
    upstream client's options (``tela plugins show upstream openai``: ``base_url``,
    ``api_key_env``, ``timeout``, ...)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str = "openai"
    """The upstream client plugin (``tela plugins list --kind upstream``)."""
    model: Optional[str] = None
    """The model id sent to the upstream. Default: the upstream's name."""
    price_input: float = Field(0.0, ge=0)
    """Dollars per million input (prompt) tokens, for the estimated-cost metric."""
    price_output: float = Field(0.0, ge=0)
    """Dollars per million output (completion) tokens."""

    def client_options(self) -> dict[str, Any]:
        """The keys meant for the upstream client plugin."""
        return dict(self.model_extra or {})


class ServeConfig(BaseModel):
    """Everything ``tela serve`` needs, from a file, flags or both (flags win)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    routers: dict[str, RouterConfig] = Field(default_factory=dict)
    """Routers by name: clients ask for ``router-NAME`` or ``router-NAME-THRESHOLD``."""
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    """Upstream models by name: clients may also ask for one by name (passed through unrouted)."""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    """Server processes on this machine (each loads every router)."""
    keys: list[str] = Field(default_factory=list)
    """Client API keys (bearer tokens). Prefer ``keys_env`` so keys stay out of files."""
    keys_env: Optional[str] = None
    """Environment variable holding comma-separated client keys."""
    fallback: bool = True
    """On an upstream error or timeout, try the router's other model once (else answer 502)."""
    routing: Literal["last-user", "conversation"] = "last-user"
    """Route on the text of the last user turn, or on the whole conversation."""
    sticky_header: Optional[str] = None
    """Header carrying a session id (e.g. ``x-tela-session``): a request that has it is routed on
    the conversation's *first* user turn, so every turn of a conversation goes to the same model,
    on any replica, with no shared state."""
    batch_window_ms: float = Field(0.0, ge=0, le=1000)
    """How long the batcher waits for more requests before scoring (0: score what is waiting)."""
    max_batch: int = Field(32, ge=1)
    """Most prompts in one scorer call."""
    length_ratio: float = Field(1.5, ge=0)
    """The batcher scores prompts in groups whose longest is at most this many times the shortest
    (characters), so short prompts are not padded to long ones. 0: one call for the whole batch."""
    torch_threads: Optional[int] = Field(None, ge=1)
    """CPU threads for a torch scorer (embedding and LM families) in each process. Default: the
    machine's cores divided among the workers, less one for the event loop (at least 1)."""
    inline_below_ms: float = Field(0.2, ge=0)
    """Score on the event loop, not a worker thread, routers whose scorer call takes less than this
    (measured at start; ``length`` does). 0: always a worker thread."""
    decision_log: Optional[str] = None
    """JSONL file with one line per request (appended)."""
    log_prompts: bool = False
    """Write the routed text into the decision log (off: scores and models only)."""
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Larger request bodies are refused with 413."""
    trust_remote_code: bool = False
    """Let routers whose model ships its own Python code run it."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    source: str = "flags"
    """Where the settings came from (the config file, or ``flags``), for error messages."""

    @field_validator("routers", "upstreams")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name or any(c.isspace() or c in "/#" for c in name):
                raise ValueError(f"{name!r} is not a usable name (no spaces, '/' or '#')")
        return value

    # -- derived ----------------------------------------------------------------------------

    def client_keys(self) -> list[str]:
        """The configured client keys: ``keys`` plus those in ``$keys_env``."""
        out = list(self.keys)
        if self.keys_env:
            raw = os.environ.get(self.keys_env)
            if raw is None:
                raise ConfigError(f"{self.source}: keys_env: environment variable {self.keys_env} is not set")
            out += [k.strip() for k in raw.split(",") if k.strip()]
        return out

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServeConfig":
        raw = (environ if environ is not None else os.environ).get(ENV_VAR)
        if not raw:
            raise ConfigError(f"{ENV_VAR} is not set: start the server with `tela serve`")
        return cls.model_validate_json(raw)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _validation_message(where: str, e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{where}: {loc}: {_one_line(err['msg'])}{more}"


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
        raise ConfigError(f"{p}: not valid {kind}: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    routers = data.get("routers")
    if isinstance(routers, dict):
        for name, r in routers.items():
            if isinstance(r, str):
                r = routers[name] = {"path": r}
            if isinstance(r, dict) and isinstance(r.get("path"), str):
                r["path"] = str((p.parent / r["path"]).resolve()) if not os.path.isabs(r["path"]) else r["path"]
    return data


def parse_upstream_flag(value: str, flag: str) -> tuple[str, str]:
    """``URL#MODEL`` -> (base URL, model id)."""
    url, sep, model = value.rpartition("#")
    if not sep or not url or not model:
        raise ConfigError(f"{flag}: expected URL#MODEL (e.g. http://127.0.0.1:8001/v1#mixtral-8x7b), got {value!r}")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{flag}: the URL must start with http:// or https://, got {url!r}")
    return url, model


def parse_router_flag(value: str) -> tuple[str, str]:
    """``NAME=DIR`` or ``DIR`` (named after its folder) -> (name, absolute dir)."""
    name, sep, path = value.partition("=")
    if not sep or os.sep in name or not name:
        path, name = value, Path(value).resolve().name
    return name, str(Path(path).resolve())


def build_config(
    config_file: str | Path | None = None,
    *,
    routers: Sequence[str] = (),
    weak: str | None = None,
    strong: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeConfig:
    """Settings from ``config_file`` (if any), then the flags: ``routers`` (``NAME=DIR`` or
    ``DIR``), ``weak``/``strong`` (``URL#MODEL``: the upstreams every flag router routes
    between) and ``overrides`` (top-level keys; None values are ignored)."""
    where = str(config_file) if config_file is not None else "flags"
    data: dict[str, Any] = read_config_file(config_file) if config_file is not None else {}
    if (weak is None) != (strong is None):
        raise ConfigError("--weak and --strong go together: give both (URL#MODEL each)")
    pair: list[str] | None = None
    if weak is not None and strong is not None:
        (wurl, wmodel), (surl, smodel) = parse_upstream_flag(weak, "--weak"), parse_upstream_flag(strong, "--strong")
        if wmodel == smodel and wurl == surl:
            raise ConfigError("--weak and --strong name the same upstream")
        wname, sname = (wmodel, smodel) if wmodel != smodel else (f"weak-{wmodel}", f"strong-{smodel}")
        ups = data.setdefault("upstreams", {})
        if not isinstance(ups, dict):
            raise ConfigError(f"{where}: upstreams: expected a mapping of names to upstreams")
        timeout = (overrides or {}).get("upstream_timeout")
        for name, url, model in ((wname, wurl, wmodel), (sname, surl, smodel)):
            ups[name] = {"base_url": url, "model": model, **({"timeout": timeout} if timeout else {})}
        pair = [wname, sname]
    if routers:
        rs = data.setdefault("routers", {})
        if not isinstance(rs, dict):
            raise ConfigError(f"{where}: routers: expected a mapping of names to routers")
        for item in routers:
            name, path = parse_router_flag(item)
            if name in rs and isinstance(rs[name], dict) and rs[name].get("path") != path:
                raise ConfigError(f"--router: two routers are named {name!r}; name them: --router NAME=DIR")
            sbs = (overrides or {}).get("score_batch_size")
            rs[name] = {"path": path, **({"upstreams": pair} if pair else {}), **({"score_batch_size": sbs} if sbs else {})}
    elif pair and isinstance(data.get("routers"), dict):
        for r in data["routers"].values():  # --weak/--strong with routers from the file
            if isinstance(r, dict) and not r.get("upstreams"):
                r["upstreams"] = pair
    for key, value in (overrides or {}).items():
        if value is not None and key not in ("upstream_timeout", "score_batch_size"):
            data[key] = value
    data["source"] = where
    try:
        cfg = ServeConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_validation_message(where, e)) from None
    check_config(cfg, where)
    return cfg


def check_config(cfg: ServeConfig, where: str = "config") -> None:
    """What the models cannot check alone: names that refer to each other, and the upstream
    client options (validated by the client plugin's own options model)."""
    from tela_core.plugins.discovery import get_registry

    if not cfg.routers and not cfg.upstreams:
        raise ConfigError(f"{where}: nothing to serve: give --router DIR with --weak/--strong, or a config file with routers and upstreams")
    reg = get_registry()
    for name, up in cfg.upstreams.items():
        key = f"upstreams.{name}"
        try:
            cls = reg.get("upstream", up.type)
        except TelaError as e:
            raise ConfigError(f"{where}: {key}.type: {e}") from None
        try:
            cls.Options(**up.client_options())
        except ValidationError as e:
            raise ConfigError(_validation_message(f"{where}: {key}", e)) from None
    for name, r in cfg.routers.items():
        for up_name in r.upstreams or []:
            if up_name not in cfg.upstreams:
                known = ", ".join(sorted(cfg.upstreams)) or "(none)"
                raise ConfigError(f"{where}: routers.{name}.upstreams: no upstream named {up_name!r}; upstreams: {known}")
        if not Path(r.path).is_dir():
            raise ConfigError(f"{where}: routers.{name}.path: {r.path}: router directory not found")
        if f"router-{name}" in cfg.upstreams:
            raise ConfigError(f"{where}: upstreams.router-{name}: clashes with router {name!r}'s model name")
    if cfg.sticky_header is not None and not cfg.sticky_header.strip():
        raise ConfigError(f"{where}: sticky_header: empty header name")
    cfg.client_keys()  # keys_env must be set

