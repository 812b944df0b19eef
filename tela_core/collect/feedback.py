"""Feedback to training records: ``tela feedback`` turns ``tela serve``'s feedback log
(:mod:`tela_core.serve.feedback`) into outcome records, alone or beside a judge's records.

Each verdict is joined on its request id with the server's decision log (written with
``log_prompts``: it holds the prompt) or shadow log (which holds the messages), for the prompt and
for the model that answered; that model gets the verdict's score as its outcome
(``outcomes: {model: score}``, no pair label: one model was rated). Rules:

- the last verdict on a request wins (a user who changed their mind), across several feedback logs
  (replicas) by the verdicts' times;
- a request answered by a fallback (another model than routing chose) is rated for the model that
  answered when the shadow log names it, else skipped and counted;
- beside a judge's records (``--with RECORDS``, ``tela judge``'s ``records.jsonl``): a request both
  judged and rated keeps the judge's record as it is (the judge compared every model's answer to
  that prompt, which is what routing learns; a verdict rates one answer), and is counted as both;
  the judge's other records are kept, the rated requests it did not judge are added.

Every skipped verdict is counted by reason: ``no_log_line`` (the id is in no log given),
``not_routed`` (the client named an upstream, no router decided), ``no_answer`` (the decision log
says the request got no whole answer: an error status, or a stream cut off; a server process that
did not issue the id cannot know that and takes the verdict), ``no_prompt`` (its log line has
no prompt: ``log_prompts`` was off), ``fallback`` (the model that answered is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tela_core.infra.errors import InputError
from tela_core.infra.logfile import read_log

__all__ = ["FeedbackRecords", "read_feedback", "feedback_records"]


@dataclass
class FeedbackRecords:
    """The records made, and how many of each kind (and of each skip)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def read_feedback(paths: Sequence[str | Path]) -> tuple[dict[str, dict[str, Any]], int]:
    """The last verdict per request id over ``paths`` (by the verdicts' times, then the order
    read), and how many lines were read. A line that is no verdict raises :class:`InputError`."""
    rows: list[tuple[str, int, dict[str, Any]]] = []
    n = 0
    for path in paths:
        for lineno, obj in read_log(path, "feedback log"):
            rid, score = obj.get("id"), obj.get("score")
            if (
                not isinstance(rid, str)
                or isinstance(score, bool)
                or not isinstance(score, (int, float))
                or not 0 <= score <= 1
            ):
                raise InputError(path, lineno, "not a feedback line (needs 'id' and a 'score' in [0, 1])")
            rows.append((str(obj.get("time") or ""), n, obj))
            n += 1
    rows.sort(key=lambda t: (t[0], t[1]))
    return {obj["id"]: obj for _t, _i, obj in rows}, n


def _answered(line: Mapping[str, Any]) -> bool:
    """Whether the request of a decision-log line got a whole answer (a shadow line: always)."""
    status = line.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and not 200 <= status < 300:
        return False
    return line.get("outcome") is None


def _answered_by(line: Mapping[str, Any]) -> str | None:
    """The router model name that answered the request of a decision- or shadow-log line."""
    chosen = line.get("chosen")
    if not isinstance(chosen, str):
        return None
    if "answers" in line:  # a shadow log line: only requests the chosen model answered are shadowed
        return chosen
    if line.get("fallback_from") is None:
        return chosen
    upstream = line.get("upstream")
    for model, up in (line.get("upstreams") or {}).items():
        if up == upstream:
            return str(model)
    return None


def feedback_records(
    feedback_logs: Sequence[str | Path],
    logs: Sequence[str | Path],
    judged: Sequence[Mapping[str, Any]] = (),
) -> FeedbackRecords:
    """Outcome records from the verdicts in ``feedback_logs`` joined with ``logs`` (decision and
    shadow logs), beside the ``judged`` records (seed-format objects with ids), as the module says."""
    from tela_core.collect.inputs import rows_from_logs
    from tela_core.data.records import record_problem, seed_record

    verdicts, n_lines = read_feedback(feedback_logs)
    rows, _notes = rows_from_logs([Path(p) for p in logs]) if logs else ([], {})
    prompt_of = {r.id: r.prompt for r in rows}
    lines: dict[str, dict[str, Any]] = {}
    for path in logs:  # what answered: the decision line, with the shadow line's model -> upstream map
        for lineno, obj in read_log(path, "log"):
            rid = obj.get("request_id") or obj.get("id")
            if obj.get("upstreams") is not None and not isinstance(obj["upstreams"], dict):
                raise InputError(path, lineno, '"upstreams" is not an object (model -> upstream name)')
            if isinstance(rid, str):
                merged = lines.setdefault(rid, {})
                if "answers" in obj and "fallback_from" in merged:
                    merged["upstreams"] = obj.get("upstreams")  # keep the decision line's view
                else:
                    merged.update(obj)
    out = FeedbackRecords()
    counts = {"feedback_lines": n_lines, "rated_requests": len(verdicts), "judged": 0, "feedback": 0, "both": 0}
    skipped = {"no_log_line": 0, "not_routed": 0, "no_answer": 0, "no_prompt": 0, "fallback": 0}
    judged_ids = set()
    for rec in judged:
        out.records.append(dict(rec))
        if isinstance(rec.get("id"), str):
            judged_ids.add(rec["id"])
    counts["judged"] = len(out.records)
    for rid, v in verdicts.items():
        if rid in judged_ids:
            counts["both"] += 1
            continue
        line = lines.get(rid)
        if line is None:
            skipped["no_log_line"] += 1
            continue
        if line.get("router") is None:  # a client named an upstream: no routing decision to learn from
            skipped["not_routed"] += 1
            continue
        if not _answered(line):  # a thumbs-down on an error page rates the outage, not the model
            skipped["no_answer"] += 1
            continue
        prompt = prompt_of.get(rid)
        if not prompt:
            skipped["no_prompt"] += 1
            continue
        model = _answered_by(line)
        if model is None:
            skipped["fallback"] += 1
            continue
        record = seed_record(prompt, None, outcomes={model: float(v["score"])}, id=rid)
        if record_problem(record) is not None:  # pragma: no cover - a logged prompt is text, a score in [0, 1]
            skipped["no_prompt"] += 1
            continue
        out.records.append(record.to_json())
        counts["feedback"] += 1
    out.counts = {**counts, **{f"skipped_{k}": n for k, n in skipped.items()}}
    return out
