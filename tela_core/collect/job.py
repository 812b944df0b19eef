"""Collecting answers as a library: what ``tela collect`` does, for a script.

:func:`prompt_rows` reads the prompts (any data source, a prompt file, or ``tela serve``'s logs with
the answers they hold). :class:`CollectJob` runs them into an output folder: entering takes the
folder's lock and plans what is left to ask (answers already there, or in the log, are kept and
their cost counted against the budget); :attr:`CollectJob.estimate` is the cost estimate, and
:meth:`CollectJob.run` checks each model, asks what is left (each answer journalled the moment it
arrives) and, however the run ends, writes ``answers.jsonl`` and ``summary.json`` atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from tela_core.data.sampling import subsample
from tela_core.infra.errors import InputError, TelaError
from tela_core.infra.io import atomic_write_json

from .answers import (
    AnswerPlan,
    CollectStats,
    answer_keys,
    canonical_key,
    collect_answers,
    estimate_plan,
    final_rows,
    plan_answers,
    price_logged_answers,
    spent_on,
)
from .calls import AuthFailed
from .endpoints import CallSettings, check_models, make_engine, run_closing
from .inputs import ANSWERS_NAME, PromptRow, merge_rows, rows_from_logs, rows_from_prompt_file, rows_from_source
from .store import SUMMARY_NAME, OutputDir

__all__ = ["CollectJob", "prompt_rows", "cap_logged_answers"]


def prompt_rows(
    data: Path | None = None,
    source: str | None = None,
    source_options: Mapping[str, Any] | None = None,
    prompts_file: Path | None = None,
    logs: Sequence[Path] = (),
) -> tuple[list[PromptRow], dict[str, Any]]:
    """The prompts to ask, from exactly one of ``data`` (read by ``source``, detected when None,
    with ``source_options``), ``prompts_file`` or ``logs``; and notes on what was read (logged
    requests without a prompt, ...). Two prompts with one id but different text are an
    :class:`~tela_core.infra.errors.InputError` naming both."""
    given = [name for name, v in (("--data", data), ("--prompts", prompts_file), ("--from-log", logs)) if v]
    if len(given) != 1:
        raise TelaError(
            "give the prompts with one of --data (any data source), --prompts (a prompt file) or "
            f"--from-log (tela serve's logs){'; got ' + ' and '.join(given) if given else ''}"
        )
    if data is not None:
        return _refuse_one_id_two_prompts(rows_from_source(data, source, dict(source_options or {})), data), {}
    if prompts_file is not None:
        return _refuse_one_id_two_prompts(rows_from_prompt_file(prompts_file), prompts_file), {}
    return rows_from_logs(list(logs))


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


def cap_logged_answers(rows: Sequence[Any], cap: int | None) -> None:
    """An answer read from a log longer than ``cap`` characters (``--max-answer-chars``) is kept as
    asked ones are: as an error, its text not stored (and it is asked again, as an answer in error is)."""
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


def _models_answering(rows: Sequence[PromptRow], models: Mapping[str, Any]) -> Mapping[str, Any]:
    """Of ``models`` (name -> (upstream config, where)), those some row's answer came from, in
    their order; all of them when none did (the plan then says the rows hold no answer of them)."""
    keys = answer_keys({n: getattr(up, "model", None) for n, (up, _src) in models.items()})
    used = {
        canonical_key(k, a, keys)
        for r in rows
        for k, a in r.answers.items()
        if isinstance(a, Mapping) and isinstance(a.get("text"), str) and not a.get("error")
    }
    kept = {n: v for n, v in models.items() if keys[n] in used}
    return kept or models


class CollectJob:
    """``rows`` asked of ``models`` (name -> endpoint config, from
    :func:`~tela_core.collect.endpoints.resolve_models`) into the folder ``output``, with
    ``settings`` (budget, limits, retries). The same prompt twice is asked once (:attr:`repeats`
    counts them); ``sample`` asks N prompts drawn with seed 42 (as ``tela data sample``).
    ``ask=False`` keeps the answers the rows hold and asks nothing (``--only-logged``);
    ``logged_models`` keeps of ``models`` those the rows' answers came from (``--only-logged``
    without ``--model``: not every upstream of the config, a judge's included). Use as a
    context manager: entering takes the folder's lock and plans the run; then :attr:`plan` and
    :attr:`estimate` say what is left, and :meth:`run` does it."""

    def __init__(
        self,
        rows: Sequence[PromptRow],
        models: Mapping[str, Any],
        output: str | Path,
        settings: CallSettings | None = None,
        *,
        force: bool = False,
        ask: bool = True,
        sample: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        expected_output_tokens: int = 256,
        logged_models: bool = False,
    ) -> None:
        self.rows, self.repeats = merge_rows(rows)
        if logged_models:
            models = _models_answering(self.rows, models)
        if sample is not None:
            self.rows = subsample(self.rows, sample)
        settings = settings or CallSettings()
        cap_logged_answers(self.rows, settings.max_answer_chars)
        self.models = dict(models)
        self.engine = make_engine(self.models, settings)
        self.out = OutputDir(output, [ANSWERS_NAME, SUMMARY_NAME], force=force)
        self.ask = ask
        self.max_tokens = max_tokens
        self.params = {"temperature": temperature} if temperature is not None else {}
        self.expected_output_tokens = expected_output_tokens
        self.started = time.monotonic()
        self.plan: AnswerPlan | None = None
        #: the cost estimate of what is left (:func:`~tela_core.collect.answers.estimate_plan`)
        self.estimate: dict[str, Any] = {}
        self.stats: CollectStats | None = None

    def __enter__(self) -> CollectJob:
        self.out.__enter__()
        try:
            self.plan = plan_answers(
                self.rows,
                list(self.models),
                {n: ep.model for n, ep in self.engine.endpoints.items()},
                self.out,
                ANSWERS_NAME,
                ask=self.ask,
            )
            self.engine.budget.spent = self.engine.budget.spent_before = spent_on(self.plan.rows)
            price_logged_answers(self.plan.rows, self.engine.endpoints)
            self.estimate = estimate_plan(self.plan, self.engine, self.max_tokens, self.expected_output_tokens)
        except BaseException as e:
            self.out.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.__exit__(*exc)

    def check_models(self) -> None:
        """Each model answers the check (reachable, key accepted, model listed); else a TelaError."""
        check_models(self.engine, self.engine.timeout_s)

    def run(
        self,
        on_answer: Callable[[CollectStats], None] | None = None,
        progress: AbstractContextManager[Any] | None = None,
    ) -> dict[str, Any]:
        """Ask what is left (``on_answer`` after each answer, inside ``progress``), then write the
        answers and the summary; the summary (as ``summary.json``, with ``file``) is returned. The
        answers are written however the run ends; ``summary.json`` too, except on an exception other
        than an upstream refusing the key (which then propagates)."""
        plan = self.plan
        assert plan is not None, "use CollectJob as a context manager"
        try:
            if plan.jobs:
                self.check_models()
                with progress or nullcontext():
                    self.stats = run_closing(
                        self.engine,
                        lambda: collect_answers(
                            plan,
                            self.engine,
                            self.out,
                            max_tokens=self.max_tokens,
                            params=self.params,
                            expected_output_tokens=self.expected_output_tokens,
                            on_answer=on_answer,
                        ),
                    )
        except AuthFailed:
            self._finish(write_summary=True)
            raise
        except BaseException:
            self._finish(write_summary=False)
            raise
        return self._finish(write_summary=True)

    def _finish(self, write_summary: bool) -> dict[str, Any]:
        """Write the answers file (atomically) and the summary from what the rows hold; remove the journal."""
        plan, out = self.plan, self.out
        assert plan is not None
        rows = final_rows(plan)
        summary = self.summary_of(rows)
        unchanged = (
            self.stats is None
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

    def summary_of(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``summary.json`` of the answers file ``rows``: what it holds, and what this run did."""
        plan, stats, engine = self.plan, self.stats, self.engine
        assert plan is not None
        held = [r["answers"][m] for r in rows for m in plan.models if isinstance(r["answers"].get(m), dict)]
        answered = sum(1 for a in held if a.get("text") is not None and not a.get("error"))
        errors = sum(1 for a in held if a.get("error"))
        return {
            "prompts": len(plan.rows),
            "models": {
                n: {"model": ep.model, "price_input": ep.prices.input, "price_output": ep.prices.output}
                for n, ep in engine.endpoints.items()
            },
            "answers": answered,
            "errors": errors,
            "missing": len(plan.rows) * len(plan.models) - answered - errors,
            "from_log": sum(1 for a in held if a.get("from_log") and a.get("text") is not None),
            "asked": stats.asked if stats is not None else 0,
            "this_run": None if stats is None else self._this_run(stats),
            "cost_total": sum(
                float(a.get("cost") or 0.0) for r in rows for a in r["answers"].values() if isinstance(a, dict)
            ),
            "estimate": self.estimate.get("cost"),
            "max_cost": engine.budget.limit,
            "stopped": stats.stopped if stats is not None else None,
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def _this_run(self, stats: CollectStats) -> dict[str, Any]:
        return {
            "asked": stats.asked,
            "answered": stats.answered,
            "errors": stats.errors,
            "errors_by_model": stats.errors_by_model,
            "first_errors": stats.first_errors,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "cost": stats.cost,
            "calls_sent": dict(self.engine.sent),
            "retries": dict(self.engine.retried),
            "seconds": round(stats.seconds, 3),
        }
