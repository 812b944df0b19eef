"""Collecting answers: every model's answer to every prompt, resumable and within a budget.

:func:`plan_answers` matches the prompts against what the output folder already holds (an
earlier run's ``answers.jsonl`` and the journal of a killed one) and against answers read from
``tela serve``'s shadow log, and lists the calls still to make; :func:`collect_answers` makes
them through the :class:`~tela_core.collect.calls.Engine`, appending each answer to the journal
the moment it arrives, and :func:`final_rows` gives the answers file's rows in input order.

An answer is reused when its row has the same messages and it came from the same model id; an
answer that ended in an error is asked again on the next run (it was never received).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .budget import estimate_prompt_tokens
from .calls import Call, Engine, Reply
from .inputs import PromptRow, row_id
from .store import OutputDir

__all__ = ["AnswerJob", "AnswerPlan", "plan_answers", "collect_answers", "final_rows", "spent_on"]


@dataclass(frozen=True)
class AnswerJob:
    """One answer to get: row ``index`` of the plan, from model ``model``."""

    index: int
    model: str


@dataclass
class AnswerPlan:
    rows: list[PromptRow]
    models: list[str]
    jobs: list[AnswerJob]
    reused: int = 0
    """Answers already in the output (earlier runs, the journal) or read from a log."""
    retrying_errors: int = 0
    """Answers that ended in an error last time and are asked again."""
    notes: dict[str, Any] = field(default_factory=dict)


def _usable(answer: Any, model_id: str | None) -> bool:
    if not isinstance(answer, Mapping) or answer.get("error") or not isinstance(answer.get("text"), str):
        return False
    got = answer.get("model")
    return got is None or model_id is None or got == model_id


def plan_answers(rows: Sequence[PromptRow], models: Sequence[str], model_ids: Mapping[str, str], out: OutputDir,
                 answers_name: str) -> AnswerPlan:
    """What is known and what is left to ask, given the earlier state of ``out``."""
    by_id = {r.id: r for r in rows}
    sha = {r.id: row_id(r.messages) for r in rows}
    # an earlier run's final file: answers of rows whose messages are unchanged
    for _lineno, obj in out.read_final(answers_name):
        row = by_id.get(str(obj.get("id")))
        if row is None or not isinstance(obj.get("answers"), dict) or row_id(obj.get("messages") or []) != sha[row.id]:
            continue
        for model, ans in obj["answers"].items():
            if isinstance(ans, dict):
                cur = row.answers.get(model)
                if cur is None or (not _usable(cur, None) and _usable(ans, None)):
                    row.answers[model] = ans
    # the journal of a run that did not finish: newer than the final file
    for entry in out.journal.read():
        row = by_id.get(str(entry.get("id")))
        if row is None or entry.get("sha") != sha[row.id] or not isinstance(entry.get("answer"), dict):
            continue
        model, ans = str(entry.get("model")), entry["answer"]
        if _usable(ans, None) or not _usable(row.answers.get(model), None):
            row.answers[model] = ans
    jobs: list[AnswerJob] = []
    reused = errors = 0
    for i, row in enumerate(rows):
        for m in models:
            ans = row.answers.get(m)
            if _usable(ans, model_ids.get(m)):
                reused += 1
            else:
                if isinstance(ans, Mapping) and ans.get("error"):
                    errors += 1
                jobs.append(AnswerJob(i, m))
    return AnswerPlan(rows=list(rows), models=list(models), jobs=jobs, reused=reused, retrying_errors=errors)


def make_call(plan: AnswerPlan, job: AnswerJob, max_tokens: int | None, params: Mapping[str, Any],
              expected_output_tokens: int) -> Call:
    return Call(endpoint=job.model, messages=plan.rows[job.index].messages, max_tokens=max_tokens, params=params,
                expected_output_tokens=expected_output_tokens)


def price_logged_answers(rows: Sequence[PromptRow], endpoints: Mapping[str, Any]) -> int:
    """Give the answers taken from ``tela serve``'s logs (``from_log``) their cost from the logged
    token usage and the model's price, so records judged from live traffic carry ``costs`` like
    collected ones. They were paid for by serving, so this runs after :func:`spent_on`: they do
    not count against ``--max-cost``. Returns how many were priced."""
    priced = 0
    for row in rows:
        for model, a in row.answers.items():
            ep = endpoints.get(model)
            usage = a.get("usage") if isinstance(a, Mapping) else None
            if (ep is None or not ep.prices.known or not isinstance(a, dict) or not a.get("from_log")
                    or a.get("cost") is not None or not isinstance(usage, Mapping)):
                continue
            a["cost"] = ep.prices.cost(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
            priced += 1
    return priced


def spent_on(rows: Sequence[PromptRow]) -> float:
    """What the answers the rows already hold cost (they count against ``--max-cost``)."""
    total = 0.0
    for r in rows:
        for a in r.answers.values():
            c = a.get("cost") if isinstance(a, Mapping) else None
            if isinstance(c, (int, float)) and not isinstance(c, bool):
                total += float(c)
    return total


@dataclass
class CollectStats:
    asked: int = 0
    answered: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors_by_model: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "done"

    def add(self, model: str, reply: Reply) -> None:
        self.asked += 1
        if reply.ok:
            self.answered += 1
        else:
            self.errors += 1
            self.errors_by_model[model] = self.errors_by_model.get(model, 0) + 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"{model}: {reply.error}")
        if reply.usage:
            self.prompt_tokens += int(reply.usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(reply.usage.get("completion_tokens") or 0)
        self.cost += reply.cost or 0.0


async def collect_answers(
    plan: AnswerPlan,
    engine: Engine,
    out: OutputDir,
    *,
    max_tokens: int | None = None,
    params: Mapping[str, Any] | None = None,
    expected_output_tokens: int = 256,
    on_answer: Callable[[CollectStats], None] | None = None,
) -> CollectStats:
    """Ask every job of ``plan``; each answer goes into its row and, at once, into the journal."""
    stats = CollectStats()
    started = time.monotonic()
    sha = {r.id: row_id(r.messages) for r in plan.rows}
    # as many jobs started as calls can be in flight: a job's budget reservation is then (nearly) a call in flight
    window = sum(ep.limit_settings.max_concurrency for ep in engine.endpoints.values())

    async def work(job: AnswerJob) -> list[Reply] | None:
        return await engine.ask_all([make_call(plan, job, max_tokens, params or {}, expected_output_tokens)])

    def done(job: AnswerJob, replies: list[Reply]) -> None:
        reply = replies[0]
        row = plan.rows[job.index]
        answer = reply.to_json()
        row.answers[job.model] = answer
        out.journal.append([{"id": row.id, "sha": sha[row.id], "model": job.model, "answer": answer}])
        stats.add(job.model, reply)
        if on_answer is not None:
            on_answer(stats)

    try:
        stats.stopped = await engine.run(plan.jobs, work, done, window=max(1, window))
    finally:
        stats.seconds = time.monotonic() - started
    return stats


def final_rows(plan: AnswerPlan) -> list[dict[str, Any]]:
    """The answers file: rows with at least one answer, in input order, models in the order asked."""
    out = []
    for r in plan.rows:
        if not r.answers:
            continue
        ordered = {m: r.answers[m] for m in plan.models if m in r.answers}
        ordered.update({m: a for m, a in r.answers.items() if m not in ordered})
        out.append({**r.to_json(), "answers": ordered})
    return out


def estimate_plan(plan: AnswerPlan, engine: Engine, max_tokens: int | None, expected_output_tokens: int) -> dict[str, Any]:
    """The cost estimate printed before a run: prompt tokens, assumed answer tokens, dollars, by model."""
    by_model: dict[str, dict[str, Any]] = {}
    for job in plan.jobs:
        call = make_call(plan, job, max_tokens, {}, expected_output_tokens)
        m = by_model.setdefault(job.model, {"calls": 0, "prompt_tokens": 0, "output_tokens": 0, "cost": 0.0,
                                            "priced": engine.endpoints[job.model].prices.known})
        m["calls"] += 1
        m["prompt_tokens"] += estimate_prompt_tokens(call.messages)
        m["output_tokens"] += min(expected_output_tokens, max_tokens) if max_tokens else expected_output_tokens
        m["cost"] += engine.estimate(call)
    total = sum(m["cost"] for m in by_model.values())
    return {"calls": len(plan.jobs), "cost": total, "by_model": by_model,
            "unpriced": [m for m, v in by_model.items() if not v["priced"]]}
