"""The options tela's commands share, each defined once: one name, type and help text everywhere.

A command that writes into a folder takes ``-o/--output``; one that reads data takes ``--source``
(and ``--protocol`` when it splits the data); ``--json`` prints JSON for scripts; ``--set
SECTION.KEY=VALUE`` sets a component's option; ``--force`` replaces existing output. Commands that
load a router share ``--trust-remote-code`` (or ``TELA_TRUST_REMOTE_CODE=1``, the only thing that
lets a router's model run Python code of its own), ``--score-batch-size``, ``--policy NAME`` and
``--set policy.KEY=VALUE``, and load it with :func:`load_router`. ``tests/test_cli_vocabulary.py``
checks every registered command against this module.

A flag that a command's mode cannot use is refused (:func:`refuse_unused`), never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tela_core.data.detect import DETECT
from tela_core.data.protocols import names as protocol_names
from tela_core.infra.errors import TelaError
from tela_core.routing.router import TRUST_ENV, Router

from ..eval.parallel import score_launch
from ..train import parse_assignment

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.eval.parallel import ScoreLaunch
    from tela_core.routing.router import Router

__all__ = [
    "HELP",
    "output_option",
    "source_option",
    "protocol_option",
    "json_option",
    "set_option",
    "force_option",
    "pair_options",
    "no_cache_option",
    "trust_option",
    "score_batch_option",
    "policy_options",
    "router_option",
    "named_routers_option",
    "parse_named_routers",
    "parse_policy_sets",
    "refuse_unused",
    "given",
    "load_router",
    "paid_call_options",
    "FiniteFloat",
    "launch_options",
    "LAUNCH_PARAMS",
    "score_launch_of",
]

F = TypeVar("F", bound=Callable[..., Any])

#: the help text of each shared option, the same on every command that has it
HELP: dict[str, str] = {
    "output": "Directory the command writes into (its description says what goes there).",
    "source": "Data source that reads the input, or detect: chosen from the path "
    "(see `tela plugins list --kind source`). Where --data is repeatable (tela run), one per --data, in order.",
    "protocol": "Named train/held-out split of the data (docs/metrics.md): training and calibration use its "
    "train side, evaluation its held-out side.",
    "json": "Print JSON for scripts instead of tables and text.",
    "set": "A component option as SECTION.KEY=VALUE (repeatable), SECTION being one of the components named "
    "beside --set (in `tela zoo` a family's name), e.g. --set policy.threshold=0.3 (route, eval, calibrate), "
    "--set backend.offload_optimizer=true (run). A section this command has no use for is refused.",
    "force": "Replace existing output (a report, a file, a trained router, a cached dataset) instead of "
    "stopping or reusing it.",
    "weak_model": "The weak (cheap) model's name in the outcome data (default: the source's, or the lower "
    "mean outcome of two).",
    "strong_model": "The strong model's name in the outcome data (default: the source's, or the higher mean "
    "outcome of two).",
    "no_cache": "Score again even if cached scores exist.",
    "trust_remote_code": f"Allow a router or model that ships its own Python code (auto_map) to run it. Off by "
    f"default; {TRUST_ENV}=1 does the same. Only for models you trust.",
    "score_batch_size": "Prompts per scorer call (scorers that batch, e.g. score-token, lm-probe).",
    "policy": "Route with this registered policy instead of the router's saved one "
    "(see `tela plugins list --kind policy`).",
    "router": "A router directory (from `tela run` or `tela zoo`).",
    "routers": "A trained router directory, named NAME (default: the folder's name). Repeatable.",
    # where the work runs (tela run trains on the ranks; eval, zoo, calibrate and route score on them)
    "processes": "Ranks (processes) on this node sharing the work: tela run trains on them; eval, zoo, calibrate and "
    "route shard the prompts over them.  [default: 1]",
    "hostfile": "DeepSpeed hostfile: start the ranks on every host it lists (over ssh), --processes on each.",
    "nnodes": "Nodes in a scheduler-launched run (the same command on every node).  "
    "[default: $PET_NNODES, $SLURM_NNODES, $NNODES, else 1]",
    "node_rank": "This node's rank, 0..nnodes-1.  [default: $PET_NODE_RANK, $SLURM_NODEID, $NODE_RANK, else 0]",
    "master_addr": "Node 0's address.  [default: $PET_MASTER_ADDR, $MASTER_ADDR, first host of $SLURM_JOB_NODELIST]",
    "master_port": "Node 0's rendezvous port.  [default: $MASTER_PORT, else 29500]",
    "rdzv_endpoint": "torchrun elastic (c10d) rendezvous instead of --master-addr/--node-rank.  "
    "[default: $PET_RDZV_ENDPOINT]",
    # commands that call paid models (tela collect, tela judge)
    "call_config": "tela serve's YAML/TOML config file: its upstreams (base_url, model, api_key_env, price_input, "
    "price_output, max_concurrency, requests_per_minute, tokens_per_minute) can be named as models.",
    "price": "A model's price as NAME=INPUT,OUTPUT in dollars per million input and output tokens, where the config "
    "gives none (repeatable).",
    "max_cost": "Budget in dollars for everything in the output folder (earlier runs' calls count): no call starts "
    "that could take the total past it; what finished is kept. Leave it out for no budget "
    "(nan and inf are refused).",
    "concurrency": "Calls in flight at once to each upstream (default: the config's max_concurrency, else 8).",
    "rpm": "Most requests started to each upstream in any 60 seconds (default: the config's, else no limit).",
    "tpm": "Most tokens (prompt + answer) sent to each upstream in any 60 seconds "
    "(default: the config's, else no limit).",
    "timeout": "Seconds to wait for one answer before giving up on that try (it is retried); at most a day.",
    "max_answer_chars": "Longest answer (or judge reply) kept, in characters: a longer one is not stored and "
    "is recorded as an error of that call (its cost still counts).",
    "retries": "Tries after the first for a call that fails with 429, 5xx, a timeout or an unusable answer "
    "(exponential backoff with jitter; Retry-After honoured). A 401/403 stops the run at once.",
    "dry_run": "Check each model once (reachable, key accepted, model listed by the upstream), print what would be "
    "asked and the cost estimate, and stop: no paid call, nothing written. A model that fails the check is "
    "one line each, exit code 2.",
}

_PATH = click.Path(path_type=Path)

#: ``--max-answer-chars``' default: an answer (or judge reply) longer than this many characters is an error, not stored
MAX_ANSWER_CHARS = 1_000_000


class FiniteFloat(click.FloatRange):
    """A float option that must be a finite number within its range. click's ``FloatRange`` lets
    ``nan`` through every bound (nan compares false with everything) and ``inf`` through an open
    top, and a budget, a rate or a timeout of nan or inf is no limit at all (``--max-cost nan``
    spent past its budget, ``--rpm nan`` hung). ``hint`` ends the message (e.g. what to give
    instead): ``Invalid value for '--max-cost': nan is not a number; leave --max-cost out for no
    budget.``"""

    name = "float"

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
        hint: str = "",
    ) -> None:
        super().__init__(min=min, max=max, min_open=min_open, max_open=max_open)
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(
                f"{value} is not a "
                f"{'number' if math.isnan(rv) else 'finite number'}{'; ' + self.hint if self.hint else ''}",
                param,
                ctx,
            )
        return super().convert(rv, param, ctx)


def output_option(required: bool = False, default: Path | None = None) -> Callable[[F], F]:
    """``-o/--output DIR``; ``required`` and ``default`` are the command's, the rest is shared.

    No default is passed when there is none: click 8.3+ reads an explicit ``default=None`` as a value
    that satisfies ``required``, so ``tela eval`` without ``-o`` crashed on None instead of saying
    "Missing option"."""
    extra: dict[str, Any] = {} if default is None else {"default": default, "show_default": True}
    return click.option(
        "--output", "-o", "output", type=_PATH, metavar="DIR", required=required, help=HELP["output"], **extra
    )


def source_option(default: str | None = DETECT, dest: str = "source_name", multiple: bool = False) -> Callable[[F], F]:
    """``--source NAME`` (``tela run`` passes ``default=None`` so that its config file may name one, and
    ``multiple=True``: one ``--source`` per ``--data`` of a mix, paired in order)."""
    if multiple:
        return click.option("--source", dest, multiple=True, metavar="NAME", help=HELP["source"])
    return click.option("--source", dest, default=default, metavar="NAME", help=HELP["source"])


def protocol_option(f: F) -> F:
    """``--protocol NAME``: a choice of the protocols in :mod:`tela_core.data.protocols`."""
    return click.option(
        "--protocol", "protocol", default=None, type=click.Choice(protocol_names()), help=HELP["protocol"]
    )(f)


def json_option(f: F) -> F:
    """``--json``."""
    return click.option("--json", "as_json", is_flag=True, help=HELP["json"])(f)


def set_option(dest: str = "overrides", metavar: str = "SECTION.KEY=VALUE") -> Callable[[F], F]:
    """``--set SECTION.KEY=VALUE`` (repeatable); ``metavar`` shows the sections this command takes."""
    return click.option("--set", dest, multiple=True, metavar=metavar, help=HELP["set"])


def force_option(f: F) -> F:
    """``--force``."""
    return click.option("--force", "force", is_flag=True, help=HELP["force"])(f)


def pair_options(f: F) -> F:
    """``--weak-model MODEL`` and ``--strong-model MODEL``: which two models of outcome data are the pair."""
    f = click.option("--strong-model", "strong_model", default=None, metavar="MODEL", help=HELP["strong_model"])(f)
    return click.option("--weak-model", "weak_model", default=None, metavar="MODEL", help=HELP["weak_model"])(f)


def no_cache_option(f: F) -> F:
    """``--no-cache``: score again instead of reading the score cache."""
    return click.option("--no-cache", "no_cache", is_flag=True, help=HELP["no_cache"])(f)


def trust_option(f: F | None = None, *, default: bool | None = False) -> Any:
    """``--trust-remote-code``: the user's opt-in to a model's own Python code. ``default=None`` lets a
    command tell "not given" from "off" (``tela run`` and ``tela serve`` layer it over a config file)."""

    def deco(g: F) -> F:
        return click.option(
            "--trust-remote-code",
            "trust_remote_code",
            is_flag=True,
            default=default,
            envvar=TRUST_ENV,
            help=HELP["trust_remote_code"],
        )(g)

    return deco(f) if f is not None else deco


def score_batch_option(f: F | None = None, *, old_spelling: bool = True) -> Any:
    """``--score-batch-size N``: prompts per scorer call (``tela run --batch-size`` is the training
    batch). Where the old spelling ``--batch-size`` was the scoring batch (route, eval, calibrate) it
    is still read, hidden, with a note, until 0.3."""

    def merge(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        old = ctx.params.pop("old_batch_size", None)
        if old is not None:
            click.echo(
                "note: --batch-size is now --score-batch-size here (tela run's --batch-size is the training batch)",
                err=True,
            )
        return value if value is not None else old

    def deco(g: F) -> F:
        g = click.option(
            "--score-batch-size",
            "score_batch_size",
            default=None,
            type=click.IntRange(min=1),
            callback=merge,
            help=HELP["score_batch_size"],
        )(g)
        if not old_spelling:
            return g
        return click.option(
            "--batch-size",
            "old_batch_size",
            default=None,
            type=click.IntRange(min=1),
            hidden=True,
            is_eager=True,
            expose_value=True,
        )(g)

    return deco(f) if f is not None else deco


def policy_options(f: F) -> F:
    """``--policy NAME`` and ``--set policy.KEY=VALUE``."""
    f = set_option("policy_sets", "policy.KEY=VALUE")(f)
    return click.option("--policy", "policy_name", default=None, metavar="NAME", help=HELP["policy"])(f)


def router_option(f: F) -> F:
    """``--router DIR``: the one router a command uses."""
    return click.option("--router", "router", required=True, type=_PATH, metavar="DIR", help=HELP["router"])(f)


def named_routers_option(f: F) -> F:
    """``--router [NAME=]DIR`` (repeatable), where a command uses several routers by name (zoo, serve)."""
    return click.option("--router", "routers", multiple=True, metavar="[NAME=]DIR", help=HELP["routers"])(f)


def parse_named_routers(items: Sequence[str]) -> dict[str, Path]:
    """``("knn=runs/a", "runs/b")`` -> ``{"knn": runs/a, "b": runs/b}`` (the rule of ``tela serve
    --router``); a name given twice is refused."""
    # start-up: `tela --help` need not load serve.config (builds pydantic models, ~20 ms)
    from ..serve.config import parse_router_flag

    out: dict[str, Path] = {}
    for item in items:
        if not item.strip() or item.strip().endswith("="):
            raise TelaError(f"--router {item!r}: expected DIR or NAME=DIR, e.g. --router score-token=runs/mmlu")
        name, path = parse_router_flag(item.strip())
        if name in out:
            raise TelaError(f"--router {name!r} is given twice")
        out[name] = Path(path)
    return out


def parse_policy_sets(items: Sequence[str]) -> dict[str, Any]:
    """``("policy.threshold=0.3",)`` -> ``{"threshold": 0.3}``; any other section is refused."""
    out: dict[str, Any] = {}
    for item in items:
        section, key, value = parse_assignment(item, example="policy.threshold=0.3", shape="policy.KEY=VALUE")
        if section != "policy":
            raise TelaError(f"--set {item!r}: this command takes policy options only (policy.KEY=VALUE)")
        out[key] = value
    return out


def given(*params: str) -> list[str]:
    """Of the current command's parameters named ``params``, the flags the user gave on the command
    line (not defaults, not environment variables), spelled as typed: ``["--no-cache"]``."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    by_name = {p.name: p for p in ctx.command.params}
    out = []
    for name in params:
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            p = by_name[name]
            out.append(max(p.opts, key=len) if isinstance(p, click.Option) else name)
    return out


def refuse_unused(mode: str, *params: str) -> None:
    """Raise one line naming the flags of ``params`` given on the command line that ``mode`` (e.g.
    "--all-models judges every model with the cost-aware policy") cannot use."""
    bad = given(*params)
    if bad:
        raise TelaError(f"{mode}; it does not take {', '.join(bad)}")


def paid_call_options(f: F) -> F:
    """The options of commands that call paid models (``tela collect``, ``tela judge``): ``--config``,
    ``--price``, ``--max-cost``, ``--concurrency``, ``--rpm``, ``--tpm``, ``--timeout``, ``--retries``,
    ``--max-answer-chars``, ``--dry-run``. Numbers are finite (:class:`FiniteFloat`)."""
    opts = [
        click.option("--config", "config_file", type=_PATH, default=None, metavar="FILE", help=HELP["call_config"]),
        click.option("--price", "prices", multiple=True, metavar="NAME=IN,OUT", help=HELP["price"]),
        click.option(
            "--max-cost",
            "max_cost",
            type=FiniteFloat(min=0, hint="leave --max-cost out for no budget"),
            default=None,
            metavar="USD",
            help=HELP["max_cost"],
        ),
        click.option("--concurrency", type=click.IntRange(min=1), default=None, help=HELP["concurrency"]),
        click.option(
            "--rpm",
            type=FiniteFloat(min=0, min_open=True, hint="leave --rpm out for no limit"),
            default=None,
            help=HELP["rpm"],
        ),
        click.option(
            "--tpm",
            type=FiniteFloat(min=0, min_open=True, hint="leave --tpm out for no limit"),
            default=None,
            help=HELP["tpm"],
        ),
        click.option(
            "--timeout",
            type=FiniteFloat(min=0, max=86400, min_open=True, hint="give seconds, at most 86400"),
            default=120.0,
            show_default=True,
            help=HELP["timeout"],
        ),
        click.option(
            "--retries", type=click.IntRange(min=0, max=100), default=4, show_default=True, help=HELP["retries"]
        ),
        click.option(
            "--max-answer-chars",
            "max_answer_chars",
            type=click.IntRange(min=1),
            default=MAX_ANSWER_CHARS,
            show_default=True,
            help=HELP["max_answer_chars"],
        ),
        click.option("--dry-run", "dry_run", is_flag=True, help=HELP["dry_run"]),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def launch_options(f: F) -> F:
    """Where the work runs, as ``tela run`` takes it: ``--processes N`` ranks on this node,
    ``--hostfile FILE`` across hosts, or ``--nnodes``/``--node-rank``/``--master-addr``/``--master-port``/
    ``--rdzv-endpoint`` (default: the scheduler's variables) with one command per node. The command
    receives them as keyword arguments of the same names (:func:`score_launch_of` reads them)."""
    opts = [
        click.option("--processes", type=int, default=None, help=HELP["processes"]),
        click.option("--hostfile", type=_PATH, default=None, help=HELP["hostfile"]),
        click.option("--nnodes", type=int, default=None, help=HELP["nnodes"]),
        click.option("--node-rank", type=int, default=None, help=HELP["node_rank"]),
        click.option("--master-addr", default=None, metavar="HOST", help=HELP["master_addr"]),
        click.option("--master-port", type=int, default=None, help=HELP["master_port"]),
        click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT", help=HELP["rdzv_endpoint"]),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


#: the parameter names :func:`launch_options` adds
LAUNCH_PARAMS = ("processes", "hostfile", "nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint")


def score_launch_of(launch: dict[str, Any]) -> ScoreLaunch:
    """The :class:`~tela_core.eval.parallel.ScoreLaunch` of a scoring command's launch options."""
    return score_launch(**{k: launch.get(k) for k in LAUNCH_PARAMS})


def load_router(
    path: str | Path,
    trust_remote_code: bool = False,
    score_batch_size: int | None = None,
    policy_name: str | None = None,
    policy_sets: Sequence[str] = (),
    load_scorer: bool = True,
) -> Router:
    """:meth:`Router.load` with the command's options (``load_scorer=False`` where launched ranks
    do the scoring)."""
    return Router.load(
        path,
        trust_remote_code=trust_remote_code,
        score_batch_size=score_batch_size,
        policy=policy_name,
        policy_options=parse_policy_sets(policy_sets) or None,
        load_scorer=load_scorer,
    )
