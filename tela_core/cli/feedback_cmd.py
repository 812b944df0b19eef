"""``tela feedback``: ``tela serve``'s feedback log into outcome records, alone or beside a
judge's records (:mod:`tela_core.collect.feedback`)."""

from __future__ import annotations

from pathlib import Path

import click

from tela_core.infra.io import dumps_json

from .options import force_option, json_option, output_option

__all__ = ["register", "feedback_cmd"]


def register(cli: click.Group) -> None:
    """Attach ``tela feedback`` to ``cli``."""
    cli.add_command(feedback_cmd)


_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("feedback")
@click.argument("feedback_logs", nargs=-1, required=True, type=_FILE, metavar="FEEDBACK_LOG...")
@click.option(
    "--from-log",
    "logs",
    multiple=True,
    required=True,
    type=_FILE,
    help="tela serve's decision log (written with --log-prompts) or shadow log, for each rated request's "
    "prompt and the model that answered (repeatable).",
)
@click.option(
    "--with",
    "judged",
    default=None,
    type=click.Path(path_type=Path),
    help="A judge's records (tela judge's records.jsonl, or its output folder) to keep beside the feedback.",
)
@output_option(required=True)
@force_option
@json_option
def feedback_cmd(
    feedback_logs: tuple[Path, ...],
    logs: tuple[Path, ...],
    judged: Path | None,
    output: Path,
    force: bool,
    as_json: bool,
) -> None:
    """Turn users' verdicts (tela serve's feedback_log) into training records.

    Each rated request is found by its id in the decision or shadow log, for its prompt and the
    model that answered, which gets the score as its outcome. The last verdict on a request wins.
    With --with, a judge's records are kept beside: a request both judged and rated keeps the
    judge's record. Prints how many records of each kind, and how many verdicts were skipped, why.

    \b
    The output folder gets records.jsonl (what tela run --data takes) and summary.json (the counts).

    \b
    Examples:
      tela feedback feedback.jsonl --from-log decisions.jsonl -o runs/feedback
      tela feedback feedback.jsonl --from-log shadow.jsonl --with runs/judged -o runs/labels
    """
    from tela_core.collect.feedback import feedback_records
    from tela_core.data.records import iter_jsonl, validate_seed_object
    from tela_core.infra.errors import TelaError
    from tela_core.infra.io import atomic_write_json, check_can_write, write_jsonl
    from tela_core.infra.locks import output_lock

    records_path = output / "records.jsonl"
    if output.exists() and not output.is_dir():
        raise TelaError(f"{output} is a file; give the folder to write records.jsonl into")
    check_can_write(records_path, force)
    judged_rows = []
    if judged is not None:
        path = judged / "records.jsonl" if judged.is_dir() else judged
        for lineno, obj in iter_jsonl(path):
            validate_seed_object(obj, path, lineno, require_label=False)
            judged_rows.append(obj)
    with output_lock(output):
        made = feedback_records(feedback_logs, logs, judged_rows)
        output.mkdir(parents=True, exist_ok=True)
        write_jsonl(records_path, made.records)
        summary = {"output": str(output), "records_file": str(records_path), "records": len(made.records)}
        atomic_write_json(output / "summary.json", {**summary, **made.counts})
    c = made.counts
    if as_json:
        click.echo(dumps_json({**summary, **c}))
        return
    skipped = {k[len("skipped_") :]: n for k, n in c.items() if k.startswith("skipped_") and n}
    click.echo(
        f"{len(made.records)} records -> {records_path}: {c['feedback']} from feedback, {c['judged']} from the judge"
        f" ({c['both']} of them also rated; the judge's record kept)"
    )
    click.echo(
        f"{c['rated_requests']} rated requests in {c['feedback_lines']} feedback lines"
        + (f"; skipped: {', '.join(f'{n} {k}' for k, n in skipped.items())}" if skipped else "")
    )
