"""Options every command that loads a router shares, and the one way they load it.

``--trust-remote-code`` (or ``TELA_TRUST_REMOTE_CODE=1``) is the only thing that lets a router's
model run Python code of its own; ``--policy NAME`` and ``--set policy.KEY=VALUE`` route with
another registered policy, or other options, than the one saved in the router's ``policy.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from ..router import TRUST_ENV

if TYPE_CHECKING:  # pragma: no cover
    from ..router import Router

__all__ = ["trust_option", "policy_options", "score_batch_option", "parse_policy_sets", "load_router"]


def trust_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--trust-remote-code``: the user's opt-in to a router model's own Python code."""
    return click.option(
        "--trust-remote-code",
        "trust_remote_code",
        is_flag=True,
        envvar=TRUST_ENV,
        help=f"Allow a router whose model ships its own Python code (auto_map) to run it. Off by default; "
        f"{TRUST_ENV}=1 does the same. Only for routers you trust.",
    )(f)


def score_batch_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--score-batch-size N``: prompts per scorer call (``tela run --batch-size`` is the training
    batch). The old spelling ``--batch-size`` is still read here, with a note, until 0.3."""

    def merge(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        old = ctx.params.pop("old_batch_size", None)
        if old is not None:
            click.echo("note: --batch-size is now --score-batch-size here (tela run's --batch-size is the training batch)", err=True)
        return value if value is not None else old

    f = click.option(
        "--score-batch-size",
        "score_batch_size",
        default=None,
        type=click.IntRange(min=1),
        callback=merge,
        help="Prompts per scorer call (scorers that batch, e.g. score-token, lm-probe).",
    )(f)
    return click.option("--batch-size", "old_batch_size", default=None, type=click.IntRange(min=1), hidden=True,
                        is_eager=True, expose_value=True)(f)


def policy_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--policy NAME`` and ``--set policy.KEY=VALUE``."""
    f = click.option(
        "--set",
        "policy_sets",
        multiple=True,
        metavar="policy.KEY=VALUE",
        help="A policy option for this command, e.g. --set policy.threshold=0.3 (repeatable).",
    )(f)
    return click.option(
        "--policy",
        "policy_name",
        default=None,
        metavar="NAME",
        help="Route with this registered policy instead of the router's saved one (see `tela plugins list --kind policy`).",
    )(f)


def parse_policy_sets(items: Sequence[str]) -> dict[str, Any]:
    """``("policy.threshold=0.3",)`` -> ``{"threshold": 0.3}``; any other section is refused."""
    from ..errors import TelaError
    from ..train import parse_assignment

    out: dict[str, Any] = {}
    for item in items:
        section, key, value = parse_assignment(item, example="policy.threshold=0.3", shape="policy.KEY=VALUE")
        if section != "policy":
            raise TelaError(f"--set {item!r}: this command takes policy options only (policy.KEY=VALUE)")
        out[key] = value
    return out


def load_router(
    path: str | Path,
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
    policy_name: str | None = None,
    policy_sets: Sequence[str] = (),
) -> "Router":
    """:meth:`Router.load` with the command's options."""
    from ..router import Router

    return Router.load(
        path,
        trust_remote_code=trust_remote_code,
        score_batch_size=score_batch_size,
        policy=policy_name,
        policy_options=parse_policy_sets(policy_sets) or None,
    )
