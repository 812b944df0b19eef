"""Collecting answers: every model's answer to every prompt, resumable and within a budget.

:func:`plan_answers` matches the prompts against what the output folder already holds (an
earlier run's ``answers.jsonl`` and the journal of a killed one) and against answers read from
``tela serve``'s shadow log, and lists the calls still to make; :func:`collect_answers` makes
them through the :class:`~tela_core.collect.calls.Engine`, appending each answer to the journal
the moment it arrives, and :func:`final_rows` gives the answers file's rows in input order.

An answer is reused when its row has the same messages and it came from the same model id; an
answer that ended in an error is asked again on the next run (it was never received).

One identity per model: answers are keyed by the model id (:func:`answer_keys`), whatever name
reached it. An answer read from a log (keyed by the router's name for the model, with the upstream
that gave it) or from an earlier run keyed by an upstream name is filed under that model's id
(:func:`canonical_key`), so a logged answer is never asked again however the names differ, and
every later file (records, routers) names each model once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tela_core.infra.errors import TelaError

from .budget import estimate_prompt_tokens
from .calls import Call, Engine, Reply
from .inputs import PromptRow, row_id
from .store import OutputDir

__all__ = [
    "AnswerJob",
    "AnswerPlan",
    "plan_answers",
    "collect_answers",
    "final_rows",
    "spent_on",
    "answer_keys",
    "canonical_key",
]


@dataclass(frozen=True)
class AnswerJob:
    """One answer to get: row ``index`` of the plan, from model ``model`` (its id, the answer's key),
    asked through the engine's endpoint ``endpoint`` (the upstream or ``--model`` name)."""

    index: int
    model: str
    endpoint: str = ""

    @property
    def via(self) -> str:
        return self.endpoint or self.model


@dataclass
class AnswerPlan:
    rows: list[PromptRow]
    models: list[str]
    jobs: list[AnswerJob]
    reused: int = 0
    """Answers already in the output (earlier runs, the journal) or read from a log."""
    retrying_errors: int = 0
    """Answers that ended in an error last time and are asked again."""
    from_log: int = 0
    """Of ``reused``, the answers read from ``tela serve``'s logs."""
    notes: dict[str, Any] = field(default_factory=dict)


def _usable(answer: Any, model_id: str | None) -> bool:
    if not isinstance(answer, Mapping) or answer.get("error") or not isinstance(answer.get("text"), str):
        return False
    got = answer.get("model")
    return got is None or model_id is None or got == model_id


def answer_keys(model_ids: Mapping[str, str | None]) -> dict[str, str]:
    """Each model's key in the answers file, by the name it is asked through (an upstream of the
    config, or ``NAME`` of ``--model NAME=URL#ID``): its model id (the name when it has none). Two
    names that ask the same model id are refused: they would be one model under two names."""
    keys: dict[str, str] = {}
    first: dict[str, str] = {}
    for name, mid in model_ids.items():
        key = str(mid) if mid else str(name)
        if key in first:
            raise TelaError(
                f"the models {first[key]} and {name} both ask the model {key!r}; answers are kept by model "
                f"id, so ask each model once (name the models to ask with --model)"
            )
        first[key] = str(name)
        keys[str(name)] = key
    return keys


def canonical_key(key: str, answer: Any, keys: Mapping[str, str]) -> str | None:
    """The model id an answer stored under ``key`` belongs to, given ``keys`` (name -> model id of
    the models asked), or None when it is none of them. The upstream that gave the answer decides
    first (a log's answers are keyed by the router's name for the model, which may be anything);
    then the key itself, as a model id or as a name. An answer that records the model id it came
    from (``model``) and is one of them is that model's, whatever the names say."""
    ids = set(keys.values())
    got = answer.get("model") if isinstance(answer, Mapping) else None
    if isinstance(got, str) and got in ids:
        return got
    upstream = answer.get("upstream") if isinstance(answer, Mapping) else None
    if isinstance(upstream, str) and upstream in keys:
        return keys[upstream]
    if key in ids:
        return key
    return keys.get(key)


def _file_under(row: PromptRow, key: str, ans: Mapping[str, Any], newer: bool) -> None:
    """Keep ``ans`` as ``row``'s answer of ``key``: an answer beats an error; ``newer`` wins a tie."""
    cur = row.answers.get(key)
    if cur is None:
        replace = True
    elif newer:
        replace = _usable(ans, None) or not _usable(cur, None)
    else:
        replace = _usable(ans, None) and not _usable(cur, None)
    if replace:
        row.answers[key] = dict(ans)


def plan_answers(
    rows: Sequence[PromptRow],
    models: Sequence[str],
    model_ids: Mapping[str, str],
    out: OutputDir,
    answers_name: str,
    ask: bool = True,
) -> AnswerPlan:
    """What is known and what is left to ask, given the earlier state of ``out``. ``models`` are the
    names the models are asked through, ``model_ids`` each name's model id: the plan's models, and
    the answers' keys, are the ids (:func:`answer_keys`). ``ask`` False (``--only-logged``): nothing
    is left to ask; each row keeps the answers it has (a log's), the other models missing."""
    keys = answer_keys({m: model_ids.get(m) for m in models})
    by_id = {r.id: r for r in rows}
    sha = {r.id: row_id(r.messages) for r in rows}
    # answers the rows came with (a log's): filed under the model's id; another model's are left out
    left_out: dict[str, int] = {}
    for r in rows:
        given, r.answers = r.answers, {}
        for k, a in given.items():
            key = canonical_key(k, a, keys)
            sent = a.get("model") if isinstance(a, Mapping) else None
            if isinstance(sent, str) and sent not in keys.values():
                key = None  # another model answered it (the upstream's model changed since it was logged)
            if key is None:
                left_out[k] = left_out.get(k, 0) + 1
            elif isinstance(a, Mapping):
                _file_under(r, key, a, newer=False)
    # an earlier run's final file: answers of rows whose messages are unchanged (one written before
    # answers were kept by model id is filed under the ids, and written again)
    rekeyed = False
    for _lineno, obj in out.read_final(answers_name):
        row = by_id.get(str(obj.get("id")))
        if row is None or not isinstance(obj.get("answers"), dict) or row_id(obj.get("messages") or []) != sha[row.id]:
            continue
        for k, ans in obj["answers"].items():
            if isinstance(ans, dict):
                key = canonical_key(str(k), ans, keys) or str(k)
                rekeyed = rekeyed or key != str(k)
                _file_under(row, key, ans, newer=False)
    # the journal of a run that did not finish: newer than the final file
    for entry in out.journal.read():
        row = by_id.get(str(entry.get("id")))
        if row is None or entry.get("sha") != sha[row.id] or not isinstance(entry.get("answer"), dict):
            continue
        k, ans = str(entry.get("model")), entry["answer"]
        _file_under(row, canonical_key(k, ans, keys) or k, ans, newer=True)
    jobs: list[AnswerJob] = []
    reused = errors = logged = 0
    for i, row in enumerate(rows):
        for name in models:
            key = keys[name]
            got = row.answers.get(key)
            if got is not None and _usable(got, key):
                reused += 1
                logged += bool(got.get("from_log"))
            elif ask:
                if isinstance(got, Mapping) and got.get("error"):
                    errors += 1
                jobs.append(AnswerJob(i, key, name))
    notes: dict[str, Any] = {"log_answers_of_other_models": left_out} if left_out else {}
    if rekeyed:
        notes["rekeyed"] = True
    return AnswerPlan(
        rows=list(rows),
        models=[keys[m] for m in models],
        jobs=jobs,
        reused=reused,
        retrying_errors=errors,
        from_log=logged,
        notes=notes,
    )


def make_call(
    plan: AnswerPlan, job: AnswerJob, max_tokens: int | None, params: Mapping[str, Any], expected_output_tokens: int
) -> Call:
    return Call(
        endpoint=job.via,
        messages=plan.rows[job.index].messages,
        max_tokens=max_tokens,
        params=params,
        expected_output_tokens=expected_output_tokens,
    )


def price_logged_answers(rows: Sequence[PromptRow], endpoints: Mapping[str, Any]) -> int:
    """Give the answers taken from ``tela serve``'s logs (``from_log``) their cost from the logged
    token usage and the model's price, so records judged from live traffic carry ``costs`` like
    collected ones. They were paid for by serving, so this runs after :func:`spent_on`: they do
    not count against ``--max-cost``. Returns how many were priced."""
    priced = 0
    by_id = {getattr(e, "model", None): e for e in endpoints.values()}
    for row in rows:
        for model, a in row.answers.items():
            upstream = a.get("upstream") if isinstance(a, Mapping) else None
            ep = endpoints.get(upstream) if isinstance(upstream, str) and upstream in endpoints else None
            ep = ep or by_id.get(model) or endpoints.get(model)
            usage = a.get("usage") if isinstance(a, Mapping) else None
            if (
                ep is None
                or not ep.prices.known
                or not isinstance(a, dict)
                or not a.get("from_log")
                or a.get("cost") is not None
                or not isinstance(usage, Mapping)
            ):
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
        answer = {**reply.to_json(), "upstream": job.via}
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


def estimate_plan(
    plan: AnswerPlan, engine: Engine, max_tokens: int | None, expected_output_tokens: int
) -> dict[str, Any]:
    """The cost estimate printed before a run: prompt tokens, assumed answer tokens, dollars, by model."""
    by_model: dict[str, dict[str, Any]] = {}
    for job in plan.jobs:
        call = make_call(plan, job, max_tokens, {}, expected_output_tokens)
        m = by_model.setdefault(
            job.via,
            {
                "calls": 0,
                "prompt_tokens": 0,
                "output_tokens": 0,
                "cost": 0.0,
                "priced": engine.endpoints[job.via].prices.known,
            },
        )
        m["calls"] += 1
        m["prompt_tokens"] += estimate_prompt_tokens(call.messages)
        m["output_tokens"] += min(expected_output_tokens, max_tokens) if max_tokens else expected_output_tokens
        m["cost"] += engine.estimate(call)
    total = sum(m["cost"] for m in by_model.values())
    return {
        "calls": len(plan.jobs),
        "cost": total,
        "by_model": by_model,
        "unpriced": [m for m, v in by_model.items() if not v["priced"]],
    }
