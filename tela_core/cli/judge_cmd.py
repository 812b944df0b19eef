"""``tela judge``: a registered judge over collected answers, into training records; ``--agreement``
compares two judges. The command parses its options, calls :mod:`tela_core.judging` (plan, run) and
prints the summary."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from tela_core.infra.io import dumps_json

from .options import (
    force_option,
    json_option,
    output_option,
    paid_call_options,
    pair_options,
    refuse_unused,
    set_option,
)
from .paid_calls import EXIT_CODES_HELP, EXIT_MISSING, EXIT_UNREADABLE, CallProgress, duration, exit_if, money

__all__ = ["register", "judge"]


def register(cli: click.Group) -> None:
    """Attach ``tela judge`` to ``cli``."""
    cli.add_command(judge)


def _judge_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    from ..infra.errors import TelaError
    from ..train import parse_assignment

    out: dict[str, dict[str, Any]] = {"judge": {}, "agreement": {}}
    for item in items:
        section, key, value = parse_assignment(item, example="judge.grader=number", shape="judge.KEY=VALUE")
        if section not in out:
            raise TelaError(
                f"--set {item!r}: tela judge takes judge.KEY=VALUE (and agreement.KEY=VALUE with --agreement)"
            )
        out[section][key] = value
    return out


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--answers",
    "answers_path",
    required=True,
    type=click.Path(path_type=Path),
    help="tela collect's answers file, or its output folder (holding answers.jsonl).",
)
@click.option(
    "--judge", "judge_name", required=True, metavar="NAME", help="The judge (see `tela plugins list --kind judge`)."
)
@set_option("sets", "judge.KEY=VALUE")
@click.option(
    "--judge-model",
    "judge_model",
    default=None,
    metavar="[NAME=]URL#ID|NAME",
    help="The judge model, for judges that call one: NAME=URL#ID, or an upstream NAME of --config.",
)
@pair_options
@paid_call_options
@click.option(
    "--judge-retries",
    "judge_retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Times a prompt is judged again when the judge's reply cannot be read; then it is recorded as an error.",
)
@click.option(
    "--agreement",
    "agreement_name",
    default=None,
    metavar="NAME",
    help="Also run this second judge on the same prompts (--set agreement.KEY=VALUE) and report how far the two "
    "agree (raw agreement, Cohen's kappa).",
)
@click.option(
    "--agreement-model",
    "agreement_model",
    default=None,
    metavar="[NAME=]URL#ID|NAME",
    help="The second judge's model, when it calls another one than --judge-model.",
)
@click.option("--sample", type=click.IntRange(min=1), default=None, help="Judge N prompts drawn with seed 42.")
@click.option(
    "--join",
    "join",
    default=None,
    type=click.Path(path_type=Path),
    metavar="RECORDS",
    help="An earlier tela judge run's records (its folder or records.jsonl) on the same prompts: each record "
    "written also carries their other models' outcomes and costs, matched by prompt id (a model added later, "
    "judged alone, beside the models judged before; nothing is judged again).",
)
@output_option(required=True)
@force_option
@json_option
def judge(
    answers_path: Path,
    judge_name: str,
    sets: tuple[str, ...],
    judge_model: str | None,
    weak_model: str | None,
    strong_model: str | None,
    judge_retries: int,
    agreement_name: str | None,
    agreement_model: str | None,
    sample: int | None,
    join: Path | None,
    output: Path,
    force: bool,
    as_json: bool,
    config_file: Path | None,
    prices: tuple[str, ...],
    dry_run: bool,
    **flags: Any,
) -> None:
    """Judge collected answers; write OUTPUT/records.jsonl for tela run, eval and zoo.

    The pair is the answers' first and last model (tela collect's --model order) unless
    --weak-model/--strong-model name it. Over more than two models every model's answers are
    judged (llm-judge, reference): a prompt with some models' answers missing is judged too, its
    record carrying the outcomes of the models it has. One model's answers alone (a model added
    later) are rated by a judge that rates each answer alone (llm-judge, reference), not
    pairwise. Resumable and budgeted like tela collect: rerun after a kill and only what is
    missing is judged.

    \b
    Examples:
      tela judge --answers runs/answers --judge reference --set judge.grader=number -o runs/judged
      tela judge --answers runs/answers --judge llm-judge --judge-model judge=https://api.openai.com/v1#gpt-4o \\
                 --price judge=2.5,10 --max-cost 3 -o runs/judged
      tela judge --answers runs/answers --judge llm-judge --judge-model judge --config serve.yaml \\
                 --agreement reference --sample 200 -o runs/agreement
    """
    from ..collect.endpoints import CallSettings
    from ..infra.errors import TelaError
    from ..judging import JudgeJob, plan_judging

    options = _judge_options(sets)
    if agreement_name is None:
        refuse_unused("--agreement-model and --set agreement.* go with --agreement", "agreement_model")
        if options["agreement"]:
            raise TelaError("--set agreement.KEY=VALUE goes with --agreement NAME")
    settings = CallSettings.from_flags(flags)
    plan = plan_judging(
        answers_path,
        judge_name,
        options=options["judge"],
        judge_model=judge_model,
        agreement=agreement_name,
        agreement_options=options["agreement"],
        agreement_model=agreement_model,
        weak_model=weak_model,
        strong_model=strong_model,
        config_file=config_file,
        prices=prices,
        sample=sample,
        timeout_s=settings.timeout,
        join=join,
    )
    if not plan.upstreams:
        refuse_unused("these judges call no model", "config_file", "max_cost", "concurrency", "rpm", "tpm")
    with JudgeJob(plan, output, settings, force=force, judge_retries=judge_retries) as job:
        _print_plan(job)
        if dry_run:
            job.check_models()  # reachable, key accepted, model listed
            checked = (
                "the judge model answered the check (reachable, key accepted, model listed)"
                if plan.upstreams
                else "this judge calls no model"
            )
            click.echo(f"dry run: {checked}; nothing was asked or written: run it again without --dry-run", err=True)
            return
        bar = CallProgress(f"judge {len(job.todo)}", len(job.todo), job.engine)
        summary = job.run(on_done=lambda s: bar.advance(s.errors), progress=bar)
    if as_json:
        click.echo(dumps_json(summary, indent=2, ensure_ascii=True))  # strict JSON, as summary.json
    else:
        _print_summary(summary)
    if summary["stopped"] == "unreadable":
        click.echo(f"Error: {summary['stop_reason']}", err=True)
        exit_if(EXIT_UNREADABLE)
    exit_if(EXIT_MISSING if summary["errors"] else 0)


def _print_plan(job: Any) -> None:
    """What the run will do (stderr): prompts, what is judged already, the estimated cost and the budget."""
    plan, engine, err = job.plan, job.engine, sys.stderr
    shown = plan.shown
    who = shown["judge"] + (f" and {shown['agreement']} (--agreement)" if "agreement" in plan.judges else "")
    click.echo(
        f"{len(plan.tasks['judge'])} prompts to judge with {who} "
        + (
            f"(models {', '.join(plan.models)}; label pair {plan.weak} < {plan.strong}): "
            if len(plan.models) > 2
            else f"({plan.weak}'s answers, each rated alone): "
            if plan.weak == plan.strong
            else f"(pair {plan.weak} < {plan.strong}): "
        )
        + f"{len(job.results)} already judged, {len(job.todo)} to judge"
        + "".join(f"; skipped {n} ({why})" for why, n in plan.skipped["judge"].items()),
        file=err,
    )
    if plan.upstreams and job.todo:
        unpriced = (
            ""
            if all(ep.prices.known for ep in engine.endpoints.values())
            else "; a judge model without a price is not counted"
        )
        click.echo(f"estimated cost {money(job.estimate)} (one try per judge call){unpriced}", file=err)
        if engine.budget.limit is not None:
            click.echo(
                f"budget {money(engine.budget.limit)} (--max-cost): "
                f"{money(engine.budget.spent)} spent on this output before",
                file=err,
            )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _print_summary(s: Mapping[str, Any]) -> None:
    run = s.get("this_run")
    if run:
        click.echo(
            f"judged {run['judged'] + run['errors']}: {run['judged']} verdicts, {run['errors']} errors; "
            f"{run['calls']} judge calls, "
            f"{run['prompt_tokens']:,} prompt + {run['completion_tokens']:,} reply tokens; {money(run['cost'])}; "
            f"{duration(run['seconds'])}"
        )
        for line in run["first_errors"]:
            click.echo(f"  error: {line}")
    if s.get("pair_note"):
        click.echo(f"note: {s['pair_note']}", err=True)
    if s["stopped"] == "budget":
        click.echo(
            f"stopped at the budget ({money(s['max_cost'])}, --max-cost): rerun with a higher --max-cost to continue"
        )
    labels = ", ".join(f"{k} {n}" for k, n in s["labels"].items())
    unlabelled = s["records"] - sum(s["labels"].values())
    if labels and unlabelled > 0:  # a record among N models where a model of the label pair was not asked
        labels += f", {unlabelled} without a label (a model of the label pair has no outcome there)"
    click.echo(
        f"{s['records']} records ({labels or 'no labels'}), {s['errors']} errors, "
        f"{sum(s['skipped'].values())} skipped; judge calls {money(s['cost_total'])} in all"
    )
    agr = s.get("agreement")
    if agr:
        lab = agr["label"]
        click.echo(
            f"agreement of {agr['judges'][0]} and {agr['judges'][1]} on {lab['n']} prompts: "
            f"labels raw {_fmt(lab['raw'])}, "
            f"kappa {_fmt(lab['kappa'])} ({lab['weights']})"
        )
        for model, a in agr["outcomes"].items():
            click.echo(f"  {model} right/wrong: raw {_fmt(a['raw'])}, kappa {_fmt(a['kappa'])} on {a['n']}")
    if s.get("files"):
        click.echo(f"wrote {s['files']['records']} and {s['files']['judgements']}")
