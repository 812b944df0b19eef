"""A :class:`~tela_core.judging.plan.JudgePlan` run in an output folder: locked, resumed, budgeted.

:class:`JudgeJob` takes the folder (a second run into it stops at once), reads what an earlier run
judged (its final files and journal) and keeps every judgement whose key still applies, so only the
rest is asked; what earlier runs paid counts against ``max_cost``, including calls that gave no
judgement kept (a run stopped on unreadable replies paid for tries that gave none, a rerun asks
again what ended in an error: ``summary.json`` keeps that as ``unjudged_cost``).
:meth:`JudgeJob.run` checks each judge model, judges what is left (each judgement journalled the
moment it is known) and, however the run ends, writes the judgements, the records, the agreement
of the two judges and ``summary.json`` atomically.

:func:`judge_answers` is the whole of ``tela judge`` for a script: plan, run, summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from tela_core.collect.endpoints import CallSettings, check_models, make_engine, run_closing
from tela_core.collect.store import SUMMARY_NAME, OutputDir
from tela_core.infra.io import atomic_write_json

from .agreement import agreement
from .plan import JudgePlan, join_record, plan_judging
from .run import (
    AGREEMENT_JUDGEMENTS_NAME,
    AGREEMENT_NAME,
    JUDGEMENTS_NAME,
    RECORDS_NAME,
    JudgeStats,
    JudgeTask,
    calls_of,
    judge_all,
    previous_judgements,
    record_for,
)

__all__ = ["JudgeJob", "judge_answers", "OUTPUT_NAMES"]

#: the files a judge run writes into its output folder
OUTPUT_NAMES = (JUDGEMENTS_NAME, RECORDS_NAME, SUMMARY_NAME, AGREEMENT_NAME, AGREEMENT_JUDGEMENTS_NAME)


class JudgeJob:
    """``plan`` run into the folder ``output`` with ``settings`` (budget, limits, retries of the
    calls) and ``judge_retries`` (asking again for a reply the judge cannot read). Use as a context
    manager: entering takes the folder's lock and reads the earlier run's work; then :attr:`todo`,
    :attr:`estimate` and :attr:`results` say what is left, and :meth:`run` does it."""

    def __init__(
        self,
        plan: JudgePlan,
        output: str | Path,
        settings: CallSettings | None = None,
        *,
        force: bool = False,
        judge_retries: int = 2,
    ) -> None:
        self.plan = plan
        self.judge_retries = judge_retries
        self.engine = make_engine(plan.upstreams, settings or CallSettings())
        self.out = OutputDir(output, OUTPUT_NAMES, force=force)
        #: (role, id) -> the judgement of each prompt judged (earlier runs' still-valid ones first)
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        #: the tasks left to judge
        self.todo: list[JudgeTask] = []
        #: what earlier runs into this folder paid for judge calls whose judgement is not kept (calls that
        #: gave none, judgements in error or out of date, asked again now)
        self.unjudged_before = 0.0
        self.stats: JudgeStats | None = None
        #: the run's summary, once :meth:`run` ended
        self.summary: dict[str, Any] | None = None

    def __enter__(self) -> JudgeJob:
        self.out.__enter__()
        try:
            self._resume()
        except BaseException as e:
            self.out.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.__exit__(*exc)

    def _resume(self) -> None:
        previous = previous_judgements(self.out)
        for role, tasks in self.plan.tasks.items():
            for t in tasks:
                prev = previous.get((role, t.row.id))
                if prev is not None and prev.get("key") == t.key and not prev.get("error"):
                    self.results[(role, t.row.id)] = prev
                else:
                    self.todo.append(t)
        # paid before and in no judgement written from now on: the earlier summary's, and the rows asked again
        dropped = sum(float(p.get("cost") or 0.0) for k, p in previous.items() if k not in self.results)
        self.unjudged_before = _unjudged_cost(self.out.path(SUMMARY_NAME)) + dropped
        budget = self.engine.budget
        budget.spent = budget.spent_before = (
            sum(float(p.get("cost") or 0.0) for p in self.results.values()) + self.unjudged_before
        )

    @property
    def estimate(self) -> float:
        """The dollars :attr:`todo` is expected to cost (one try per judge call; unpriced models count 0)."""
        return sum(self.engine.estimate(c) for t in self.todo if t.endpoint for c in calls_of(t))

    def check_models(self) -> None:
        """Each judge model answers the check (reachable, key accepted, model listed); else a TelaError."""
        if self.plan.upstreams:
            check_models(self.engine, self.engine.timeout_s)

    def run(
        self, on_done: Callable[[JudgeStats], None] | None = None, progress: AbstractContextManager[Any] | None = None
    ) -> dict[str, Any]:
        """Judge :attr:`todo` (``on_done`` after each judgement, inside ``progress``), then write the
        output files; the summary (as ``summary.json``, with ``files``) is returned. The files are
        written however the run ends: done, at the budget, stopped on unreadable replies, or an
        exception (which then propagates)."""
        try:
            if self.todo:
                self.check_models()
                with progress or nullcontext():
                    self.stats = run_closing(
                        self.engine,
                        lambda: judge_all(
                            self.todo, self.engine, self.out, self.results, self.judge_retries, on_done=on_done
                        ),
                    )
        finally:
            self.summary = _finish(self)
        return self.summary


def _unjudged_cost(path: Path) -> float:
    """``unjudged_cost`` of an earlier run's summary (0 when there is none, or it cannot be read)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("unjudged_cost")
    except (OSError, ValueError, AttributeError):
        return 0.0
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


def _finish(job: JudgeJob) -> dict[str, Any]:
    """Write judgements, records, agreement and summary atomically from what is judged; drop the journal."""
    plan, out, stats, engine = job.plan, job.out, job.stats, job.engine
    weak, strong = plan.weak, plan.strong
    order = {r.id: i for i, r in enumerate(plan.rows)}
    by_id = {r.id: r for r in plan.rows}
    files: dict[str, list[dict[str, Any]]] = {}
    for role in plan.tasks:
        done = sorted((j for (rl, _id), j in job.results.items() if rl == role), key=lambda j: order.get(j["id"], 0))
        files[JUDGEMENTS_NAME if role == "judge" else AGREEMENT_JUDGEMENTS_NAME] = done
    main = files.get(JUDGEMENTS_NAME, [])
    records = [rec for j in main if (rec := record_for(by_id[j["id"]], j, weak, strong)) is not None]
    if plan.joined is not None:  # --join: the models judged before, beside this run's
        records = [join_record(rec, plan.joined) for rec in records]
    labels = Counter(r["messages"][-1]["content"] for r in records if r["messages"][-1]["role"] == "assistant")
    # calls paid for that gave no judgement (a stop on unreadable replies drops the prompts in flight)
    extra = engine.budget.spent_now - stats.cost if stats is not None else 0.0
    unjudged = job.unjudged_before + (extra if extra > 1e-9 else 0.0)  # not the sums' rounding
    judge = plan.judges["judge"]
    summary: dict[str, Any] = {
        "judge": judge.name,
        "options": judge.options.model_dump(mode="json"),
        "pair": {"weak": weak, "strong": strong},
        "models": list(plan.models),
        "outcomes_by_model": {
            m: n for m in plan.models if (n := sum(1 for r in records if m in (r.get("outcomes") or {})))
        },
        "prompts": len(plan.tasks.get("judge", [])),
        "judged": sum(1 for j in main if not j.get("error")),
        "errors": sum(1 for j in main if j.get("error")),
        "skipped": dict(plan.skipped.get("judge", {})),
        "records": len(records),
        "unlabelled": sum(1 for r in records if r["messages"][-1]["role"] != "assistant"),
        "labels": {k: labels[k] for k in sorted(labels)},
        "cost_total": sum(float(j.get("cost") or 0.0) for js in files.values() for j in js) + unjudged,
        "max_cost": engine.budget.limit,
        "stopped": stats.stopped if stats is not None else None,
        "stop_reason": stats.stop_reason if stats is not None else None,
        "this_run": None,
        "seconds": round(time.monotonic() - plan.started, 3),
    }
    if unjudged:
        summary["unjudged_cost"] = unjudged
    if stats is not None:
        # calls and money from the engine: a run stopped on unreadable replies paid for calls whose
        # prompts got no judgement (their tries, and the calls in flight), which stats never saw
        calls = sum(engine.sent.values()) - sum(engine.retried.values())
        summary["this_run"] = {
            "judged": stats.judged,
            "errors": stats.errors,
            "calls": max(stats.calls, calls),
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "cost": max(stats.cost, engine.budget.spent_now),
            "first_errors": stats.first_errors,
            "retries": dict(engine.retried),
            "seconds": round(stats.seconds, 3),
        }
    note = _pair_note(records, weak, strong)
    if note:
        summary["pair_note"] = note
    if "agreement" in plan.tasks:
        summary["agreement"] = _agreement(files[JUDGEMENTS_NAME], files[AGREEMENT_JUDGEMENTS_NAME], plan)
    unchanged = stats is None and not out.journal.path.exists() and out.path(JUDGEMENTS_NAME).exists()
    if main and not unchanged:
        for name, js in files.items():
            out.write_final(name, js)
        out.write_final(RECORDS_NAME, records)
        if "agreement" in summary:
            atomic_write_json(out.path(AGREEMENT_NAME), summary["agreement"])
        atomic_write_json(out.path(SUMMARY_NAME), summary)
        out.done()
    elif unjudged > job.unjudged_before:  # nothing judged, but paid for: a rerun's --max-cost counts it
        atomic_write_json(out.path(SUMMARY_NAME), summary)
    summary["files"] = (
        {"records": str(out.path(RECORDS_NAME)), "judgements": str(out.path(JUDGEMENTS_NAME))} if main else None
    )
    return summary


def _agreement(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], plan: JudgePlan) -> dict[str, Any]:
    """Raw agreement and Cohen's kappa of the two judges on the prompts both judged: on the labels
    (1..5; derived from outcomes like an outcome source when a judge gives none) and, per model, on
    the outcomes read as right (>= 0.5) or wrong."""
    from tela_core.data.labels import OutcomeOptions, label_for

    weak, strong = plan.weak, plan.strong

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
    shown = plan.shown
    names = [shown.get(role) or plan.judges[role].name for role in ("judge", "agreement")]
    out: dict[str, Any] = {
        "judges": names,
        "prompts": len(pairs),
        "label": agreement([label(x) for x, _ in pairs], [label(y) for _, y in pairs]).to_json(),
        "outcomes": {},
    }
    for model in plan.models if len(plan.models) > 2 else (weak, strong):
        res = agreement(
            [right(x, model) for x, _ in pairs], [right(y, model) for _, y in pairs], weights="none", categories=[0, 1]
        )
        if res.n:
            out["outcomes"][model] = res.to_json()
    return out


def _pair_note(records: Sequence[Mapping[str, Any]], weak: str, strong: str) -> str | None:
    """Say so when the judged outcomes would make ``tela run``/``eval``/``zoo`` read the pair the
    other way round: with no names given they take the model with the lower mean outcome as weak,
    and a cheap model that is also the better one would flip the pair (and the meaning of w)."""
    both = [r["outcomes"] for r in records if r.get("outcomes") and weak in r["outcomes"] and strong in r["outcomes"]]
    if not both or weak == strong:
        return None
    mw = sum(float(o[weak]) for o in both) / len(both)
    ms = sum(float(o[strong]) for o in both) / len(both)
    if mw < ms:
        return None
    return (
        f"the weak model {weak} scores {mw:.3f} on average and the strong {strong} {ms:.3f}: tela run, eval and zoo "
        f"take the lower-scoring model as weak unless told, so name the pair there: tela run --set "
        f"source.models.weak={weak} --set source.models.strong={strong}; tela eval/zoo --weak-model {weak} "
        f"--strong-model {strong}"
    )


def judge_answers(
    answers: str | Path,
    judge: str,
    output: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    judge_model: str | None = None,
    agreement: str | None = None,
    agreement_options: Mapping[str, Any] | None = None,
    agreement_model: str | None = None,
    weak_model: str | None = None,
    strong_model: str | None = None,
    config_file: str | Path | None = None,
    prices: Sequence[str] = (),
    sample: int | None = None,
    join: str | Path | None = None,
    settings: CallSettings | None = None,
    judge_retries: int = 2,
    force: bool = False,
) -> dict[str, Any]:
    """Judge ``answers`` with the registered judge ``judge`` into the folder ``output``, as
    ``tela judge`` does (the arguments are :func:`~tela_core.judging.plan.plan_judging`'s, and
    :class:`JudgeJob`'s ``settings``, ``judge_retries`` and ``force``); returns the summary, as
    written to ``output/summary.json``. Resumable: called again, it judges only what is missing."""
    settings = settings or CallSettings()
    plan = plan_judging(
        answers,
        judge,
        options=options,
        judge_model=judge_model,
        agreement=agreement,
        agreement_options=agreement_options,
        agreement_model=agreement_model,
        weak_model=weak_model,
        strong_model=strong_model,
        config_file=config_file,
        prices=prices,
        sample=sample,
        timeout_s=settings.timeout,
        join=join,
    )
    with JudgeJob(plan, output, settings, force=force, judge_retries=judge_retries) as job:
        return job.run()
