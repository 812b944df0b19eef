"""``tela collect``: every model's answer to every prompt, into an answers file (see :mod:`tela_core.collect`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from tela_core.infra.io import dumps_json

from ..collect.store import OutputDir
from ..data.sampling import subsample
from ..infra.errors import InputError, TelaError
from ..infra.io import atomic_write_json
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
from .paid_calls import (
    EXIT_CODES_HELP,
    EXIT_MISSING,
    SUMMARY_NAME,
    CallProgress,
    check_models,
    duration,
    exit_if,
    make_engine,
    money,
    run_checked,
)

__all__ = ["register", "collect"]


def register(cli: click.Group) -> None:
    """Attach ``tela collect`` to ``cli``."""
    cli.add_command(collect)


def _load_rows(
    data: Path | None, source_name: str, source_sets: Sequence[str], prompts_file: Path | None, logs: Sequence[Path]
) -> tuple[list[Any], dict[str, Any]]:
    # start-up: keeps logging out of `tela --help`
    from ..collect.inputs import rows_from_logs, rows_from_prompt_file, rows_from_source

    given = [name for name, v in (("--data", data), ("--prompts", prompts_file), ("--from-log", logs)) if v]
    if len(given) != 1:
        raise TelaError(
            "give the prompts with one of --data (any data source), --prompts (a prompt file) or "
            f"--from-log (tela serve's logs){'; got ' + ' and '.join(given) if given else ''}"
        )
    if data is None:
        refuse_unused("--source and --set source.* go with --data", "source_name", "source_sets")
    notes: dict[str, Any] = {}
    if data is not None:
        opts: dict[str, Any] = {}
        for item in source_sets:
            section, key, value = parse_assignment(item, example="source.weak_model=gpt-4", shape="source.KEY=VALUE")
            if section != "source":
                raise TelaError(f"--set {item!r}: tela collect takes source options only (source.KEY=VALUE)")
            opts[key] = value
        return _refuse_one_id_two_prompts(rows_from_source(data, source_name, opts), data), notes
    if prompts_file is not None:
        return _refuse_one_id_two_prompts(rows_from_prompt_file(prompts_file), prompts_file), notes
    rows, notes = rows_from_logs(list(logs))
    return rows, notes


def _refuse_one_id_two_prompts(rows: list[Any], path: Path) -> list[Any]:
    """``rows`` unchanged, or one line naming both places when two prompts share an ``id`` but not
    their text: the answers are keyed by id, so one of the two would be dropped without a word. The
    same prompt twice (same id, same messages) is asked once and counted as repeated."""
    first: dict[str, tuple[int, Any]] = {}
    for i, row in enumerate(rows, start=1):
        n, seen = first.setdefault(row.id, (i, row))
        if seen is not row and seen.messages != row.messages:
            line, line_seen = row.source.get("line"), seen.source.get("line")
            if isinstance(line, int) and isinstance(line_seen, int):
                raise InputError(
                    path,
                    line,
                    f"id {row.id!r} is also on line {line_seen}, with another prompt; "
                    f"give each prompt its own id (answers are kept by id)",
                )
            raise InputError(
                path,
                None,
                f"records {n} and {i} have the same id {row.id!r} and different prompts; "
                f"give each prompt its own id (answers are kept by id)",
            )
    return rows


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
    "few per request; the records keep those models' outcomes, the others missing).",
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
    from ..collect.answers import collect_answers, estimate_plan, plan_answers, price_logged_answers, spent_on
    from ..collect.calls import AuthFailed  # start-up: keeps asyncio out of `tela --help`
    from ..collect.endpoints import resolve_models  # start-up: keeps asyncio out of `tela --help`
    from ..collect.inputs import ANSWERS_NAME, merge_rows  # start-up: keeps logging out of `tela --help`

    started = time.monotonic()
    if only_logged and not logs:
        raise TelaError("--only-logged keeps the answers of --from-log LOG: give the log")
    rows, notes = _load_rows(data, source_name, source_sets, prompts_file, logs)
    rows, repeats = merge_rows(rows)
    if sample is not None:
        rows = subsample(rows, sample)
    _cap_logged_answers(rows, flags.get("max_answer_chars"))
    resolved = resolve_models(models, config_file, prices, timeout_s=flags.get("timeout"))
    engine = make_engine(resolved, flags)
    params = {"temperature": temperature} if temperature is not None else {}
    err = sys.stderr
    with OutputDir(output, [ANSWERS_NAME, SUMMARY_NAME], force=force) as out:
        plan = plan_answers(
            rows,
            list(resolved),
            {n: ep.model for n, ep in engine.endpoints.items()},
            out,
            ANSWERS_NAME,
            ask=not only_logged,
        )
        engine.budget.spent = engine.budget.spent_before = spent_on(plan.rows)
        price_logged_answers(plan.rows, engine.endpoints)
        est = estimate_plan(plan, engine, max_tokens, expected_output_tokens)
        _print_estimate(err, plan, est, engine, repeats, notes, max_tokens, expected_output_tokens)
        if dry_run:
            check_models(engine, engine.timeout_s)  # what the guide promises: reachable, key accepted, model listed
            if as_json:
                click.echo(
                    dumps_json(
                        {
                            "dry_run": True,
                            "prompts": len(plan.rows),
                            "to_ask": len(plan.jobs),
                            "already": plan.reused,
                            "estimate": est,
                        },
                        indent=2,
                        ensure_ascii=True,
                    )
                )
            return
        stats = None
        try:
            if plan.jobs:
                check_models(engine, engine.timeout_s)
                with CallProgress(f"collect {len(plan.jobs)} answers", len(plan.jobs), engine) as bar:
                    stats = run_checked(
                        engine,
                        lambda: collect_answers(
                            plan,
                            engine,
                            out,
                            max_tokens=max_tokens,
                            params=params,
                            expected_output_tokens=expected_output_tokens,
                            on_answer=lambda s: bar.advance(s.errors),
                        ),
                    )
        except AuthFailed:
            _finish(out, plan, None, engine, started, est, write_summary=True)
            raise
        except BaseException:
            _finish(out, plan, None, engine, started, est, write_summary=False)
            raise
        summary = _finish(out, plan, stats, engine, started, est, write_summary=True)
    if as_json:
        click.echo(dumps_json(summary, indent=2, ensure_ascii=True))  # strict JSON, as summary.json
    else:
        _print_summary(summary, output)
    exit_if(EXIT_MISSING if summary["errors"] else 0)


def _cap_logged_answers(rows: Sequence[Any], cap: int | None) -> None:
    """An answer read from a log longer than ``--max-answer-chars`` is kept as asked ones are: as an
    error, its text not stored (and it is asked again, as an answer in error is)."""
    if not cap:
        return
    for row in rows:
        for model, a in row.answers.items():
            text = a.get("text") if isinstance(a, dict) else None
            if isinstance(text, str) and len(text) > cap:
                row.answers[model] = {
                    **a,
                    "text": None,
                    "error": f"a logged answer of {len(text):,} characters, over the cap of {cap:,} "
                    f"(--max-answer-chars): not stored",
                }


def _print_estimate(
    err: Any,
    plan: Any,
    est: dict[str, Any],
    engine: Any,
    repeats: int,
    notes: Mapping[str, Any],
    max_tokens: int | None,
    expected: int,
) -> None:
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
        f"{n_rows} prompts x {n_models} models ({', '.join(plan.models)}): {plan.reused} answers already here, "
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


def _finish(
    out: Any, plan: Any, stats: Any, engine: Any, started: float, est: Mapping[str, Any], write_summary: bool
) -> dict[str, Any]:
    """Write the answers file (atomically) and the summary from what the rows hold; remove the journal."""
    from ..collect.answers import final_rows  # start-up: keeps asyncio out of `tela --help`
    from ..collect.inputs import ANSWERS_NAME  # start-up: keeps logging out of `tela --help`

    rows = final_rows(plan)
    answered = sum(
        1
        for r in rows
        for m in plan.models
        if isinstance(r["answers"].get(m), dict)
        and r["answers"][m].get("text") is not None
        and not r["answers"][m].get("error")
    )
    errors = sum(
        1 for r in rows for m in plan.models if isinstance(r["answers"].get(m), dict) and r["answers"][m].get("error")
    )
    total_cost = sum(float(a.get("cost") or 0.0) for r in rows for a in r["answers"].values() if isinstance(a, dict))
    summary: dict[str, Any] = {
        "prompts": len(plan.rows),
        "models": {
            n: {"model": ep.model, "price_input": ep.prices.input, "price_output": ep.prices.output}
            for n, ep in engine.endpoints.items()
        },
        "answers": answered,
        "errors": errors,
        "missing": len(plan.rows) * len(plan.models) - answered - errors,
        "from_log": sum(
            1
            for r in rows
            for m in plan.models
            if isinstance(r["answers"].get(m), dict)
            and r["answers"][m].get("from_log")
            and r["answers"][m].get("text") is not None
        ),
        "asked": stats.asked if stats is not None else 0,
        "this_run": None,
        "cost_total": total_cost,
        "estimate": est.get("cost"),
        "max_cost": engine.budget.limit,
        "stopped": stats.stopped if stats is not None else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    if stats is not None:
        summary["this_run"] = {
            "asked": stats.asked,
            "answered": stats.answered,
            "errors": stats.errors,
            "errors_by_model": stats.errors_by_model,
            "first_errors": stats.first_errors,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "cost": stats.cost,
            "calls_sent": dict(engine.sent),
            "retries": dict(engine.retried),
            "seconds": round(stats.seconds, 3),
        }
    unchanged = (
        stats is None
        and not out.journal.path.exists()
        and out.path(ANSWERS_NAME).exists()
        and not plan.notes.get("rekeyed")
        and not plan.from_log  # a log read again may hold prompts the file does not have yet
    )
    if rows and not unchanged:
        out.write_final(ANSWERS_NAME, rows)
        if write_summary:
            atomic_write_json(out.path(SUMMARY_NAME), summary)
        out.done()
    summary["file"] = str(out.path(ANSWERS_NAME)) if rows else None
    return summary


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
