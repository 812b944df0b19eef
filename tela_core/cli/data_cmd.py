"""``tela data``: check, sample, convert, split and preview training and outcome data.

Every command reads its input through a registered data source (``--source``, default: detected
from the path), so a bad line is reported as ``FILE:LINE: what is wrong`` with exit code 2 before
anything is written. Outputs are written atomically and never replace a file without ``--force``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from tela_core.data.detect import open_source, read_records
from tela_core.data.duplicates import find_duplicates
from tela_core.data.protocols import names
from tela_core.data.protocols import split as protocol_split
from tela_core.data.records import iter_jsonl
from tela_core.data.sampling import subsample
from tela_core.infra.errors import InputError, NoRecordsError, TelaError
from tela_core.infra.io import atomic_write_json, check_can_write, dumps_json, write_jsonl
from tela_core.infra.locks import output_lock
from tela_core.plugins.discovery import get_registry
from tela_core.routing.targets import model_names

from ..train import parse_overrides
from . import tables
from .options import force_option, json_option, output_option, pair_options, protocol_option, set_option, source_option

__all__ = ["register", "data", "summarize"]

_source_opt = source_option()
_with_pair = pair_options
_in_path = click.Path(path_type=Path)


def register(cli: click.Group) -> None:
    """Attach ``tela data`` to ``cli``."""
    cli.add_command(data)


@click.group()
def data() -> None:
    """Check, sample, convert and preview data; list and get public router datasets."""


def _open(path: Path, source_name: str, weak: str | None = None, strong: str | None = None) -> Any:
    return open_source(path, source_name, {"weak_model": weak, "strong_model": strong})


def _read_all(source: Any, path: Path) -> list[Any]:
    """Every record of ``path``, validated; an input without records is an error."""
    records = list(source.records(path))
    if not records:
        raise NoRecordsError(path)
    return records


def _write_jsonl(out: Path, objects: Iterable[dict[str, Any]]) -> int:
    return write_jsonl(out, objects)


# ------------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------------


def summarize(records: Sequence[Any], source: Any) -> dict[str, Any]:
    """Counts a user checks before training: labels, groups, per-model outcome and cost means."""
    labels = Counter(r.label for r in records if r.label is not None)
    models: dict[str, dict[str, float | None]] = {}
    sums: dict[str, list[float]] = {}
    for r in records:
        for m, v in (r.outcomes or {}).items():
            s = sums.setdefault(m, [0, 0.0, 0, 0.0])
            s[0] += 1
            s[1] += v
        for m, c in (r.costs or {}).items():
            s = sums.setdefault(m, [0, 0.0, 0, 0.0])
            s[2] += 1
            s[3] += c
    for m, (n, tot, nc, ctot) in sums.items():
        models[m] = {"n": n, "mean_outcome": tot / n if n else None, "mean_cost": ctot / nc if nc else None}
    opts = getattr(source, "options", None)
    return {
        "source": source.name,
        "records": len(records),
        "labels": {str(k): labels.get(k, 0) for k in range(1, 6)},
        "unlabelled": sum(1 for r in records if r.label is None),
        "groups": len({r.group for r in records if r.group is not None}),
        "models": models,
        "weak_model": getattr(opts, "weak_model", None),
        "strong_model": getattr(opts, "strong_model", None),
        "notes": dict(source.stats),
    }


def _print_summary(path: Path, s: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    con = Console(soft_wrap=not tables.stdout_is_terminal())  # piped: whole lines, not 80 columns
    con.print(f"[bold]{escape(str(path))}[/]: {s['records']} records, source [cyan]{s['source']}[/]", highlight=False)
    labelled = sum(s["labels"].values())
    if labelled:
        t = Table(title="labels", title_justify="left")
        t.add_column("label", justify="right")
        t.add_column("count", justify="right")
        t.add_column("share", justify="right")
        t.add_column("")
        for k, n in s["labels"].items():
            share = n / labelled
            t.add_row(Text(f"[[{k}]]"), str(n), f"{share:.1%}", "█" * round(share * 30))
        tables.print_table(t, con)
    if s["unlabelled"]:
        con.print(f"unlabelled records: {s['unlabelled']}")
    if s["groups"]:
        con.print(f"groups: {s['groups']}")
    if s["models"]:
        t = Table(title="outcomes per model", title_justify="left")
        t.add_column("model")
        t.add_column("records", justify="right")
        t.add_column("mean outcome", justify="right")
        t.add_column("mean cost $", justify="right")
        for m, v in sorted(s["models"].items(), key=lambda kv: kv[1]["mean_outcome"] or 0):
            role = " (weak)" if m == s["weak_model"] else " (strong)" if m == s["strong_model"] else ""
            cost = "-" if v["mean_cost"] is None else f"{v['mean_cost']:.3g}"
            outcome = "-" if v["mean_outcome"] is None else f"{v['mean_outcome']:.1%}"  # costs without outcomes
            t.add_row(escape(m) + role, str(v["n"]), outcome, cost)
        tables.print_table(t, con)
    for k, v in s["notes"].items():
        con.print(f"{k.replace('_', ' ')}: {v}", highlight=False)


@data.command("check")
@click.argument("file", type=_in_path)
@_source_opt
@_with_pair
@json_option
def check(file: Path, source_name: str, weak_model: str | None, strong_model: str | None, as_json: bool) -> None:
    """Validate FILE and print counts, the label histogram and per-model outcomes (--json: as JSON).

    Exit code 2 with FILE:LINE: message on the first bad record.
    """
    source = _open(file, source_name, weak_model, strong_model)
    records = _read_all(source, file)
    summary = summarize(records, source)
    dups = find_duplicates(records)
    summary["duplicates"] = {"prompts": dups.prompts, "records": dups.records, "conflicting": dups.conflicting}
    if dups.warning():
        click.echo(dups.warning(), err=True)
    if as_json:
        click.echo(dumps_json(summary, indent=2, ensure_ascii=True))
    else:
        _print_summary(file, summary)


# ------------------------------------------------------------------------------------------------
# sample / convert
# ------------------------------------------------------------------------------------------------


@data.command("sample")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="How many records to keep.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed (42: the seed's choice).")
@click.argument("in_path", metavar="IN", type=_in_path)
@click.argument("out_path", metavar="OUT", type=_in_path)
@_source_opt
@_with_pair
@force_option
def sample(
    n: int,
    seed: int,
    in_path: Path,
    out_path: Path,
    source_name: str,
    weak_model: str | None,
    strong_model: str | None,
    force: bool,
) -> None:
    """Write N records of IN, drawn as the seed's pandas df.sample(n=N, random_state=42) does.

    A seed JSONL file keeps its lines' objects as they are; outcome data is written as seed
    JSONL with outcomes. N >= the number of records keeps them all, in order. An existing OUT
    is replaced only with --force.
    """
    check_can_write(out_path, force)
    source = _open(in_path, source_name, weak_model, strong_model)
    records = _read_all(source, in_path)
    chosen = subsample(list(range(len(records))), n, seed)
    if source.name == "jsonl":  # keep the user's objects (and any keys tela does not know)
        raw = [obj for _, obj in iter_jsonl(in_path)]
        objects = [raw[i] for i in chosen]
    else:
        objects = [records[i].to_json() for i in chosen]
    written = _write_jsonl(out_path, objects)
    click.echo(f"wrote {written} of {len(records)} records to {out_path}")


@data.command("convert")
@click.argument("in_path", metavar="IN", type=_in_path)
@click.argument("out_path", metavar="OUT", type=_in_path)
@_source_opt
@_with_pair
@force_option
def convert(
    in_path: Path, out_path: Path, source_name: str, weak_model: str | None, strong_model: str | None, force: bool
) -> None:
    """Convert IN (outcome data) to seed-format JSONL.

    Each line holds the seed's `messages` (system prompt, `[Question]` template, `[[k]]` label
    from the outcome mapping) and `prompt`, plus `outcomes`, `costs`, `group` and `id` where
    known, so one file serves `tela run` (training) and `tela eval`. An existing OUT is replaced
    only with --force.
    """
    check_can_write(out_path, force)
    source = _open(in_path, source_name, weak_model, strong_model)
    records = _read_all(source, in_path)
    written = _write_jsonl(out_path, (r.to_json() for r in records))
    labels = Counter(r.label for r in records if r.label is not None)
    hist = ", ".join(f"[[{k}]]: {labels.get(k, 0)}" for k in range(1, 6))
    click.echo(f"wrote {written} records ({source.name}) to {out_path}; labels {hist}")


# ------------------------------------------------------------------------------------------------
# split: a protocol's sides as files
# ------------------------------------------------------------------------------------------------

#: what ``tela data split`` writes into its output folder
SPLIT_FILES = ("train.jsonl", "eval.jsonl", "split.json")


@data.command("split")
@click.argument("in_path", metavar="IN", type=_in_path)
@protocol_option
@output_option(required=True)
@_source_opt
@_with_pair
@force_option
def split(
    in_path: Path,
    protocol: str | None,
    output: Path,
    source_name: str,
    weak_model: str | None,
    strong_model: str | None,
    force: bool,
) -> None:
    """Write the two sides of IN under --protocol into OUTPUT: train.jsonl (training and
    calibration), eval.jsonl (the held-out side `tela eval` judges on) and split.json (counts and
    where they came from).

    Both files are seed JSONL with outcomes, costs, group and id, as `tela data convert` writes
    them, so `tela run --data OUTPUT/train.jsonl` and `tela eval --data OUTPUT/eval.jsonl` read them
    as they are. Existing files are replaced only with --force.

    \b
    Example:
      tela data split --protocol mmlu-heldout -o splits/mmlu "$(tela data get routellm-mmlu)"
    """
    if protocol is None:
        raise TelaError(f"--protocol is required: the split to write (one of {', '.join(names())})")
    if output.exists() and not output.is_dir():
        raise TelaError(f"{output} is a file; --output must be a directory")
    for name in SPLIT_FILES:
        check_can_write(output / name, force)
    records, source, info = read_records(in_path, source_name, weak_model, strong_model)
    try:
        train, evals = protocol_split(protocol, records)
    except TelaError as e:
        raise InputError(in_path, None, str(e)) from None
    opts = getattr(source, "options", None)
    weak, strong = getattr(opts, "weak_model", None), getattr(opts, "strong_model", None)
    models = model_names(records)
    with output_lock(output):
        for name in SPLIT_FILES:
            check_can_write(output / name, force)  # again, now that no one else writes here
        n_train = _write_jsonl(output / "train.jsonl", (r.to_json() for r in train))
        n_eval = _write_jsonl(output / "eval.jsonl", (r.to_json() for r in evals))
        atomic_write_json(
            output / "split.json",
            {
                "protocol": protocol,
                "data": str(in_path.resolve()),
                "source": source.name,
                "records_read": info["records_read"],
                "train": n_train,
                "eval": n_eval,
                "dropped": info["records_read"] - n_train - n_eval,
                "models": models,
                "weak_model": weak if weak in models else None,
                "strong_model": strong if strong in models else None,
            },
        )
    click.echo(
        f"wrote {n_train} training-side and {n_eval} held-out records of {in_path} ({protocol}) to {output}; "
        f"{info['records_read'] - n_train - n_eval} dropped by the protocol",
        err=True,
    )
    if len(models) > 2 and weak in models and strong in models:
        click.echo(
            f"the files keep all {len(models)} models' outcomes; name the pair when you use them: "
            f"tela run --set source.models.weak={weak} --set source.models.strong={strong}, "
            f"tela eval --weak-model {weak} --strong-model {strong}",
            err=True,
        )
    click.echo(str(output))


# ------------------------------------------------------------------------------------------------
# preview
# ------------------------------------------------------------------------------------------------


def _load_tokenizer(path: Path) -> Any:
    """A local tokenizer dir (never a hub name, never its own code); one line naming it otherwise."""
    if not path.is_dir():
        raise TelaError(
            f"{path}: --tokenizer must be a local tokenizer directory ({'a file' if path.exists() else 'not found'})"
        )
    from transformers import AutoTokenizer  # only when asked for

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, ... with long messages
        said = " ".join(str(e).split()) or type(e).__name__
        said = said if len(said) <= 200 else said[:197] + "..."
        raise TelaError(f"{path}: cannot load a tokenizer from it: {said}") from None


@data.command("preview")
@click.option(
    "--formatter", "formatter_name", required=True, metavar="NAME", help="Formatter to apply (e.g. role-prefix)."
)
@click.argument("file", type=_in_path)
@click.option("--n", "n", type=click.IntRange(min=1), default=3, show_default=True, help="How many records to show.")
@_source_opt
@click.option(
    "--tokenizer", type=click.Path(path_type=Path), default=None, help="Tokenizer dir (chat-template needs one)."
)
@set_option("overrides", "formatter.KEY=VALUE")
def preview(
    file: Path, formatter_name: str, n: int, source_name: str, tokenizer: Path | None, overrides: tuple[str, ...]
) -> None:
    """Show the first N records of FILE as the formatter turns them into text.

    The prompt (what the router sees at inference) is dim; the completion (where the training
    loss goes) is bold green.
    """
    from rich.console import Console
    from rich.text import Text

    sections = parse_overrides(overrides)
    if set(sections) - {"formatter_options"}:
        raise TelaError("--set: `tela data preview` takes formatter options only (formatter.KEY=VALUE)")
    formatter = get_registry().create("formatter", formatter_name, sections.get("formatter_options"))
    tok = None
    if tokenizer is not None:
        tok = _load_tokenizer(tokenizer)
    source = _open(file, source_name)
    shown = []
    for record in source.records(file):
        shown.append(record)
        if len(shown) >= n:
            break
    if not shown:
        raise NoRecordsError(file)
    con = Console(highlight=False, soft_wrap=True)
    for i, r in enumerate(shown, start=1):
        f = formatter.format(r.messages, tokenizer=tok)
        meta = " · ".join(x for x in (r.id and f"id {r.id}", r.group, r.label and f"label {r.label}") if x)
        con.rule(Text(f"record {i}" + (f" · {meta}" if meta else "")))
        text = f.prompt + f.completion
        con.print(
            Text(f.prompt, style="dim") + Text(f.completion, style="bold green"),
            end="" if text.endswith("\n") else "\n",
        )
    con.rule()


# ------------------------------------------------------------------------------------------------
# list / get: the catalogue of public datasets (tela_core.data.catalogue, tela_core.data.download)
# ------------------------------------------------------------------------------------------------


@data.command("list")
@json_option
def list_datasets(as_json: bool) -> None:
    """List the public datasets `tela data get` can fetch: origin, license, revision, status
    (--json: also URLs and checksums)."""
    from tela_core.data.download import (  # start-up: keeps ssl and http.client out of `tela --help`
        dataset_dir,
        installed,
    )

    entries = [e for e, _ in sorted(get_registry().datasets.values(), key=lambda ep: ep[0].name)]
    if as_json:
        rows = [
            {**e.to_json(), "in_cache": installed(e) is not None, "path": str(dataset_dir(e.name))} for e in entries
        ]

        click.echo(dumps_json(rows, indent=2, ensure_ascii=True))
        return
    if not tables.stdout_is_terminal():  # piped: one full line per dataset
        tables.print_rows(
            ("name", "source", "license", "revision", "files", "state", "description"),
            [
                (
                    e.name,
                    e.source or "-",
                    e.license,
                    e.revision or "unpinned",
                    len(e.files),
                    "in cache" if installed(e) is not None else "not fetched",
                    e.description,
                )
                for e in entries
            ],
        )
        return
    from rich.console import Console
    from rich.markup import escape

    con = Console(highlight=False)
    for e in entries:
        state = "[green]in cache[/]" if installed(e) is not None else "not fetched"
        con.print(
            f"[bold]{e.name}[/]  source {e.source or '-'} · {escape(e.license)} · "
            f"revision {(e.revision or 'unpinned')[:12]} · {len(e.files)} file(s) · {state}"
        )
        con.print(f"    {escape(e.description)}", style="dim")
    con.print("tela data get NAME fetches one; tela data list --json shows origins, URLs and checksums.")


@data.command("get")
@click.argument("name")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Copy the files from DIR (downloaded by hand) instead of downloading them.",
)
@force_option
def get(name: str, from_dir: Path | None, force: bool) -> None:
    """Download dataset NAME into the cache, verify its checksums, print where it is.

    The last line on stdout is the folder to pass as --data, e.g. DATA=$(tela data get routellm-mmlu).
    A download cut short resumes when run again; a checksum mismatch keeps nothing; --force fetches
    again even if the dataset is already in the cache.
    """
    from tela_core.data.download import fetch  # start-up: keeps ssl and http.client out of `tela --help`

    entry = get_registry().dataset(name)
    err = lambda m: click.echo(m, err=True)  # noqa: E731
    result = fetch(entry, from_dir=from_dir, force=force, echo=err)
    n = len(result.manifest.get("files") or {})
    rev = result.manifest.get("revision") or result.manifest.get("resolved_revision") or "unpinned"
    state = "fetched, sha256 verified" if result.fetched else "already in the cache (verified when fetched)"
    err(f"{entry.name}: {state}, {n} file(s); {entry.origin} at {rev}")
    err(f"license: {entry.license}")
    if entry.source:
        err(f"read it with: --source {entry.source} --data {result.data_path}")
    click.echo(str(result.data_path))
