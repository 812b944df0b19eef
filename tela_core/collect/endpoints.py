"""Which models ``tela collect`` and ``tela judge`` call, from flags and ``tela serve``'s config file.

``--model`` takes ``NAME=URL#ID`` (or ``URL#ID``, named after the id) for an OpenAI-compatible
endpoint, or ``NAME``: an upstream of the ``--config`` file (the file ``tela serve`` reads: same
``base_url``, ``model``, ``api_key_env``, prices and limits). With ``--config`` and no ``--model``,
every upstream in the file is asked. ``--price NAME=IN,OUT`` sets a model's dollars per million
input and output tokens where the config does not.

Before any paid call, :func:`check_endpoints` asks each upstream once whether the model can be
called (reachable, key accepted, model known): one line per failing model, exit code 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tela_core.infra.errors import TelaError, UpstreamError
from tela_core.plugins import get_registry
from tela_core.upstreams.config import (
    ConfigError,
    UpstreamConfig,
    check_upstream,
    parse_upstream_flag,
    read_config_file,
)

from .budget import MAX_PRICE, Budget, Prices
from .calls import Endpoint, Engine
from .limits import LimitSettings
from .retry import RetryPolicy

__all__ = [
    "resolve_models",
    "make_endpoints",
    "check_endpoints",
    "parse_price",
    "LimitOverrides",
    "CallSettings",
    "make_engine",
    "check_models",
    "run_closing",
]

LimitOverrides = Mapping[str, Any]
R = TypeVar("R")


def _config_upstreams(config_file: Any) -> tuple[dict[str, Any], str]:
    if config_file is None:
        return {}, "flags"
    data = read_config_file(config_file)
    ups = data.get("upstreams") or {}
    if not isinstance(ups, dict):
        raise ConfigError(f"{config_file}: upstreams: expected a mapping of names to upstreams")
    return ups, str(config_file)


def _validated(name: str, raw: Any, where: str) -> UpstreamConfig:
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: upstreams.{name}: expected a mapping (base_url, model, ...)")
    try:
        up = UpstreamConfig.model_validate(raw)
    except ValidationError as e:  # named as tela serve names it: FILE: upstreams.NAME.KEY: ...
        err = e.errors()[0]
        loc = ".".join(["upstreams", name, *(str(x) for x in err["loc"])])
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{where}: {loc}: {' '.join(str(err['msg']).split())}{more}") from None
    check_upstream(name, up, where)
    return up


def _split_model_flag(value: str) -> tuple[str | None, str]:
    """``NAME=URL#ID`` -> (NAME, URL#ID); ``URL#ID`` or ``NAME`` -> (None, value)."""
    left, sep, right = value.partition("=")
    if sep and "://" not in left and "#" not in left:
        return left.strip(), right.strip()
    return None, value.strip()


def parse_price(value: str, flag: str = "--price") -> tuple[str, Prices]:
    """``NAME=IN,OUT`` (dollars per million input and output tokens) -> (NAME, Prices)."""
    name, sep, rest = value.partition("=")
    parts = rest.split(",")
    try:
        if not sep or not name.strip() or len(parts) != 2:
            raise ValueError
        pin, pout = float(parts[0]), float(parts[1])
        if not (pin >= 0 and pout >= 0) or pin == float("inf") or pout == float("inf"):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{flag}: expected NAME=INPUT,OUTPUT in dollars per million tokens (e.g. gpt-4o=2.5,10), got {value!r}"
        ) from None
    if max(pin, pout) > MAX_PRICE:
        raise ConfigError(f"{flag}: {value!r}: a price is at most {MAX_PRICE:,.0f} dollars per million tokens")
    return name.strip(), Prices(pin, pout)


def resolve_models(
    models: Sequence[str],
    config_file: Any = None,
    prices: Sequence[str] = (),
    flag: str = "--model",
    timeout_s: float | None = None,
) -> dict[str, tuple[UpstreamConfig, str]]:
    """Model name -> (its upstream settings, where they came from), in the order given."""
    ups, where = _config_upstreams(config_file)
    out: dict[str, tuple[UpstreamConfig, str]] = {}
    items = list(models)
    if not items:
        if config_file is None:
            raise TelaError(f"name the models to ask: {flag} NAME=URL#ID (repeatable), or --config FILE with upstreams")
        if not ups:
            raise ConfigError(f"{config_file}: no upstreams in this file")
        items = list(ups)
    for item in items:
        name, spec = _split_model_flag(item)
        if "#" in spec:
            url, model_id = parse_upstream_flag(spec, flag)
            name = name or model_id
            raw: dict[str, Any] = {"base_url": url, "model": model_id}
            if timeout_s is not None:
                raw["timeout"] = timeout_s
            up, src = _validated(name, raw, flag), f"{flag} {item}"
        else:
            if name is not None:
                raise ConfigError(
                    f"{flag} {item!r}: expected NAME=URL#ID, URL#ID, or the name of an upstream in --config"
                )
            name = spec
            if config_file is None:
                raise ConfigError(f"{flag} {item!r}: not URL#ID, and there is no --config whose upstreams name it")
            if name not in ups:
                known = ", ".join(ups) or "(none)"
                raise ConfigError(f"{flag} {item!r}: no upstream named {name!r} in {config_file}; upstreams: {known}")
            raw = dict(ups[name]) if isinstance(ups[name], dict) else ups[name]
            if isinstance(raw, dict) and timeout_s is not None and raw.get("type", "openai") == "openai":
                raw.setdefault("timeout", timeout_s)
            up, src = _validated(name, raw, where), f"{where}: upstreams.{name}"
        if not name or any(c.isspace() or c in "/#=," for c in name):
            raise ConfigError(f"{flag} {item!r}: {name!r} is not a usable model name (no spaces, '/', '#', '=' or ',')")
        if name in out:
            raise ConfigError(f"{flag}: model {name!r} is named twice")
        out[name] = (up, src)
    for item in prices:
        name, p = parse_price(item)
        if name not in out:
            raise ConfigError(f"--price {item!r}: no model named {name!r}; models: {', '.join(out)}")
        up, src = out[name]
        out[name] = (up.model_copy(update={"price_input": p.input, "price_output": p.output}), src)
    return out


def make_endpoints(
    models: Mapping[str, tuple[UpstreamConfig, str]], overrides: LimitOverrides | None = None
) -> dict[str, Endpoint]:
    """An :class:`Endpoint` (client plugin made, prices, limits) per model. ``overrides``
    (``max_concurrency``, ``requests_per_minute``, ``tokens_per_minute``; None: keep) win over
    the config file."""
    reg = get_registry()
    o = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    out: dict[str, Endpoint] = {}
    for name, (up, where) in models.items():
        try:
            client = reg.create("upstream", up.type, up.client_options())
        except TelaError as e:
            raise ConfigError(f"{where}: {e}") from None
        limits = LimitSettings(
            max_concurrency=int(o.get("max_concurrency") or up.max_concurrency or 8),
            requests_per_minute=o.get("requests_per_minute") or up.requests_per_minute,
            tokens_per_minute=o.get("tokens_per_minute") or up.tokens_per_minute,
        )
        out[name] = Endpoint(
            name=name,
            model=up.model or name,
            client=client,
            prices=Prices(up.price_input, up.price_output),
            limit_settings=limits,
            where=where,
        )
    return out


async def _check_one(ep: Endpoint, timeout_s: float) -> str | None:
    try:
        await asyncio.wait_for(ep.client.check(ep.model), timeout_s)
    except asyncio.TimeoutError:
        return f"{ep.name}: no answer within {timeout_s:g} s ({ep.where})"
    except UpstreamError as e:
        if e.status in (401, 403):
            return f"{ep.name}: the upstream refused the key (HTTP {e.status}): {e} ({ep.where})"
        return f"{ep.name}: {e} ({ep.where})"
    except TelaError as e:
        return f"{ep.name}: {e} ({ep.where})"
    return None


async def check_endpoints(endpoints: Mapping[str, Endpoint], timeout_s: float = 30.0) -> None:
    """Ask every upstream once whether its model can be called; a :class:`TelaError` with one line
    per failing model when any cannot."""
    problems = [p for p in await asyncio.gather(*(_check_one(ep, timeout_s) for ep in endpoints.values())) if p]
    if problems:
        head = (
            "model check failed before any call: "
            if len(problems) == 1
            else f"{len(problems)} models failed the check before any call:\n  "
        )
        raise TelaError(head + "\n  ".join(problems))


@dataclass(frozen=True)
class CallSettings:
    """How a run calls its models, as the paid-call flags give it (``--max-cost``, ``--concurrency``,
    ``--rpm``, ``--tpm``, ``--timeout``, ``--retries``, ``--max-answer-chars``); None: no limit, or
    the config file's."""

    max_cost: float | None = None
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    retries: int = 4
    max_answer_chars: int | None = None

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> CallSettings:
        """The settings in ``flags`` (the commands' keyword arguments; others are ignored)."""
        return cls(
            max_cost=flags.get("max_cost"),
            concurrency=flags.get("concurrency"),
            rpm=flags.get("rpm"),
            tpm=flags.get("tpm"),
            timeout=float(flags.get("timeout") or 120.0),
            retries=int(flags.get("retries", 4)),
            max_answer_chars=flags.get("max_answer_chars"),
        )


def make_engine(
    models: Mapping[str, tuple[UpstreamConfig, str]], settings: CallSettings, spent_before: float = 0.0
) -> Engine:
    """The :class:`~tela_core.collect.calls.Engine` for ``models`` (from :func:`resolve_models`);
    a budget (``max_cost``) needs a price for every model."""
    endpoints = make_endpoints(
        models,
        {
            "max_concurrency": settings.concurrency,
            "requests_per_minute": settings.rpm,
            "tokens_per_minute": settings.tpm,
        },
    )
    if settings.max_cost is not None:
        unpriced = [n for n, ep in endpoints.items() if not ep.prices.known]
        if unpriced:
            raise TelaError(
                f"--max-cost needs each model's price; none for {', '.join(unpriced)}: set price_input/price_output "
                f"in the config or --price NAME=IN,OUT"
            )
    return Engine(
        endpoints,
        RetryPolicy(tries=settings.retries + 1),
        timeout_s=settings.timeout,
        budget=Budget(settings.max_cost, spent=spent_before),
        max_answer_chars=settings.max_answer_chars,
    )


async def _close(engine: Engine) -> None:
    for ep in engine.endpoints.values():
        try:
            await ep.client.aclose()
        except Exception:  # noqa: BLE001 - closing must not hide the run's own outcome
            pass


def check_models(engine: Engine, timeout_s: float | None = None) -> None:
    """Each model's upstream answers the check (reachable, key, model id) before any paid call
    (at most 30 s each); the clients are closed after it."""

    async def go() -> None:
        try:
            await check_endpoints(
                engine.endpoints, timeout_s=min(engine.timeout_s if timeout_s is None else timeout_s, 30.0)
            )
        finally:
            await _close(engine)

    asyncio.run(go())


def run_closing(engine: Engine, body: Callable[[], Awaitable[R]]) -> R:
    """Run the coroutine ``body()`` on a fresh loop and close the upstream clients after it."""

    async def go() -> R:
        try:
            return await body()
        finally:
            await _close(engine)

    return asyncio.run(go())
