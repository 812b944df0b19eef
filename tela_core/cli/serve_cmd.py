"""``tela serve``: run an OpenAI-compatible routing proxy (see :mod:`tela_core.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..infra.errors import TelaError
from .options import named_routers_option, score_batch_option, trust_option

__all__ = ["register", "serve"]


def register(cli: click.Group) -> None:
    """Attach ``tela serve`` to ``cli``."""
    cli.add_command(serve)


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML/TOML file: routers, upstreams (base_url, model, api_key_env, prices), client keys, options.",
)
@named_routers_option
@click.option(
    "--weak",
    default=None,
    metavar="URL#MODEL",
    help="Upstream for the cheap model, e.g. http://127.0.0.1:8001/v1#mixtral.",
)
@click.option("--strong", default=None, metavar="URL#MODEL", help="Upstream for the strong model.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default 8000).")
@click.option(
    "--workers", default=None, type=click.IntRange(min=1), help="Server processes on this machine (default 1)."
)
@trust_option(default=None)
@click.option(
    "--batch-window-ms",
    default=None,
    type=click.FloatRange(0, 1000),
    help="Wait this long for more requests before scoring a batch (default 0: score what is waiting).",
)
@click.option(
    "--max-batch", default=None, type=click.IntRange(min=1), help="Most prompts per router call (default 32)."
)
@score_batch_option(old_spelling=False)
@click.option(
    "--decision-log",
    default=None,
    type=click.Path(path_type=Path),
    help="Append one JSON line per request to this file.",
)
@click.option(
    "--log-prompts",
    is_flag=True,
    default=None,
    help="Write the routed text into the decision log, and the messages and answers into the shadow log.",
)
@click.option(
    "--shadow",
    default=None,
    type=click.FloatRange(0, 1),
    metavar="RATE",
    help="Shadow mode: send this share of routed requests, after the user's answer, to a model not chosen "
    "too (over N models: --shadow-models of them), and log the answers (needs --shadow-log).",
)
@click.option(
    "--shadow-log",
    default=None,
    type=click.Path(path_type=Path),
    help="Append one JSON line per shadowed request to this file.",
)
@click.option(
    "--shadow-models",
    default=None,
    type=click.IntRange(1, 64),
    metavar="K",
    help="Routers over N models: a shadowed request asks K of the models not chosen (default 1).",
)
@click.option(
    "--shadow-sampling",
    default=None,
    type=click.Choice(["uniform", "uncertainty"]),
    help="Which requests and models shadow mode picks: uniform (default; an unbiased sample) or uncertainty "
    "(the same share, given to the closest decisions).",
)
@click.option(
    "--feedback-log",
    default=None,
    type=click.Path(path_type=Path),
    help="Take POST /v1/feedback (users' verdicts on answers, by x-request-id) and append them to this file.",
)
@click.option(
    "--shadow-queue",
    default=None,
    type=click.IntRange(min=1),
    help="Most shadowed requests waiting for their shadow calls; more are dropped and counted (default 1000).",
)
@click.option(
    "--admin-token-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the bearer token for POST /admin/reload (off without it).",
)
@click.option(
    "--max-body-bytes",
    default=None,
    type=click.IntRange(min=1024),
    help="Refuse larger request bodies with 413 (default 8 MiB).",
)
@click.option(
    "--routing",
    default=None,
    type=click.Choice(["last-user", "conversation"]),
    help="Route on the last user turn (default) or the whole conversation.",
)
@click.option(
    "--sticky-header",
    default=None,
    metavar="NAME",
    help=(
        "A request with this header (a session id) is routed on its first user turn, so a conversation stays on "
        "one model."
    ),
)
@click.option(
    "--no-fallback",
    is_flag=True,
    default=False,
    help="Answer 502 at once when an upstream fails, instead of trying the other model.",
)
@click.option(
    "--upstream-timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for --weak/--strong upstreams (default 60).",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="Server log level (default info).",
)
@click.option("--check", is_flag=True, help="Validate the settings and load the routers, then exit without serving.")
def serve(
    config_file: Path | None,
    routers: tuple[str, ...],
    weak: str | None,
    strong: str | None,
    no_fallback: bool,
    check: bool,
    **flags: Any,
) -> None:
    """Serve routers behind an OpenAI-compatible API: clients ask for model `router-NAME`
    (the router's saved policy), `router-NAME-THRESHOLD` (over N models: the policy's knob, e.g.
    router-NAME-0.5 for lambda 0.5) or an upstream's name.

    Each --router [NAME=]DIR is served as router-NAME (NAME: the folder's name unless given).

    \b
    Examples:
      tela serve --router runs/knn --weak http://127.0.0.1:8001/v1#small --strong http://127.0.0.1:8002/v1#big
      tela serve --config serve.yaml --workers 4 --host 0.0.0.0
    \b
    Endpoints: POST /v1/chat/completions, GET /v1/models, /health, /ready, /metrics,
    POST /v1/feedback, POST /admin/reload. SIGHUP reloads the routers from their folders.
    See docs/deployment.md for the config file, metrics, the decision and shadow logs.
    """
    # start-up: `tela --help` need not load serve.config (builds pydantic models, ~20 ms)
    from ..serve.config import build_config

    # start-up: keeps logging out of `tela --help`
    from ..serve.runner import check_serve_extra
    from ..serve.runner import serve as run_server

    overrides = {k: v for k, v in flags.items() if v is not None}
    for key in ("decision_log", "shadow_log", "feedback_log"):
        if key in overrides:
            overrides[key] = str(overrides[key])
    if no_fallback:
        overrides["fallback"] = False
    config = build_config(config_file, routers=routers, weak=weak, strong=strong, overrides=overrides)
    check_serve_extra()
    if not check:
        _check_port(config.host, config.port)  # before the routers load: a busy port is one line, not a traceback
    if check:
        from ..serve.app import configure_logging  # start-up: keeps asyncio out of `tela --help`
        from ..serve.served_routers import load_routers  # start-up: keeps logging out of `tela --help`

        configure_logging(config.log_level)  # a router's warnings (e.g. a pair that is not its upstreams') show
        loaded = load_routers(config)
        for r in loaded.values():
            r.batcher.close()
            click.echo(
                f"router-{r.name}: {r.router.path} ({r.router.manifest['scorer']}, policy "
                f"{r.router.policy_spec['name']}) "
                f"-> {' < '.join(r.upstream_of[m] for m in r.router.models)}"
            )
        click.echo(f"ok: {len(loaded)} router(s), {len(config.upstreams)} upstream(s)")
        return
    click.echo(
        f"tela serve: {', '.join('router-' + n for n in config.routers) or 'no routers'} on "
        f"http://{config.host}:{config.port}/v1 "
        f"({config.workers} worker{'s' if config.workers > 1 else ''})",
        err=True,
    )
    for line in _logging_lines(config):
        click.echo(f"tela serve: {line}", err=True)
    run_server(config)


def _check_port(host: str, port: int) -> None:
    """A :class:`TelaError` naming the address when ``host:port`` cannot be bound (taken by
    another server, or not an address of this machine). uvicorn binds with SO_REUSEADDR, so
    does this check; the port is released at once."""
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise TelaError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    family, kind, proto, _name, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            why = (
                "the port is taken (another server? pick --port)"
                if e.errno == 98 or "in use" in str(e)
                else (e.strerror or str(e))
            )
            raise TelaError(f"cannot listen on {host}:{port}: {why}") from None


def _logging_lines(config: Any) -> list[str]:
    """What the server writes to disk and sends where the user did not ask: shadow mode, and the
    logs (with prompts or not), one line each, so nobody serves with them on unknowingly."""
    lines = []
    shadowed = {n: config.shadow_rate(n) for n in config.routers if config.shadow_rate(n) > 0}
    if shadowed:
        rates = ", ".join(f"router-{n} {r:g}" for n, r in shadowed.items())
        lines.append(
            f"shadow mode on ({rates}): that share of routed requests is also sent to "
            + (
                f"up to {config.shadow_models} of the models not chosen (shadow_models; paid calls, "
                f"up to {config.shadow_models} per request), the answers"
                if config.shadow_models > 1
                else "one model other than the chosen one (paid calls, one per request), "
                "its answer and the chosen one's"
            )
            + f" appended to {config.shadow_log}"
            + (f"; sampling {config.shadow_sampling}" if config.shadow_sampling != "uniform" else "")
        )
    logs = [str(p) for p in (config.decision_log, config.shadow_log if shadowed else None) if p]
    if logs and config.log_prompts:
        lines.append(f"log_prompts on: users' prompts and answers are written to disk, in {' and '.join(logs)}")
    elif config.decision_log:
        lines.append(f"decisions appended to {config.decision_log} (no prompt text: log_prompts is off)")
    if config.feedback_log:
        guard = (
            "; the guard watches them" + (" and rolls back" if config.guard_rollback else "") if config.guard else ""
        )
        lines.append(f"POST /v1/feedback on: users' verdicts appended to {config.feedback_log}{guard}")
    return lines
