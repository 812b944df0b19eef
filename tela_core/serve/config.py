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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tela_core.upstreams.config import (  # shared with tela collect / tela judge; re-exported here
    ConfigError,
    UpstreamConfig,
    check_upstream,
    parse_upstream_flag,
    read_config_file,
)
from tela_core.upstreams.config import (
    validation_message as _validation_message,
)

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
    "reread_config",
    "LIVE_KEYS",
]

#: The settings a reload takes from the config file (the rest are read once, at start).
LIVE_KEYS = ("routers", "upstreams")

#: Environment variable that carries the resolved settings to ``--workers`` processes (JSON).
ENV_VAR = "TELA_SERVE_CONFIG"


class RouterConfig(BaseModel):
    """One router the server loads (``routers.NAME``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str
    """The router folder (``tela run`` / ``tela zoo`` output). Relative to the config file."""
    upstreams: list[str] | None = None
    """Upstream names, one per model the router routes between, cheap -> strong. Default: the
    router's own model names, which must then be upstream names."""
    score_batch_size: int | None = Field(None, ge=1)
    """Prompts per scorer forward pass, for families that batch (LM scorers)."""
    shadow: float | None = Field(None, ge=0, le=1)
    """Shadow mode: the share of this router's requests also sent, after the user's answer, to the
    models routing did not choose (0 to 1). Default: the top-level ``shadow``."""


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
    keys_env: str | None = None
    """Environment variable holding comma-separated client keys."""
    fallback: bool = True
    """On an upstream error or timeout, try another of the router's models (else answer 502): for
    two models the other one; for N models the next by the request's predicted quality (the
    strongest first when the router predicts none)."""
    fallback_models: int = Field(1, ge=1, le=64)
    """How many other models a routed request may fall back to, one after the other, before the
    502 (N-model routers; two models have one other)."""
    routing: Literal["last-user", "conversation"] = "last-user"
    """Route on the text of the last user turn, or on the whole conversation."""
    sticky_header: str | None = None
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
    torch_threads: int | None = Field(None, ge=1)
    """CPU threads for a torch scorer (embedding and LM families) in each process. Default: the
    machine's cores divided among the workers, less one for the event loop (at least 1)."""
    inline_below_ms: float = Field(0.2, ge=0)
    """Score on the event loop, not a worker thread, routers whose scorer call takes less than this
    (measured at start; ``length`` does). 0: always a worker thread."""
    embedding_cache: int = Field(10000, ge=0)
    """Prompts whose vectors each server process keeps for the embedding families (an LRU by text
    hash): a repeated prompt skips the embedder. About 1.5 KB a prompt for MiniLM. 0: off."""
    decision_log: str | None = None
    """JSONL file with one line per request (appended)."""
    log_prompts: bool = False
    """Write the routed text into the decision log, and the messages and answers into the shadow
    log (off: scores, models, token counts and latencies only)."""
    shadow: float = Field(0.0, ge=0, le=1)
    """Shadow mode for every router without its own ``shadow``: the share of routed requests also
    sent, after the user's answer, to the models routing did not choose."""
    shadow_models: int = Field(1, ge=1, le=64)
    """How many of the models routing did not choose a shadowed request also asks (N-model
    routers; a two-model router has one other). Which ones: ``shadow_sampling``."""
    shadow_sampling: Literal["uniform", "uncertainty"] = "uniform"
    """How shadow mode picks requests and models. ``uniform``: each routed request with probability
    ``shadow``, the models not chosen uniformly at random: an unbiased sample of the traffic, which
    evaluating a router on its labels (``tela promote``, the guard, ``calibrate --traffic``) needs,
    hence the default. ``uncertainty``: the same share on average, given to the requests whose
    decision was closest (``w`` near the threshold; for N models, another model's predicted quality
    near the chosen one's), and among the models not chosen those predicted closest to the chosen
    one: the labels that can change the router's decisions, for fewer labels bought. Each shadow
    log line records the probability its request was sampled with."""
    shadow_log: str | None = None
    """JSONL file that shadow mode appends one line per shadowed request to (needed with shadow)."""
    shadow_queue: int = Field(1000, ge=1)
    """Most shadowed requests waiting for their shadow calls; more are dropped (and counted)."""
    shadow_workers: int = Field(4, ge=1, le=256)
    """Shadowed requests whose shadow calls run at once, per server process."""
    feedback_log: str | None = None
    """JSONL file that ``POST /v1/feedback`` appends users' verdicts to (unset: feedback is off, and
    the endpoint answers 403). :mod:`tela_core.serve.feedback`."""
    feedback_ttl_s: float = Field(86400.0, gt=0)
    """How long after its answer a request can be rated (seconds); older ids are refused (410)."""
    feedback_ids: int = Field(50_000, ge=1)
    """Request ids each server process remembers with their router, version and model (about 300
    bytes each, the oldest dropped first); feedback for a dropped id is still taken, without them."""
    feedback_per_id: int = Field(10, ge=1)
    """Verdicts each server process stores per request id; more on the same id are refused (429,
    ``too_many_verdicts``, counted) and not written: any client key holder can rate its own
    requests, and this bounds the log lines one id makes (not how many ids a client rates)."""
    feedback_key_env: str | None = None
    """Environment variable holding the key that signs request ids; give replicas behind one load
    balancer the same key so each takes feedback for the others' ids. Unset: the workers of one
    ``tela serve`` share a key drawn at start."""
    guard: bool = False
    """Watch live quality per router version from feedback (:mod:`tela_core.serve.guard`): say in
    ``/metrics`` and the log when the current version does worse than the previous one."""
    guard_window: int = Field(200, ge=2)
    """Most recent scores per router version the guard compares."""
    guard_min: int = Field(50, ge=2)
    """Scores each of the two versions needs before the guard compares them."""
    guard_margin: float = Field(0.05, ge=0, le=1)
    """How much lower (mean score) the current version must be, beyond two standard errors of the
    difference, for the guard to fire."""
    guard_rollback: bool = False
    """When the guard fires, roll the router back to its previous version (a versions folder's
    ``tela rollback``) and reload it. Off by default: the guard only reports."""
    admin_token_env: str | None = None
    """Environment variable holding the bearer token of the admin endpoints (``POST
    /admin/reload``). Unset: the admin endpoints answer 403."""
    follow_versions_s: float = Field(2.0, ge=0)
    """How often (seconds) each server process checks the versions folders it serves (``tela
    promote``, ``tela rollback``) and reloads a router whose current version changed. 0: only on a
    reload (SIGHUP, ``POST /admin/reload``)."""
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Larger request bodies are refused with 413."""
    trust_remote_code: bool = False
    """Let routers whose model ships its own Python code run it."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    source: str = "flags"
    """Where the settings came from (the config file, or ``flags``), for error messages."""
    reread: dict[str, Any] | None = None
    """How :func:`build_config` made these settings (the config file's absolute path and the
    flags), so that a reload reads the file again (:func:`reread_config`); set by
    :func:`build_config`, never read from the file."""

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

    def shadow_rate(self, router: str) -> float:
        """The share of ``router``'s requests shadow mode samples."""
        own = self.routers[router].shadow if router in self.routers else None
        return self.shadow if own is None else own

    def admin_token(self) -> str | None:
        """The admin bearer token (from ``$admin_token_env``), or None when the admin endpoints are off."""
        if not self.admin_token_env:
            return None
        raw = (os.environ.get(self.admin_token_env) or "").strip()
        if not raw:
            raise ConfigError(
                f"{self.source}: admin_token_env: environment variable {self.admin_token_env} is not set (or empty)"
            )
        return raw

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeConfig:
        raw = (environ if environ is not None else os.environ).get(ENV_VAR)
        if not raw:
            raise ConfigError(f"{ENV_VAR} is not set: start the server with `tela serve`")
        return cls.model_validate_json(raw)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def parse_router_flag(value: str) -> tuple[str, str]:
    """``NAME=DIR`` or ``DIR`` (named after its folder) -> (name, absolute dir). A symbolic link
    stays one (not resolved), so a hot reload reads wherever it points then."""
    name, sep, path = value.partition("=")
    if not sep or os.sep in name or not name:
        path, name = value, Path(os.path.abspath(value)).name
    return name, os.path.abspath(path)


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
            rs[name] = {
                "path": path,
                **({"upstreams": pair} if pair else {}),
                **({"score_batch_size": sbs} if sbs else {}),
            }
    elif pair and isinstance(data.get("routers"), dict):
        for r in data["routers"].values():  # --weak/--strong with routers from the file
            if isinstance(r, dict) and not r.get("upstreams"):
                r["upstreams"] = pair
    for key, value in (overrides or {}).items():
        if value is not None and key not in ("upstream_timeout", "score_batch_size"):
            data[key] = value
    if (overrides or {}).get("shadow") is not None and isinstance(data.get("routers"), dict):
        for r in data["routers"].values():  # --shadow wins over the file's per-router rates
            if isinstance(r, dict):
                r.pop("shadow", None)
    data["source"] = where
    data["reread"] = {  # what a reload needs to build these settings again from the file
        "config_file": os.path.abspath(str(config_file)) if config_file is not None else None,
        "routers": [f"{n}={p}" for n, p in map(parse_router_flag, routers)],
        "weak": weak,
        "strong": strong,
        "overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
    }
    try:
        cfg = ServeConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_validation_message(where, e)) from None
    check_config(cfg, where)
    return cfg


def check_config(cfg: ServeConfig, where: str = "config") -> None:
    """What the models cannot check alone: names that refer to each other, and the upstream
    client options (validated by the client plugin's own options model)."""
    if not cfg.routers and not cfg.upstreams:
        raise ConfigError(
            f"{where}: nothing to serve: give --router DIR with --weak/--strong, or a config file with "
            "routers and upstreams"
        )
    for name, up in cfg.upstreams.items():
        check_upstream(name, up, where)
    for name, r in cfg.routers.items():
        twice = sorted({u for u in r.upstreams or [] if (r.upstreams or []).count(u) > 1})
        if twice:
            raise ConfigError(
                f"{where}: routers.{name}.upstreams: {', '.join(twice)} is listed more than once; "
                "name one upstream per router model, cheap -> strong"
            )
        for up_name in r.upstreams or []:
            if up_name not in cfg.upstreams:
                known = ", ".join(sorted(cfg.upstreams)) or "(none)"
                raise ConfigError(
                    f"{where}: routers.{name}.upstreams: no upstream named {up_name!r}; upstreams: {known}"
                )
        if not Path(r.path).is_dir():
            raise ConfigError(f"{where}: routers.{name}.path: {r.path}: router directory not found")
        if f"router-{name}" in cfg.upstreams:
            raise ConfigError(f"{where}: upstreams.router-{name}: clashes with router {name!r}'s model name")
    if cfg.sticky_header is not None and not cfg.sticky_header.strip():
        raise ConfigError(f"{where}: sticky_header: empty header name")
    cfg.client_keys()  # keys_env must be set
    cfg.admin_token()  # admin_token_env must be set
    if cfg.guard and not cfg.feedback_log:
        raise ConfigError(f"{where}: guard: the guard watches feedback; set feedback_log too")
    if cfg.guard_rollback and not cfg.guard:
        raise ConfigError(f"{where}: guard_rollback: rolls back when the guard fires; set guard: true too")
    if "guard_min" in cfg.model_fields_set and cfg.guard_min > cfg.guard_window:
        raise ConfigError(
            f"{where}: guard_min: {cfg.guard_min} scores can never be in a window of guard_window "
            f"{cfg.guard_window}; lower guard_min or raise guard_window"
        )
    if cfg.feedback_key_env and not (os.environ.get(cfg.feedback_key_env) or "").strip():
        raise ConfigError(
            f"{where}: feedback_key_env: environment variable {cfg.feedback_key_env} is not set (or empty)"
        )
    shadowed = [n for n in cfg.routers if cfg.shadow_rate(n) > 0]
    if shadowed and not cfg.shadow_log:
        raise ConfigError(
            f"{where}: shadow: routers {', '.join(shadowed)} shadow requests, but there is no shadow_log "
            "to write them to (--shadow-log FILE)"
        )


def reread_config(config: ServeConfig) -> tuple[ServeConfig, list[str]] | None:
    """What a reload applies: ``config`` with its :data:`LIVE_KEYS` (routers, upstreams) as the
    config file and the flags give them now (:func:`build_config` again, every check included: a
    :class:`ConfigError` names the file and key), and the other settings the file now gives
    otherwise, which stay as they are until a restart. None when ``config`` has no config file to
    read again (flags only, or made without :func:`build_config`)."""
    recipe = config.reread
    if not recipe or not recipe.get("config_file"):
        return None
    fresh = build_config(
        recipe["config_file"],
        routers=recipe.get("routers") or (),
        weak=recipe.get("weak"),
        strong=recipe.get("strong"),
        overrides=recipe.get("overrides") or None,
    )
    skip = {*LIVE_KEYS, "source", "reread"}
    old, new = config.model_dump(exclude=skip), fresh.model_dump(exclude=skip)
    later = sorted(k for k in new if new[k] != old.get(k))
    return config.model_copy(update={k: getattr(fresh, k) for k in LIVE_KEYS}), later
