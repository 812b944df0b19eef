"""The judging engine: a registered judge's verdicts on collected answers, through the paid-call
engine, turned into records that ``tela run``, ``tela eval`` and ``tela zoo`` read as they are.
(Moved from ``tela_core.collect.verdicts``; :mod:`.job` runs it in a resumable output folder.)

:func:`judge_tasks` turns the answers file's rows into :class:`~tela_core.components.JudgeItem`
objects for a judge (skipping, and counting, prompts without the pair's answers or, for a judge
that needs one, without a reference answer). :func:`judge_one` sends the judge's requests through
the :class:`~tela_core.collect.calls.Engine` and reads the replies with the judge's ``verdict``;
a reply the judge cannot read (:class:`~tela_core.infra.errors.JudgeOutputError`) is asked again
(only the call it names, when it names one), and after the last try the prompt gets an error row:
a label is never guessed. :func:`record_for` makes the seed-format record of a judged prompt.

Each judgement carries a key (the judge, its options, the judge model, the prompt and the answers
judged), so a rerun after a kill reuses exactly the judgements that still apply.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tela_core.collect.calls import Call, Engine, Reply
from tela_core.collect.inputs import PromptRow
from tela_core.collect.store import OutputDir
from tela_core.infra.errors import JudgeOutputError, TelaError

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Judge, JudgeItem

__all__ = [
    "JudgeTask",
    "judge_tasks",
    "judge_one",
    "judge_all",
    "record_for",
    "previous_judgements",
    "JUDGEMENTS_NAME",
    "RECORDS_NAME",
    "AGREEMENT_NAME",
    "AGREEMENT_JUDGEMENTS_NAME",
    "UNREADABLE_STOP",
    "NothingReadable",
    "ReplyWatch",
    "JudgeStats",
    "calls_of",
]

JUDGEMENTS_NAME = "judgements.jsonl"
RECORDS_NAME = "records.jsonl"
AGREEMENT_NAME = "agreement.json"
#: the second judge's judgements (``--agreement``)
AGREEMENT_JUDGEMENTS_NAME = "judgements-agreement.jsonl"
#: a run stops when this many of the judge model's replies failed to read before any one read
UNREADABLE_STOP = 10


class NothingReadable(TelaError):
    """The judge model's first replies of a run all failed to read as verdicts: a judge model or
    prompt that cannot give one. :func:`judge_all` stops asking (every further call would be paid
    for nothing) and returns with ``stopped = "unreadable"``."""


class ReplyWatch:
    """Counts the judge model's unreadable replies until the first readable one; the ``limit``-th
    unreadable reply before any readable one raises :class:`NothingReadable`, naming the first
    reply (one line, cut short)."""

    def __init__(self, limit: int | None = UNREADABLE_STOP) -> None:
        self.limit = limit
        self.readable = False
        self.unreadable = 0
        self.first: str | None = None
        self.stopped: str | None = None

    def read(self) -> None:
        self.readable = True

    def unread(self, judge: str, e: JudgeOutputError) -> None:
        if self.readable or self.limit is None:
            return
        if self.stopped is not None:
            # a reply of a call already in flight when the run stopped: the same stop, not a larger count
            raise NothingReadable(self.stopped)
        self.unreadable += 1
        if self.first is None:
            text = " ".join(str(e.reply if e.reply is not None else e).split())
            self.first = f"{text[:117]}..." if len(text) > 120 else text
        if self.unreadable >= self.limit:
            self.stopped = (
                f"{self.unreadable} replies of the judge model held no verdict judge {judge!r} could read, and "
                f"none did (the first: {self.first!r}); stopped asking: check --judge-model and the judge's options"
            )
            raise NothingReadable(self.stopped)


@dataclass
class JudgeTask:
    """One prompt for one judge: ``role`` is ``judge`` (the records' judge) or ``agreement``."""

    row: PromptRow
    item: JudgeItem
    role: str
    judge: Judge
    endpoint: str | None
    key: str


def _key(judge: Judge, model_id: str | None, item: JudgeItem) -> str:
    blob = json.dumps(
        {
            "judge": judge.name,
            "options": judge.options.model_dump(mode="json"),
            "model": model_id,
            "messages": item.messages,
            "answers": item.answers,
            "weak": item.weak,
            "strong": item.strong,
            "reference": item.reference,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def judge_tasks(
    rows: Sequence[PromptRow],
    judge: Judge,
    role: str,
    endpoint: str | None,
    model_id: str | None,
    weak: str,
    strong: str,
    models: Sequence[str] | None = None,
) -> tuple[list[JudgeTask], dict[str, int]]:
    """The tasks of ``judge`` over ``rows``, and the prompts skipped by reason.

    Over two models (``models`` None or two) a prompt is judged when it has both answers. Over N
    models (``models``: every model of the answers file) a prompt is judged when it has any answer
    the judge can judge: every model's answer it has goes to the judge (``llm-judge`` and
    ``reference`` grade each one), so its record carries the outcome of every model asked, and a
    model never asked (shadow mode asks a few of N) is missing from it, not guessed. A judge that
    needs particular answers (``pairwise`` the pair's two, ``llm-judge`` with ``rate: weak`` the
    weak one's) skips the prompts without them."""
    from tela_core.components import JudgeItem

    nmodel = models is not None and len(models) > 2
    tasks: list[JudgeTask] = []
    skipped: dict[str, int] = {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for row in rows:
        answers = {
            m: a["text"]
            for m, a in row.answers.items()
            if isinstance(a, Mapping) and isinstance(a.get("text"), str) and not a.get("error")
        }
        if not nmodel and (weak not in answers or strong not in answers):
            skip(f"no answer from {weak if weak not in answers else strong}")
            continue
        if not answers:
            skip("no answers")
            continue
        if judge.needs_reference and row.reference is None:
            skip("no reference answer")
            continue
        item = JudgeItem(
            id=row.id, messages=row.messages, answers=answers, weak=weak, strong=strong, reference=row.reference
        )
        if nmodel and (weak not in answers or strong not in answers):
            try:  # can the judge judge the answers there are? (pairwise needs the pair's two)
                judge.requests(item)
            except TelaError:
                skip(f"no answer from {weak if weak not in answers else strong}")
                continue
        tasks.append(
            JudgeTask(row=row, item=item, role=role, judge=judge, endpoint=endpoint, key=_key(judge, model_id, item))
        )
    return tasks, skipped


def calls_of(task: JudgeTask) -> list[Call]:
    """The judge model calls ``task`` makes on its first try (for the cost estimate)."""
    return [
        Call(
            endpoint=str(task.endpoint),
            messages=list(r.messages),
            max_tokens=r.max_tokens,
            expected_output_tokens=r.max_tokens or 256,
        )
        for r in task.judge.requests(task.item)
    ]


def _check_verdict(judge: Judge, verdict: Any) -> str | None:
    """What is wrong with a verdict a judge returned, or None."""
    label = getattr(verdict, "label", None)
    outcomes = getattr(verdict, "outcomes", None)
    if label is not None and (isinstance(label, bool) or label not in (1, 2, 3, 4, 5)):
        return f"label must be 1..5 or None, got {label!r}"
    if not isinstance(outcomes, Mapping):
        return f"outcomes must map model names to numbers, got {type(outcomes).__name__}"
    for m, x in outcomes.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not 0.0 <= x <= 1.0:
            return f"outcomes[{m!r}] must be a number in [0, 1], got {x!r}"
    try:
        json.dumps(getattr(verdict, "detail", {}), allow_nan=False)
    except (TypeError, ValueError) as e:
        return f"detail is not JSON-serialisable: {e}"
    return None


async def judge_one(
    engine: Engine, task: JudgeTask, judge_retries: int = 2, watch: ReplyWatch | None = None
) -> dict[str, Any] | None:
    """The judgement row of ``task`` (a verdict or an error), or None when the budget refused the calls.
    ``watch`` sees every reply read or not (:class:`NothingReadable` ends the run)."""
    started = time.monotonic()
    row: dict[str, Any] = {
        "id": task.row.id,
        "key": task.key,
        "role": task.role,
        "judge": task.judge.name,
        "label": None,
        "outcomes": None,
        "detail": None,
        "error": None,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
        "cost": None,
        "calls": 0,
        "tries": 0,
    }

    def finish(error: str | None = None, **fields: Any) -> dict[str, Any]:
        row.update(fields, error=error)
        row["seconds"] = round(time.monotonic() - started, 4)
        return row

    requests = task.judge.requests(task.item)
    replies: list[str] = [""] * len(requests)
    todo = list(range(len(requests)))
    last: JudgeOutputError | None = None
    for attempt in range(judge_retries + 1):
        row["tries"] = attempt + 1
        if todo:
            if task.endpoint is None:
                raise TelaError(
                    f"judge {task.judge.name!r} asked for a judge model call, and no --judge-model was given"
                )
            calls = [
                Call(
                    endpoint=task.endpoint,
                    messages=list(requests[i].messages),
                    max_tokens=requests[i].max_tokens,
                    expected_output_tokens=requests[i].max_tokens or 256,
                )
                for i in todo
            ]
            got: list[Reply] | None = await engine.ask_all(calls)
            if got is None:
                return None
            row["calls"] += len(got)
            for r in got:
                if r.usage:
                    row["usage"]["prompt_tokens"] += int(r.usage.get("prompt_tokens") or 0)
                    row["usage"]["completion_tokens"] += int(r.usage.get("completion_tokens") or 0)
                if r.cost is not None:
                    row["cost"] = (row["cost"] or 0.0) + r.cost
            failed = [r for r in got if not r.ok]
            if failed:
                return finish(f"judge model call failed: {failed[0].error}")
            for i, r in zip(todo, got):
                replies[i] = r.text or ""
        try:
            verdict = task.judge.verdict(task.item, list(replies))
        except JudgeOutputError as e:
            if not requests:  # a rule-based judge: asking again changes nothing
                return finish(f"the judge could not judge this prompt: {e}")
            last = e
            if watch is not None:
                watch.unread(task.judge.name, e)
            idx = getattr(e, "index", None)
            todo = [idx] if isinstance(idx, int) and 0 <= idx < len(requests) else list(range(len(requests)))
            continue
        if watch is not None and requests:
            watch.read()
        problem = _check_verdict(task.judge, verdict)
        if problem is not None:
            return finish(f"judge {task.judge.name!r} gave an unusable verdict: {problem}")
        return finish(
            None,
            label=verdict.label,
            outcomes={str(m): float(x) for m, x in verdict.outcomes.items()},
            detail=verdict.detail,
        )
    tries = judge_retries + 1
    return finish(
        f"unreadable judge reply after {tries} {'try' if tries == 1 else 'tries'}: {last}",
        detail={"replies": list(replies)},
    )


def previous_judgements(out: OutputDir) -> dict[tuple[str, str], dict[str, Any]]:
    """(role, id) -> the latest judgement of an earlier run (its final file, then its journal)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in (JUDGEMENTS_NAME, AGREEMENT_JUDGEMENTS_NAME):
        for _lineno, obj in out.read_final(name):
            found[(str(obj.get("role", "judge")), str(obj.get("id")))] = obj
    for obj in out.journal.read():
        found[(str(obj.get("role", "judge")), str(obj.get("id")))] = obj
    return found


@dataclass
class JudgeStats:
    judged: int = 0
    errors: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    stopped: str = "done"
    """``done``, ``budget`` (--max-cost) or ``unreadable`` (:class:`NothingReadable`, said in ``stop_reason``)."""
    stop_reason: str | None = None
    seconds: float = 0.0

    def add(self, j: Mapping[str, Any]) -> None:
        if j.get("error"):
            self.errors += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"{j['id']}: {j['error']}")
        else:
            self.judged += 1
        self.calls += int(j.get("calls") or 0)
        u = j.get("usage") or {}
        self.prompt_tokens += int(u.get("prompt_tokens") or 0)
        self.completion_tokens += int(u.get("completion_tokens") or 0)
        self.cost += float(j.get("cost") or 0.0)


async def judge_all(
    tasks: Sequence[JudgeTask],
    engine: Engine,
    out: OutputDir,
    results: dict[tuple[str, str], dict[str, Any]],
    judge_retries: int = 2,
    on_done: Callable[[JudgeStats], None] | None = None,
    stop_unreadable: int | None = UNREADABLE_STOP,
) -> JudgeStats:
    """Judge every task; each judgement goes into ``results`` and, at once, into the journal. When
    the judge model's first ``stop_unreadable`` replies all fail to read, the run stops there
    (``stats.stopped == "unreadable"``): the calls in flight are dropped and nothing more is asked."""
    stats = JudgeStats()
    watch = ReplyWatch(stop_unreadable)
    started = time.monotonic()
    window = (
        max(1, sum(ep.limit_settings.max_concurrency for ep in engine.endpoints.values())) if engine.endpoints else 8
    )

    async def work(task: JudgeTask) -> dict[str, Any] | None:
        return await judge_one(engine, task, judge_retries, watch)

    def done(task: JudgeTask, j: dict[str, Any]) -> None:
        results[(task.role, task.row.id)] = j
        out.journal.append([j])
        stats.add(j)
        if on_done is not None:
            on_done(stats)

    try:
        stats.stopped = await engine.run(tasks, work, done, window=window)
    except NothingReadable as e:
        stats.stopped, stats.stop_reason = "unreadable", str(e)
    finally:
        stats.seconds = time.monotonic() - started
    return stats


def record_for(row: PromptRow, judgement: Mapping[str, Any], weak: str, strong: str) -> dict[str, Any] | None:
    """The seed-format record of a judged prompt: messages ending in ``[[label]]``, prompt,
    outcomes, costs (each model's answer cost), group, id and the shadow log's sampling p (kept
    by ``tela collect --from-log``). None for an error judgement. One model's answers judged alone
    (``weak == strong``) make records without a label."""
    from tela_core.data.labels import OutcomeOptions, label_for
    from tela_core.data.records import record_problem, seed_record

    if judgement.get("error") or row.prompt.strip() == "":
        return None
    outcomes = dict(judgement.get("outcomes") or {})
    label = judgement.get("label") if weak != strong else None  # one model's answers: no pair to label
    if label is None and weak != strong and weak in outcomes and strong in outcomes:
        label = label_for(outcomes[weak], outcomes[strong], OutcomeOptions.model_validate({}))
    costs = {
        m: float(a["cost"])
        for m, a in row.answers.items()
        if isinstance(a, Mapping) and isinstance(a.get("cost"), (int, float)) and not isinstance(a.get("cost"), bool)
    }
    group = row.source.get("group") if isinstance(row.source, Mapping) else None
    p = row.source.get("sampling_p") if isinstance(row.source, Mapping) else None  # a shadow log's (collect)
    rec = seed_record(
        row.prompt,
        label,
        outcomes=outcomes or None,
        costs=costs or None,
        group=str(group) if group is not None else None,
        id=row.id,
        sampling_p=float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1 else None,
    )
    if record_problem(rec) is not None:
        return None
    return rec.to_json()
