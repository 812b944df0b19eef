"""What ``tela collect`` asks and what ``tela judge`` reads: prompt rows and the answers file.

A :class:`PromptRow` is one conversation to send to every model: a stable ``id``, the chat
``messages`` (OpenAI shape; the prompt is the last user turn), an optional ``reference`` answer
(for reference graders) and where it came from. Rows come from

- any tela data source (:func:`rows_from_source`: the record's ``prompt`` as one user turn, its
  ``group`` kept);
- a prompt file (:func:`rows_from_prompt_file`): one prompt per line, or JSONL objects with a
  ``prompt`` string or OpenAI ``messages``, plus optional ``id``, ``reference`` and ``group``;
- ``tela serve``'s logs (:func:`rows_from_logs`): the decision log's routed text (written with
  ``--log-prompts``) and the shadow log's requests with the answers already received, which are
  kept and not asked again. A logged answer is keyed by the router's name for the model and
  carries the upstream that gave it (the log's ``upstreams`` map) as ``upstream``;
  :func:`tela_core.collect.answers.plan_answers` files it under the model's one identity.

A model's identity, in the answers file and everything made from it (records, routers), is its
model id: the ``model`` an upstream of ``tela serve``'s config sends (``gemini-2.0-flash-001``),
the ``ID`` of ``--model NAME=URL#ID``, the name public data uses. Upstream names (``flash``) are
handles for reaching a model; answers record the one they came through as ``upstream``.

A row's ``id`` is the file's ``id`` when it has one, else a hash of its messages, so a rerun
matches the same prompt to its earlier answers however the file was reordered; the same prompt
twice is asked once.

The answers file (``answers.jsonl``, :func:`read_answers`) holds one row per prompt in input
order: ``id``, ``messages``, ``reference``, ``source`` and ``answers``: model id -> ``text``
(or null), ``error`` (or null), ``usage`` ``{prompt_tokens, completion_tokens}``,
``latency_s``, ``cost`` ($, null without prices), ``model`` (the id sent), ``upstream`` (the
upstream or ``--model`` name asked), ``tries``, and ``from_log`` for an answer read from a log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tela_core.data.detect import DETECT, detect_source
from tela_core.data.records import check_text, iter_jsonl, loads_json
from tela_core.infra.errors import InputError, NoRecordsError
from tela_core.plugins import get_registry
from tela_core.serve.decisions import read_decisions
from tela_core.upstreams.usage import token_count

__all__ = [
    "PromptRow",
    "prompt_of",
    "row_id",
    "rows_from_source",
    "rows_from_prompt_file",
    "rows_from_logs",
    "read_answers",
    "merge_rows",
    "model_named",
    "ANSWERS_NAME",
]

#: the answers file's name in ``tela collect``'s output folder
ANSWERS_NAME = "answers.jsonl"
_CHAT_ROLES = ("system", "developer", "user", "assistant")


@dataclass
class PromptRow:
    """One conversation to ask every model (see the module doc)."""

    id: str
    messages: list[dict[str, Any]]
    reference: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Answers already known (from a shadow log or an earlier run), model name -> answer object."""

    @property
    def prompt(self) -> str:
        return prompt_of(self.messages)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "reference": self.reference,
            "source": self.source,
            "answers": self.answers,
        }


def prompt_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user turn of ``messages`` ("" when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, Mapping))
            return c if isinstance(c, str) else ""
    return ""


def row_id(messages: Sequence[Mapping[str, Any]]) -> str:
    """A stable id for a conversation: the first 16 hex digits of the SHA-256 of its JSON."""
    canon = json.dumps(
        [{"role": m.get("role"), "content": m.get("content")} for m in messages],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def merge_rows(rows: Iterable[PromptRow]) -> tuple[list[PromptRow], int]:
    """``rows`` with repeated ids folded into the first (known answers merged); (rows, repeats)."""
    out: dict[str, PromptRow] = {}
    repeats = 0
    for r in rows:
        first = out.get(r.id)
        if first is None:
            out[r.id] = r
            continue
        repeats += 1
        if r.answers and not first.answers and r.messages != first.messages:
            # a decision log keeps the routed text only, the shadow log the whole conversation: the
            # answers were given to the conversation, so it is what they are judged against
            first.messages = r.messages
        for model, ans in r.answers.items():
            first.answers.setdefault(model, ans)
        if first.reference is None and r.reference is not None:
            first.reference = r.reference
    return list(out.values()), repeats


# ------------------------------------------------------------------------------------------------
# data sources and prompt files
# ------------------------------------------------------------------------------------------------


def rows_from_source(
    path: Path, source_name: str | None = None, options: Mapping[str, Any] | None = None
) -> list[PromptRow]:
    """One row per record that the data source reads from ``path`` (its ``prompt`` as one user turn)."""
    reg = get_registry()
    name = detect_source(path) if source_name in (None, DETECT) else str(source_name)
    opts = dict(options or {})
    if "require_label" in getattr(reg.get("source", name).Options, "model_fields", {}):
        opts.setdefault("require_label", False)  # prompts to answer carry no label yet
    source = reg.create("source", name, opts)
    rows = []
    for r in source.records(Path(path)):
        messages = _user(r.prompt)
        src: dict[str, Any] = {"source": source.name}
        if r.group is not None:
            src["group"] = r.group
        if r.id is not None:
            src["record_id"] = r.id
        rows.append(PromptRow(id=str(r.id) if r.id is not None else row_id(messages), messages=messages, source=src))
    if not rows:
        raise NoRecordsError(path)
    return rows


def _messages(value: Any, path: Path, lineno: int) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InputError(path, lineno, '"messages" must be a non-empty list of {"role", "content"} objects')
    out = []
    for i, m in enumerate(value):
        content = m.get("content") if isinstance(m, Mapping) else None
        parts = isinstance(content, list) and all(isinstance(p, Mapping) for p in content)  # OpenAI content parts
        if not isinstance(m, Mapping) or m.get("role") not in _CHAT_ROLES or not (isinstance(content, str) or parts):
            raise InputError(
                path,
                lineno,
                f'messages[{i}] must be {{"role", "content"}} with role one of '
                f"{', '.join(_CHAT_ROLES)} and a string content",
            )
        check_text(prompt_of([{"role": "user", "content": content}]), path, lineno, f"messages[{i}]")
        out.append({"role": m["role"], "content": content})
    if out[-1]["role"] != "user" or not prompt_of(out[-1:]).strip():
        raise InputError(path, lineno, "the last message must be the user's, with text (the prompt to answer)")
    return out


def _optional_text(obj: Mapping[str, Any], key: str, path: Path, lineno: int) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise InputError(path, lineno, f'"{key}" must be a string')
    return str(v)


def rows_from_prompt_file(path: Path) -> list[PromptRow]:
    """Rows of a prompt file: a line starting with ``{`` is a JSON object with a ``prompt`` string
    or OpenAI ``messages`` (optional ``id``, ``reference``/``answer``, ``group``), one starting
    with ``"`` a JSON string, any other non-blank line the prompt itself."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, "is a directory, expected a file of prompts" if p.is_dir() else "file not found")
    rows: list[PromptRow] = []
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise InputError(p, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            head = line.lstrip()[:1]
            if head not in ("{", '"'):
                messages = _user(line)
                rows.append(PromptRow(id=row_id(messages), messages=messages, source={"line": lineno}))
                continue
            obj = loads_json(line, p, lineno)
            if isinstance(obj, str):
                if not obj.strip():
                    raise InputError(p, lineno, "empty prompt")
                messages = _user(check_text(obj, p, lineno, "the prompt"))
                rows.append(PromptRow(id=row_id(messages), messages=messages, source={"line": lineno}))
                continue
            if not isinstance(obj, dict):
                raise InputError(p, lineno, 'expected a JSON object with "prompt" or "messages", or a JSON string')
            if isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
                messages = _user(check_text(obj["prompt"], p, lineno, '"prompt"'))  # seed JSONL: the question
            elif "messages" in obj and "prompt" not in obj:
                messages = _messages(obj["messages"], p, lineno)
            else:
                raise InputError(p, lineno, 'expected a non-empty "prompt" string or a "messages" list')
            ident = _optional_text(obj, "id", p, lineno)
            reference = _optional_text(obj, "reference", p, lineno)
            if reference is None:
                reference = _optional_text(obj, "answer", p, lineno)
            src: dict[str, Any] = {"line": lineno}
            group = _optional_text(obj, "group", p, lineno)
            if group is not None:
                src["group"] = group
            rows.append(PromptRow(id=ident or row_id(messages), messages=messages, reference=reference, source=src))
    if not rows:
        raise InputError(p, None, "no prompts (empty, or only blank lines)")
    return rows


# ------------------------------------------------------------------------------------------------
# tela serve's logs
# ------------------------------------------------------------------------------------------------


def _log_answers(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The shadow log's answers that have text and no error, as answers-file answer objects, each
    with the upstream that gave it (the log's ``upstreams`` map: router model name -> upstream)."""
    out: dict[str, dict[str, Any]] = {}
    answers = obj.get("answers")
    if not isinstance(answers, Mapping):
        return out
    given = obj.get("upstreams")
    upstreams: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    for model, a in answers.items():
        if not isinstance(a, Mapping) or not isinstance(a.get("text"), str) or a.get("error"):
            continue
        usage = a.get("usage") if isinstance(a.get("usage"), Mapping) else None
        if usage is not None:
            pt, ct = token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
            usage = {"prompt_tokens": pt, "completion_tokens": ct} if pt is not None and ct is not None else None
        out[str(model)] = {
            "text": a["text"],
            "error": None,
            "usage": usage,
            "latency_s": a.get("latency_s") if isinstance(a.get("latency_s"), (int, float)) else None,
            "cost": None,
            "model": None,
            "tries": 0,
            "from_log": True,
        }
        upstream = upstreams.get(model)
        if isinstance(upstream, str) and upstream:
            out[str(model)]["upstream"] = upstream
        if isinstance(a.get("model"), str) and a["model"]:  # the model id serve sent (logs since issue 24)
            out[str(model)]["model"] = a["model"]
    return out


def rows_from_logs(paths: Sequence[Path]) -> tuple[list[PromptRow], dict[str, int]]:
    """Rows from ``tela serve`` decision logs and shadow logs (any mix); (rows, notes) where notes
    count the lines read and the requests skipped for want of a logged prompt."""
    rows: list[PromptRow] = []
    notes = {"log_lines": 0, "without_prompt": 0}
    for path in paths:
        n_before = len(rows)
        for lineno, obj in read_decisions(path):
            notes["log_lines"] += 1
            ident = obj.get("request_id") or obj.get("id")
            if isinstance(obj.get("messages"), list):
                try:
                    messages = _messages(obj["messages"], Path(path), lineno)
                except InputError:
                    notes["without_prompt"] += 1
                    continue
            elif isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
                messages = _user(obj["prompt"])
            else:
                notes["without_prompt"] += 1
                continue
            src: dict[str, Any] = {"log": Path(path).name, "line": lineno}
            for key in ("router", "chosen", "w"):
                if obj.get(key) is not None:
                    src[key] = obj[key]
            p = (obj.get("sampling") or {}).get("p") if isinstance(obj.get("sampling"), dict) else None
            if p is not None:
                if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1):
                    # dropped, the record would count as sampled with certainty: tela promote would weigh it wrong
                    raise InputError(Path(path), lineno, f"sampling.p must be a number in (0, 1], got {p!r}")
                src["sampling_p"] = p  # the shadow log's: tela judge's records keep it (tela promote weighs by 1/p)
            rows.append(
                PromptRow(
                    id=str(ident) if ident else row_id(messages),
                    messages=messages,
                    source=src,
                    answers=_log_answers(obj),
                )
            )
        if len(rows) == n_before:
            raise InputError(
                path, None, "no prompts in this log: tela serve logs them only with log_prompts (--log-prompts)"
            )
    return rows, notes


# ------------------------------------------------------------------------------------------------
# the answers file
# ------------------------------------------------------------------------------------------------


def read_answers(path: Path) -> tuple[list[PromptRow], list[str]]:
    """The rows of an answers file (or of ``tela collect``'s output folder), and the model names
    in the order they were collected (cheap -> strong): the order of ``tela collect``'s
    ``summary.json`` beside the file when there is one, else the rows' own order, a model first met
    in a later row going where that row puts it (rows from an N-model shadow log have answers from
    a few models each). Bad lines are :class:`InputError` with the line."""
    p = Path(path)
    if p.is_dir():
        p = p / ANSWERS_NAME
        if not p.is_file():
            raise InputError(path, None, f"no {ANSWERS_NAME} in this folder (is it tela collect's output?)")
    rows: list[PromptRow] = []
    models: list[str] = []
    for lineno, obj in iter_jsonl(p):
        if not isinstance(obj, dict):
            raise InputError(p, lineno, "expected a JSON object (an answers-file row)")
        ident = obj.get("id")
        if isinstance(ident, bool) or not isinstance(ident, (str, int)) or str(ident) == "":
            raise InputError(p, lineno, 'missing "id" (a string)')
        messages = _messages(obj.get("messages"), p, lineno)
        answers = obj.get("answers")
        if not isinstance(answers, dict):
            raise InputError(p, lineno, '"answers" must map model names to answer objects')
        for model, a in answers.items():
            if not isinstance(a, dict) or not (a.get("text") is None or isinstance(a.get("text"), str)):
                raise InputError(p, lineno, f'answers[{model!r}] must be an object with "text" (a string or null)')
        _merge_order(models, [str(m) for m in answers])
        reference = obj.get("reference")
        if reference is not None and not isinstance(reference, str):
            reference = str(reference)
        src: dict[str, Any] = obj["source"] if isinstance(obj.get("source"), dict) else {}
        rows.append(PromptRow(id=str(ident), messages=messages, reference=reference, source=src, answers=answers))
    if not rows:
        raise NoRecordsError(p)
    collected = _collected_order(p.parent / "summary.json")
    return rows, [m for m in collected if m in models] + [m for m in models if m not in collected]


def _collected_order(summary: Path) -> list[str]:
    """The model ids of ``tela collect``'s summary, in the order they were asked ([] without one)."""
    try:
        info = json.loads(summary.read_text(encoding="utf-8")).get("models")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(info, dict):
        return []
    return [str(v.get("model") or k) if isinstance(v, dict) else str(k) for k, v in info.items()]


def _merge_order(known: list[str], row: list[str]) -> None:
    """Add the models of ``row`` not in ``known`` to it, each before the first model that follows
    it in ``row`` and is known (at the end when none does)."""
    seen = set(known)
    for i, m in enumerate(row):
        if m in seen:
            continue
        after = next((x for x in row[i + 1 :] if x in seen), None)
        known.insert(known.index(after) if after is not None else len(known), m)
        seen.add(m)


def model_named(name: str | None, rows: Sequence[PromptRow], models: Sequence[str]) -> str | None:
    """The answers file's model (its id) that ``name`` means: ``name`` itself when it is one, else
    the one model whose answers came through the upstream ``name`` (``--weak-model flash`` for
    ``gemini-2.0-flash-001`` asked through the upstream ``flash``); ``name`` unchanged otherwise."""
    if name is None or name in models:
        return name
    via = {m for r in rows for m, a in r.answers.items() if isinstance(a, Mapping) and a.get("upstream") == name}
    return next(iter(via)) if len(via) == 1 else name
