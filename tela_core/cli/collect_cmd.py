"""``tela collect``: every model's answer to every prompt, into an answers file (see :mod:`tela_core.collect`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from tela_core.infra.io import dumps_json

from ..infra.errors import TelaError
from ..train import parse_assignment
from .options import (
    FiniteFloat,
    force_option,
    json_option,
    output_option,
    paid_call_options,
    refuse_unused,
    set_option,
    source_option,
)
from .paid_calls import EXIT_CODES_HELP, EXIT_MISSING, CallProgress, duration, exit_if, money

__all__ = ["register", "collect"]


def register(cli: click.Group) -> None:
    """Attach ``tela collect`` to ``cli``."""
    cli.add_command(collect)


def _source_options(items: Sequence[str]) -> dict[str, Any]:
    """``--set source.KEY=VALUE`` as the source's options."""
    opts: dict[str, Any] = {}
    for item in items:
        section, key, value = parse_assignment(item, example="source.weak_model=gpt-4", shape="source.KEY=VALUE")
        if section != "source":
            raise TelaError(f"--set {item!r}: tela collect takes source options only (source.KEY=VALUE)")
        opts[key] = value
    return opts


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Prompts from data tela reads (seed JSONL, outcome data, any data source): each record's prompt is asked.",
)
@source_option()
@set_option("source_sets", "source.KEY=VALUE")
@click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A prompt file: one prompt per line, or JSONL objects with a prompt or OpenAI messages "
    "(and optional id, reference, group).",
)
@click.option(
    "--from-log",
    "logs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="tela serve's decision log (with --log-prompts) or shadow log: answers already in it are kept (repeatable).",
)
@click.option(
    "--only-logged",
    "only_logged",
    is_flag=True,
    help="With --from-log: keep the answers the log holds and ask no model (shadow mode over N models asks a "
    "few per request; the records keep those models' outcomes, the others missing). Without --model, the models "
    "are those the log's answers came from, not every upstream of --config.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="[NAME=]URL#ID|NAME",
    help="A model to ask: NAME=URL#ID for an OpenAI-compatible endpoint, or an upstream NAME of --config "
    "(repeatable; list the cheap model first, the strong one last). Default: every upstream of --config.",
)
@paid_call_options
@click.option(
    "--max-tokens",
    "max_tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Longest answer, in tokens, sent to the models as max_tokens (and reserved by --max-cost).",
)
@click.option("--temperature", type=FiniteFloat(0, 2), default=None, help="Sampling temperature sent to the models.")
@click.option(
    "--expected-output-tokens",
    "expected_output_tokens",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="The answer length assumed for the cost estimate (and reserved per call when --max-tokens is not set).",
)
@click.option(
    "--sample", type=click.IntRange(min=1), default=None, help="Ask N prompts drawn with seed 42 (as tela data sample)."
)
@output_option(required=True)
@force_option
@json_option
def collect(
    data: Path | None,
    source_name: str,
    source_sets: tuple[str, ...],
    prompts_file: Path | None,
    logs: tuple[Path, ...],
    only_logged: bool,
    models: tuple[str, ...],
    max_tokens: int | None,
    temperature: float | None,
    expected_output_tokens: int,
    sample: int | None,
    output: Path,
    force: bool,
    as_json: bool,
    config_file: Path | None,
    prices: tuple[str, ...],
    dry_run: bool,
    **flags: Any,
) -> None:
    """Ask each model for its answer to each prompt; write OUTPUT/answers.jsonl (for tela judge).

    Resumable: rerun the same command after a kill (or a budget stop) and only the missing answers
    are asked: an answer received is never asked again; at most the calls in flight at a kill are
    asked again (their answers never arrived). With --from-log the answers in the log are kept, by
    model id whatever the names. The cost estimate is printed before the first call; --max-cost
    stops cleanly at a budget.

    \b
    Examples:
      tela collect --prompts prompts.txt --model small=http://127.0.0.1:8001/v1#mixtral \\
                   --model big=https://api.openai.com/v1#gpt-4o --config serve.yaml --max-cost 5 -o runs/answers
      tela collect --from-log shadow.jsonl --config serve.yaml -o runs/answers-live
    """
    # start-up: keeps asyncio out of `tela --help`
    from ..collect.endpoints import CallSettings, resolve_models
    from ..collect.job import CollectJob, prompt_rows

    if only_logged and not logs:
        raise TelaError("--only-logged keeps the answers of --from-log LOG: give the log")
    if data is None and (prompts_file is not None or logs):
        refuse_unused("--source and --set source.* go with --data", "source_name", "source_sets")
    rows, notes = prompt_rows(data, source_name, _source_options(source_sets), prompts_file, logs)
    resolved = resolve_models(models, config_file, prices, timeout_s=flags.get("timeout"))
    job = CollectJob(
        rows,
        resolved,
        output,
        CallSettings.from_flags(flags),
        force=force,
        ask=not only_logged,
        logged_models=only_logged and not models,
        sample=sample,
        max_tokens=max_tokens,
        temperature=temperature,
        expected_output_tokens=expected_output_tokens,
    )
    with job:
        if only_logged and job.plan is not None and not job.plan.reused:
            raise TelaError(
                f"{', '.join(map(str, logs))}: holds no answer of {', '.join(job.plan.models)} to keep, and "
                "--only-logged asks no model: give tela serve's shadow log (shadow_log), where shadow mode writes "
                "the answers; a decision log holds none"
            )
        _print_estimate(sys.stderr, job, notes)
        if dry_run:
            job.check_models()  # what the guide promises: reachable, key accepted, model listed
            click.echo(
                "dry run: every model answered the check (reachable, key accepted, model listed); nothing was "
                "asked or written: run it again without --dry-run to collect",
                err=True,
            )
            if as_json:
                plan = job.plan
                assert plan is not None
                dry = {"dry_run": True, "prompts": len(plan.rows), "to_ask": len(plan.jobs), "already": plan.reused}
                click.echo(dumps_json({**dry, "estimate": job.estimate}, indent=2, ensure_ascii=True))
            return
        todo = len(job.plan.jobs) if job.plan is not None else 0
        bar = CallProgress(f"collect {todo} answers", todo, job.engine)
        summary = job.run(on_answer=lambda s: bar.advance(s.errors), progress=bar)
    if as_json:
        click.echo(dumps_json(summary, indent=2, ensure_ascii=True))  # strict JSON, as summary.json
    else:
        _print_summary(summary, output)
    exit_if(EXIT_MISSING if summary["errors"] else 0)


def _print_estimate(err: Any, job: Any, notes: Mapping[str, Any]) -> None:
    """What the run will do (stderr): prompts and models, what is here already, the estimated cost
    and the budget."""
    plan, est, engine, repeats = job.plan, job.estimate, job.engine, job.repeats
    max_tokens, expected = job.max_tokens, job.expected_output_tokens
    n_rows, n_models = len(plan.rows), len(plan.models)
    extra = []
    if repeats:
        extra.append(f"{repeats} repeated prompts asked once")
    if notes.get("without_prompt"):
        extra.append(f"{notes['without_prompt']} logged requests without a prompt skipped")
    if plan.from_log:
        extra.append(f"{plan.from_log} of the answers from the log")
    other = plan.notes.get("log_answers_of_other_models") or {}
    if other:
        extra.append(f"{sum(other.values())} logged answers of models not asked left out ({', '.join(sorted(other))})")
    click.echo(
        f"{n_rows} prompt{'' if n_rows == 1 else 's'} x {n_models} model{'' if n_models == 1 else 's'} "
        f"({', '.join(plan.models)}): {plan.reused} answers already here, "
        f"{len(plan.jobs)} to "
        f"ask{' (' + str(plan.retrying_errors) + ' after an error)' if plan.retrying_errors else ''}"
        f"{'; ' + '; '.join(extra) if extra else ''}",
        file=err,
    )
    if not plan.jobs:
        return
    toks_in = sum(m["prompt_tokens"] for m in est["by_model"].values())
    out_note = f"answers assumed {min(expected, max_tokens) if max_tokens else expected} tokens"
    unpriced = f"; no price for {', '.join(est['unpriced'])} (not counted)" if est["unpriced"] else ""
    click.echo(f"estimated cost {money(est['cost'])} (prompts ~{toks_in:,} tokens, {out_note}{unpriced})", file=err)
    b = engine.budget
    if b.limit is not None:
        left = b.limit - b.spent
        fits = "" if est["cost"] <= left else "; the estimate is over it: the run will stop at the budget"
        click.echo(
            f"budget {money(b.limit)} (--max-cost): {money(b.spent)} spent on this output before, "
            f"{money(max(0.0, left))} left{fits}",
            file=err,
        )


def _print_summary(s: Mapping[str, Any], output: Path) -> None:
    run = s.get("this_run")
    if run:
        by = ", ".join(f"{m}: {n}" for m, n in run["errors_by_model"].items())
        click.echo(
            f"asked {run['asked']}: {run['answered']} answered, {run['errors']} errors{' (' + by + ')' if by else ''}; "
            f"{run['prompt_tokens']:,} prompt + {run['completion_tokens']:,} answer tokens; {money(run['cost'])}; "
            f"{duration(run['seconds'])}; {sum(run['retries'].values())} retries"
        )
        for line in run["first_errors"]:
            click.echo(f"  error: {line}")
    if s["stopped"] == "budget":
        click.echo(
            f"stopped at the budget ({money(s['max_cost'])}, --max-cost): {s['missing']} answers not asked; "
            f"rerun with a higher --max-cost to continue"
        )
    click.echo(
        f"{s['answers']} answers ({s['from_log']} from the log, {s['asked']} asked by this run), {s['errors']} errors, "
        f"{s['missing']} missing over {s['prompts']} prompts; {money(s['cost_total'])} in all"
    )
    if s.get("file"):
        click.echo(f"wrote {s['file']}")
    if s["errors"]:
        click.echo("rerun the same command to ask the failed answers again")
