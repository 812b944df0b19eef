"""``tela calibrate``: set the threshold that sends a target share of prompts to the strong model.

The share is measured on calibration prompts the router did not train on (``--data``, through any
data source, or a file of prompts as ``tela route --file`` reads them), or on real traffic
(``--traffic``, a ``tela serve`` decision log: its prompts scored again by this router,
:mod:`tela_core.routing.calibration`); the threshold is saved as the router's ``calibrated`` policy
(or the ``--policy`` named, which must be one that calibrates). Fewer than 100 prompts give a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tela_core.data.detect import DETECT, detect_source, read_records
from tela_core.data.fingerprint import overlap_warning
from tela_core.data.prompt_lines import read_prompt_file
from tela_core.infra.errors import InputError, TelaError
from tela_core.infra.locks import output_lock
from tela_core.routing.artifact import read_manifest, read_policy

from .options import (
    LAUNCH_PARAMS,
    launch_options,
    no_cache_option,
    parse_policy_sets,
    policy_options,
    protocol_option,
    refuse_unused,
    router_option,
    score_batch_option,
    score_launch_of,
    source_option,
    trust_option,
)

__all__ = ["register", "calibrate"]


def register(cli: click.Group) -> None:
    """Attach ``tela calibrate`` to ``cli``."""
    cli.add_command(calibrate)


def _calibration_prompts(data: Path, source_name: str, protocol: str | None) -> list[str]:
    """Prompts of ``data``: through its data source (outcome CSVs, seed JSONL, …; the protocol's
    train side when ``protocol`` is given), or, for a JSONL file of bare ``{"prompt": …}`` lines
    or a text file, as `tela route --file` reads them."""
    if not Path(data).exists():
        raise InputError(data, None, "file not found")
    name: str | None = source_name
    if name in (None, DETECT) and Path(data).is_file():
        try:
            name = detect_source(data)
        except InputError:
            name = None  # not a data source's file: read it as prompt lines
    if protocol is None and (name is None or name == "jsonl") and Path(data).is_file():
        prompts = read_prompt_file(Path(data))
        if not prompts:
            raise InputError(data, None, "no prompts (empty, or only blank lines)")
        return prompts
    records, _source, _info = read_records(data, source_name, protocol=protocol, side="train")
    return [r.prompt for r in records]


@click.command()
@router_option
@click.option(
    "--data",
    default=None,
    type=click.Path(path_type=Path),
    help="Calibration prompts (any data source; prompts the router did not train on).",
)
@click.option(
    "--traffic",
    default=None,
    type=click.Path(path_type=Path),
    metavar="LOG",
    help="Instead of --data: a `tela serve` decision log (not a shadow log); calibrate on your traffic, "
    "its logged prompts scored by this router.",
)
@click.option(
    "--traffic-router",
    default=None,
    metavar="NAME",
    help="With --traffic: the served router's name in the log (needed when it holds several).",
)
@click.option(
    "--strong-share", default=None, type=float, help="Target share of prompts sent to the strong model, in [0, 1]."
)
@click.option(
    "--budget",
    default=None,
    type=float,
    metavar="DOLLARS",
    help="Instead of --strong-share, for a router among N models: the mean spend to meet, in $ per 1,000 "
    "requests (its budget policy's λ is set so the models it picks for the prompts cost that).",
)
@source_option()
@protocol_option
@score_batch_option
@no_cache_option
@policy_options
@trust_option
@launch_options
def calibrate(
    router: Path,
    data: Path | None,
    traffic: Path | None,
    traffic_router: str | None,
    strong_share: float | None,
    budget: float | None,
    source_name: str,
    protocol: str | None,
    score_batch_size: int | None,
    no_cache: bool,
    policy_name: str | None,
    policy_sets: tuple[str, ...],
    trust_remote_code: bool,
    **launch: Any,
) -> None:
    """Set the threshold that sends --strong-share of the calibration prompts to the strong model,
    or, for a router among N models, the λ that meets --budget ($ per 1,000 requests) on them.

    The threshold is the one whose strong-call share over the prompts of --data is closest to the
    target (the (1 − share) quantile of w, unless ties in w make another share closer); it is saved in the
    router's policy.json as the `calibrated` policy (or the --policy given, which must be one that
    calibrates); the models listed there are kept. With --budget the router's `budget` policy is
    saved: the cost-aware rule at the λ whose mean cost, over the models it picks for the prompts from
    each one's predicted quality, meets the budget (each model's cost per request as tela run stored it,
    or --set 'policy.costs={...}'). With --protocol, only the protocol's train side
    of --data is used (e.g. mmlu-heldout: the 42 training subjects). With --traffic, the prompts
    are your users' requests in a `tela serve` decision log, scored by this router (the log's own
    scores are those of the version that served them): a request logged without its text (no
    log_prompts) keeps its logged score only if this router version scored it, and a log of
    another version's scores is refused. A shadow log is refused: it holds only the sampled
    share of requests. Fewer than 100 prompts give a warning: the share is too uncertain there.
    --processes N (or --hostfile, or one command per node) shards the scoring of --data over N ranks.

    \b
    Examples:
      tela calibrate --router runs/knn --data calib.jsonl --strong-share 0.3
      tela calibrate --router runs/knn --traffic decisions.jsonl --strong-share 0.3
      tela calibrate --router runs/nim9 --data calib.json --budget 0.15
    """
    if (strong_share is None) == (budget is None):
        raise TelaError("give the target: --strong-share P (a router between two models) or --budget DOLLARS (among N)")
    if (data is None) == (traffic is None):
        raise TelaError(
            "give calibration prompts (--data FILE) or a `tela serve` decision log (--traffic LOG), one of them"
        )
    if traffic is None:
        refuse_unused("calibrating on --data scores its prompts", "traffic_router")
    else:
        why = "--traffic calibrates on the prompts of a `tela serve` decision log"
        refuse_unused(why, "source_name", "protocol", "no_cache", *LAUNCH_PARAMS)
    manifest = read_manifest(router)  # a bad router dir fails before any work
    models = read_policy(router).get("models") or []
    if strong_share is not None and len(models) > 2 and manifest.get("w_pair"):  # w is not about models[0], [-1]
        raise TelaError(
            f"{router}: this router routes among {len(models)} models ({', '.join(map(str, models))}); "
            "--strong-share calibrates a router between two: give --budget DOLLARS ($ per 1,000 requests)"
        )
    ranks = score_launch_of(launch)
    sets = parse_policy_sets(policy_sets)
    if traffic is None:
        assert data is not None
        prompts = _calibration_prompts(data, source_name, protocol)
        note = overlap_warning(manifest, prompts, what="calibration")
        if note:
            click.echo(note, err=True)
    click.get_current_context().with_resource(output_lock(router))  # one writer of policy.json
    if traffic is not None:
        # start-up: keeps logging out of `tela --help`
        from tela_core.routing.calibration import calibrate_on_traffic

        policy = policy_name or ("budget" if budget is not None else "calibrated")
        done = calibrate_on_traffic(
            router, traffic, strong_share, traffic_router, policy, sets, trust_remote_code, score_batch_size, budget
        )
        target, how = f"requests router {done['router']!r} routed", _rescored(done)
    else:
        from ..eval.calibrate import calibrate_on_prompts

        label = str(data) + (f" ({protocol} train side)" if protocol else "")
        done = calibrate_on_prompts(
            router, prompts, label, strong_share, budget, policy_name, sets, trust_remote_code, score_batch_size,
            ranks, no_cache,
        )  # fmt: skip
        target, how = "calibration prompts", None
    from tela_core.routing.calibration import calibration_line

    click.echo(calibration_line(done, target, Path(router), how))
    for warning in done["warnings"]:
        click.echo(warning, err=True)


def _rescored(done: dict[str, Any]) -> str:
    if done["rescored"] == done["requests"]:
        return "scored again by this router"
    if done["rescored"]:
        return f"{done['rescored']} scored again by this router, the rest as logged"
    return "scores as logged by this router version"
