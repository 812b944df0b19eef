"""``tela judge``: a registered judge over collected answers, into training records (see
:mod:`tela_core.collect.verdicts`); ``--agreement`` compares two judges."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from tela_core.infra.io import dumps_json

from .paid_calls import (EXIT_CODES_HELP, EXIT_MISSING, EXIT_UNREADABLE, SUMMARY_NAME, CallProgress, check_models, duration, exit_if,
                         make_engine, money, run_checked)
from .options import force_option, json_option, output_option, paid_call_options, pair_options, refuse_unused, set_option

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
            raise TelaError(f"--set {item!r}: tela judge takes judge.KEY=VALUE (and agreement.KEY=VALUE with --agreement)")
        out[section][key] = value
    return out


def _make_judge(name: str, options: Mapping[str, Any]) -> Any:
    """The registered judge ``name`` with ``options`` (an unknown name lists the registered judges)."""
    from ..plugins import get_registry

    return get_registry().create("judge", name, options)


def _pair(models: Sequence[str], weak: str | None, strong: str | None, where: Path) -> tuple[str, str]:
    from ..infra.errors import TelaError

    for flag, m in (("--weak-model", weak), ("--strong-model", strong)):
        if m is not None and m not in models:
            raise TelaError(f"{flag} {m!r}: no such model in {where}; models: {', '.join(models)}")
    if len(models) < 2 and (weak is None or strong is None):
        raise TelaError(f"{where}: answers from one model only ({', '.join(models)}); a judge needs the pair's two answers")
    w = weak if weak is not None else models[0]
    s = strong if strong is not None else models[-1]
    if w == s:
        raise TelaError(f"the weak and the strong model are both {w!r}; name two models of {', '.join(models)}")
    return w, s


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--answers", "answers_path", required=True, type=click.Path(path_type=Path),
              help="tela collect's answers file, or its output folder (holding answers.jsonl).")
@click.option("--judge", "judge_name", required=True, metavar="NAME", help="The judge (see `tela plugins list --kind judge`).")
@set_option("sets", "judge.KEY=VALUE")
@click.option("--judge-model", "judge_model", default=None, metavar="[NAME=]URL#ID|NAME",
              help="The judge model, for judges that call one: NAME=URL#ID, or an upstream NAME of --config.")
@pair_options
@paid_call_options
@click.option("--judge-retries", "judge_retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Times a prompt is judged again when the judge's reply cannot be read; then it is recorded as an error.")
@click.option("--agreement", "agreement_name", default=None, metavar="NAME",
              help="Also run this second judge on the same prompts (--set agreement.KEY=VALUE) and report how far the two "
                   "agree (raw agreement, Cohen's kappa).")
@click.option("--agreement-model", "agreement_model", default=None, metavar="[NAME=]URL#ID|NAME",
              help="The second judge's model, when it calls another one than --judge-model.")
@click.option("--sample", type=click.IntRange(min=1), default=None, help="Judge N prompts drawn with seed 42.")
@output_option(required=True)
@force_option
@json_option
def judge(answers_path: Path, judge_name: str, sets: tuple[str, ...], judge_model: str | None, weak_model: str | None,
          strong_model: str | None, judge_retries: int, agreement_name: str | None, agreement_model: str | None,
          sample: int | None, output: Path, force: bool, as_json: bool, config_file: Path | None, prices: tuple[str, ...],
          dry_run: bool, **flags: Any) -> None:
    """Judge collected answers; write OUTPUT/records.jsonl for tela run, eval and zoo.

    The pair is the answers' first and last model (tela collect's --model order) unless
    --weak-model/--strong-model name it. Resumable and budgeted like tela collect: rerun after a
    kill and only what is missing is judged.

    \b
    Examples:
      tela judge --answers runs/answers --judge reference --set judge.grader=number -o runs/judged
      tela judge --answers runs/answers --judge llm-judge --judge-model judge=https://api.openai.com/v1#gpt-4o \\
                 --price judge=2.5,10 --max-cost 3 -o runs/judged
      tela judge --answers runs/answers --judge llm-judge --judge-model judge --config serve.yaml \\
                 --agreement reference --sample 200 -o runs/agreement
    """
    from ..collect.endpoints import resolve_models
    from ..collect.inputs import model_named, read_answers
    from ..collect.store import OutputDir
    from ..collect.verdicts import JUDGEMENTS_NAME, RECORDS_NAME, AGREEMENT_NAME, judge_all, judge_tasks, previous_judgements
    from ..data.sampling import subsample
    from ..infra.errors import TelaError

    started = time.monotonic()
    options = _judge_options(sets)
    if agreement_name is None:
        refuse_unused("--agreement-model and --set agreement.* go with --agreement", "agreement_model")
        if options["agreement"]:
            raise TelaError("--set agreement.KEY=VALUE goes with --agreement NAME")
    rows, models = read_answers(answers_path)
    # a model is named by its id; the upstream name it was collected through is taken too
    weak, strong = _pair(models, model_named(weak_model, rows, models), model_named(strong_model, rows, models), answers_path)
    judges = {"judge": _make_judge(judge_name, options["judge"])}
    if agreement_name is not None:
        judges["agreement"] = _make_judge(agreement_name, options["agreement"])
    # which model each judge calls
    specs = {"judge": judge_model, "agreement": agreement_model if agreement_model is not None else judge_model}
    flags_of = {"judge": "--judge-model", "agreement": "--agreement-model"}
    wanted: dict[str, str] = {}
    for role, j in judges.items():
        if j.needs_upstream and specs[role] is None:
            raise TelaError(f"judge {j.name!r} calls a judge model: give {flags_of[role]} NAME=URL#ID "
                            f"(or --config FILE {flags_of[role]} NAME)")
        if not j.needs_upstream and role == "judge" and judge_model is not None:
            raise TelaError(f"judge {j.name!r} calls no model; it does not take --judge-model")
        if not j.needs_upstream and role == "agreement" and agreement_model is not None:
            raise TelaError(f"judge {j.name!r} calls no model; it does not take --agreement-model")
        if j.needs_upstream:
            wanted[role] = str(specs[role])
    resolved: dict[str, Any] = {}
    endpoint_of: dict[str, str | None] = {"judge": None, "agreement": None}
    for role, spec in wanted.items():
        one = resolve_models([spec], config_file, (), flag=flags_of[role], timeout_s=flags.get("timeout"))
        name, cfg = next(iter(one.items()))
        if name in resolved and resolved[name][0] != cfg[0]:
            raise TelaError(f"{flags_of[role]}: two different judge models are named {name!r}; name them apart (NAME=URL#ID)")
        resolved[name] = cfg
        endpoint_of[role] = name
    # each judge as the user named it: the plugin and the judge model it calls (two llm-judges differ by model)
    shown = {role: j.name + (f" ({endpoint_of[role]})" if endpoint_of.get(role) else "") for role, j in judges.items()}
    if prices:
        from ..collect.endpoints import parse_price

        for item in prices:
            name, p = parse_price(item)
            if name not in resolved:
                raise TelaError(f"--price {item!r}: no judge model named {name!r}; judge models: {', '.join(resolved) or '(none)'}")
            up, src = resolved[name]
            resolved[name] = (up.model_copy(update={"price_input": p.input, "price_output": p.output}), src)
    elif not resolved:
        refuse_unused("these judges call no model", "config_file", "max_cost", "concurrency", "rpm", "tpm")
    engine = make_engine(resolved, flags)
    model_ids = {n: ep.model for n, ep in engine.endpoints.items()}

    tasks_by_role: dict[str, list[Any]] = {}
    skipped: dict[str, dict[str, int]] = {}
    for role, j in judges.items():
        ep = endpoint_of[role]
        tasks, skip = judge_tasks(rows, j, role, ep, model_ids.get(ep) if ep else None, weak, strong)
        if not tasks:
            if j.needs_reference and skip.get("no reference answer"):
                raise TelaError(f"judge {j.name!r} grades against reference answers, and no prompt of {answers_path} with both "
                                f"answers has one (give tela collect prompts with a \"reference\")")
            raise TelaError(f"{answers_path}: no prompt has answers from both {weak} and {strong} to judge")
        tasks_by_role[role], skipped[role] = tasks, skip
    if sample is not None:
        keep = {t.row.id for t in subsample(tasks_by_role["judge"], sample)}
        for role in tasks_by_role:
            tasks_by_role[role] = [t for t in tasks_by_role[role] if t.row.id in keep]
    if "agreement" in tasks_by_role:  # both judges on the same prompts
        common = {t.row.id for t in tasks_by_role["judge"]} & {t.row.id for t in tasks_by_role["agreement"]}
        for role in tasks_by_role:
            tasks_by_role[role] = [t for t in tasks_by_role[role] if t.row.id in common]

    err = sys.stderr
    names = [JUDGEMENTS_NAME, RECORDS_NAME, SUMMARY_NAME, AGREEMENT_NAME, "judgements-agreement.jsonl"]
    with OutputDir(output, names, force=force) as out:
        previous = previous_judgements(out)
        results: dict[tuple[str, str], dict[str, Any]] = {}
        todo: list[Any] = []
        for role, tasks in tasks_by_role.items():
            for t in tasks:
                prev = previous.get((role, t.row.id))
                if prev is not None and prev.get("key") == t.key and not prev.get("error"):
                    results[(role, t.row.id)] = prev
                else:
                    todo.append(t)
        engine.budget.spent = engine.budget.spent_before = sum(float(p.get("cost") or 0.0) for p in previous.values())
        est = sum(engine.estimate(c) for t in todo if t.endpoint for c in _calls_of(t))
        who = shown["judge"] + (f" and {shown['agreement']} (--agreement)" if "agreement" in judges else "")
        click.echo(f"{len(tasks_by_role['judge'])} prompts to judge with {who} (pair {weak} < {strong}): "
                   f"{len(results)} already judged, {len(todo)} to judge"
                   + "".join(f"; skipped {n} ({why})" for why, n in skipped["judge"].items()), file=err)
        if resolved and todo:
            click.echo(f"estimated cost {money(est)} (one try per judge call){'' if all(ep.prices.known for ep in engine.endpoints.values()) else '; a judge model without a price is not counted'}",
                       file=err)
            if engine.budget.limit is not None:
                click.echo(f"budget {money(engine.budget.limit)} (--max-cost): {money(engine.budget.spent)} spent on this output before",
                           file=err)
        if dry_run:
            if resolved:
                check_models(engine, engine.timeout_s)  # reachable, key accepted, model listed
            return
        stats = None
        try:
            if todo:
                if resolved:
                    check_models(engine, engine.timeout_s)
                with CallProgress(f"judge {len(todo)}", len(todo), engine) as bar:
                    stats = run_checked(engine, lambda: judge_all(todo, engine, out, results, judge_retries,
                                                                  on_done=lambda s: bar.advance(s.errors)))
        finally:
            summary = _finish(out, rows, tasks_by_role, results, skipped, judges, weak, strong, stats, engine, started, shown)
    if as_json:
        click.echo(dumps_json(summary, indent=2, ensure_ascii=True))  # strict JSON, as summary.json
    else:
        _print_summary(summary)
    if summary["stopped"] == "unreadable":
        click.echo(f"Error: {summary['stop_reason']}", err=True)
        exit_if(EXIT_UNREADABLE)
    exit_if(EXIT_MISSING if summary["errors"] else 0)


def _calls_of(task: Any) -> list[Any]:
    from ..collect.calls import Call

    return [Call(endpoint=task.endpoint, messages=list(r.messages), max_tokens=r.max_tokens,
                 expected_output_tokens=r.max_tokens or 256) for r in task.judge.requests(task.item)]


def _finish(out: Any, rows: Sequence[Any], tasks_by_role: Mapping[str, list[Any]], results: Mapping[tuple[str, str], dict[str, Any]],
            skipped: Mapping[str, Mapping[str, int]], judges: Mapping[str, Any], weak: str, strong: str, stats: Any, engine: Any,
            started: float, shown: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write judgements, records, agreement and summary atomically from what is judged; drop the journal."""
    from ..collect.verdicts import AGREEMENT_NAME, JUDGEMENTS_NAME, RECORDS_NAME, record_for
    from ..infra.io import atomic_write_json

    order = {r.id: i for i, r in enumerate(rows)}
    by_id = {r.id: r for r in rows}
    files: dict[str, list[dict[str, Any]]] = {}
    for role in tasks_by_role:
        done = sorted((j for (rl, _id), j in results.items() if rl == role), key=lambda j: order.get(j["id"], 0))
        files[JUDGEMENTS_NAME if role == "judge" else "judgements-agreement.jsonl"] = done
    main = files.get(JUDGEMENTS_NAME, [])
    records = [rec for j in main if (rec := record_for(by_id[j["id"]], j, weak, strong)) is not None]
    labels = Counter(r["messages"][-1]["content"] for r in records if r["messages"][-1]["role"] == "assistant")
    summary: dict[str, Any] = {
        "judge": judges["judge"].name, "options": judges["judge"].options.model_dump(mode="json"),
        "pair": {"weak": weak, "strong": strong},
        "prompts": len(tasks_by_role.get("judge", [])), "judged": sum(1 for j in main if not j.get("error")),
        "errors": sum(1 for j in main if j.get("error")), "skipped": dict(skipped.get("judge", {})),
        "records": len(records), "unlabelled": sum(1 for r in records if r["messages"][-1]["role"] != "assistant"),
        "labels": {k: labels[k] for k in sorted(labels)},
        "cost_total": sum(float(j.get("cost") or 0.0) for js in files.values() for j in js),
        "max_cost": engine.budget.limit, "stopped": stats.stopped if stats is not None else None,
        "stop_reason": stats.stop_reason if stats is not None else None, "this_run": None, "seconds": round(time.monotonic() - started, 3),
    }
    if stats is not None:
        # calls and money from the engine: a run stopped on unreadable replies paid for calls whose
        # prompts got no judgement (their tries, and the calls in flight), which stats never saw
        calls = sum(engine.sent.values()) - sum(engine.retried.values())
        summary["this_run"] = {"judged": stats.judged, "errors": stats.errors, "calls": max(stats.calls, calls),
                               "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
                               "cost": max(stats.cost, engine.budget.spent_now), "first_errors": stats.first_errors,
                               "retries": dict(engine.retried),
                               "seconds": round(stats.seconds, 3)}
    note = _pair_note(records, weak, strong)
    if note:
        summary["pair_note"] = note
    if "agreement" in tasks_by_role:
        summary["agreement"] = _agreement(files[JUDGEMENTS_NAME], files["judgements-agreement.jsonl"], judges, weak, strong, shown)
    wrote = []
    unchanged = stats is None and not out.journal.path.exists() and out.path(JUDGEMENTS_NAME).exists()
    if main and not unchanged:
        for name, js in files.items():
            out.write_final(name, js)
            wrote.append(str(out.path(name)))
        out.write_final(RECORDS_NAME, records)
        if "agreement" in summary:
            atomic_write_json(out.path(AGREEMENT_NAME), summary["agreement"])
        atomic_write_json(out.path(SUMMARY_NAME), summary)
        out.done()
    summary["files"] = {"records": str(out.path(RECORDS_NAME)), "judgements": str(out.path(JUDGEMENTS_NAME))} if main else None
    return summary


def _agreement(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], judges: Mapping[str, Any], weak: str,
               strong: str, shown: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Raw agreement and Cohen's kappa of the two judges on the prompts both judged: on the labels
    (1..5; derived from outcomes like an outcome source when a judge gives none) and, per model, on
    the outcomes read as right (>= 0.5) or wrong."""
    from ..data.labels import OutcomeOptions, label_for
    from ..judging.agreement import agreement

    def label(j: Mapping[str, Any]) -> int | None:
        if j.get("error"):
            return None
        if j.get("label") is not None:
            return int(j["label"])
        o = j.get("outcomes") or {}
        return label_for(o[weak], o[strong], OutcomeOptions.model_validate({})) if weak in o and strong in o else None

    def right(j: Mapping[str, Any], model: str) -> int | None:
        o = j.get("outcomes") or {}
        return None if j.get("error") or model not in o else int(float(o[model]) >= 0.5)

    by_b = {j["id"]: j for j in b}
    pairs = [(j, by_b[j["id"]]) for j in a if j["id"] in by_b]
    names = [(shown or {}).get(role) or judges[role].name for role in ("judge", "agreement")]
    out: dict[str, Any] = {"judges": names, "prompts": len(pairs),
                           "label": agreement([label(x) for x, _ in pairs], [label(y) for _, y in pairs]).to_json(),
                           "outcomes": {}}
    for model in (weak, strong):
        res = agreement([right(x, model) for x, _ in pairs], [right(y, model) for _, y in pairs], weights="none",
                        categories=[0, 1])
        if res.n:
            out["outcomes"][model] = res.to_json()
    return out


def _pair_note(records: Sequence[Mapping[str, Any]], weak: str, strong: str) -> str | None:
    """Say so when the judged outcomes would make ``tela run``/``eval``/``zoo`` read the pair the
    other way round: with no names given they take the model with the lower mean outcome as weak,
    and a cheap model that is also the better one would flip the pair (and the meaning of w)."""
    both = [r["outcomes"] for r in records if r.get("outcomes") and weak in r["outcomes"] and strong in r["outcomes"]]
    if not both:
        return None
    mw = sum(float(o[weak]) for o in both) / len(both)
    ms = sum(float(o[strong]) for o in both) / len(both)
    if mw < ms:
        return None
    return (f"the weak model {weak} scores {mw:.3f} on average and the strong {strong} {ms:.3f}: tela run, eval and zoo "
            f"take the lower-scoring model as weak unless told, so name the pair there: tela run --set "
            f"source.models.weak={weak} --set source.models.strong={strong}; tela eval/zoo --weak-model {weak} "
            f"--strong-model {strong}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _print_summary(s: Mapping[str, Any]) -> None:
    run = s.get("this_run")
    if run:
        click.echo(f"judged {run['judged'] + run['errors']}: {run['judged']} verdicts, {run['errors']} errors; {run['calls']} judge calls, "
                   f"{run['prompt_tokens']:,} prompt + {run['completion_tokens']:,} reply tokens; {money(run['cost'])}; "
                   f"{duration(run['seconds'])}")
        for line in run["first_errors"]:
            click.echo(f"  error: {line}")
    if s.get("pair_note"):
        click.echo(f"note: {s['pair_note']}", err=True)
    if s["stopped"] == "budget":
        click.echo(f"stopped at the budget ({money(s['max_cost'])}, --max-cost): rerun with a higher --max-cost to continue")
    labels = ", ".join(f"{k} {n}" for k, n in s["labels"].items())
    click.echo(f"{s['records']} records ({labels or 'no labels'}), {s['errors']} errors, "
               f"{sum(s['skipped'].values())} skipped; judge calls {money(s['cost_total'])} in all")
    agr = s.get("agreement")
    if agr:
        lab = agr["label"]
        click.echo(f"agreement of {agr['judges'][0]} and {agr['judges'][1]} on {lab['n']} prompts: labels raw {_fmt(lab['raw'])}, "
                   f"kappa {_fmt(lab['kappa'])} ({lab['weights']})")
        for model, a in agr["outcomes"].items():
            click.echo(f"  {model} right/wrong: raw {_fmt(a['raw'])}, kappa {_fmt(a['kappa'])} on {a['n']}")
    if s.get("files"):
        click.echo(f"wrote {s['files']['records']} and {s['files']['judgements']}")
