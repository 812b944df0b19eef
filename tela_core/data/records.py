"""The seed's JSONL format: reading and validating it into :class:`Record` objects, and the strict
JSON reading every JSONL reader uses. The record type itself is :mod:`tela_core.schema.records`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tela_core.data.prompts import SYSTEM_PROMPT, label_text, user_content
from tela_core.infra.errors import InputError

# the record type lives below every layer (routing and the plugin contract use it); its names stay public here
from tela_core.schema.records import ROLES, Message, Record, checked_records, record_problem

__all__ = [
    "Message",
    "Record",
    "ROLES",
    "parse_label",
    "validate_seed_object",
    "iter_jsonl",
    "seed_record",
    "loads_json",
    "json_decoder",
    "check_text",
    "record_problem",
    "checked_records",
]

_LABEL = re.compile(r"^\s*\[\[([1-5])\]\]\s*$")


def parse_label(content: str) -> int | None:
    """The score k of an assistant message ``[[k]]``, or None if it is not one."""
    m = _LABEL.match(content)
    return int(m.group(1)) if m else None


def seed_record(question: str, label: int | None, **extra: Any) -> Record:
    """Build a seed-format record for ``question`` with the seed's system prompt and template."""
    messages: list[Message] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_content(question)},
    ]
    if label is not None:
        messages.append({"role": "assistant", "content": label_text(label)})
    return Record(prompt=question, messages=messages, label=label, **extra)


def validate_seed_object(obj: Any, path: str | Path, line: int, require_label: bool = True) -> Record:
    """Check one decoded JSONL object against the seed format; raise :class:`InputError` if bad."""

    def bad(msg: str) -> InputError:
        return InputError(path, line, msg)

    if not isinstance(obj, Mapping):
        raise bad(f"expected a JSON object, got {type(obj).__name__}")
    if "messages" not in obj:
        raise bad('missing field "messages" (a list of {"role", "content"} objects)')
    if "prompt" not in obj:
        raise bad('missing field "prompt" (the user question as a string)')
    prompt = obj["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad('"prompt" must be a non-empty string')
    check_text(prompt, path, line, '"prompt"')
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise bad('"messages" must be a non-empty list')
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise bad(f'messages[{i}] must be an object with "role" and "content"')
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise bad(f"messages[{i}]: unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise bad(f"messages[{i}] ({role}): content must be a non-empty string")
        check_text(content, path, line, f"messages[{i}] ({role})")
        out.append({"role": role, "content": content})
    label = None
    extras = _seed_extras(obj, bad, path, line)
    if out[-1]["role"] == "assistant":
        label = parse_label(out[-1]["content"])
        if label is None:
            raise bad(f"last assistant message must be a score [[k]] with k in 1..5, got {out[-1]['content'][:40]!r}")
    elif require_label and not extras.get("outcomes"):
        # a record with per-model outcomes (tela feedback, tela judge over N models) is training data
        # without a label: the families that learn from outcomes train on it; score-token training
        # refuses it by name (tela_core.train.data.format_rows)
        raise bad(
            "the last message must be the assistant's score [[k]] (k in 1..5), or the record must carry "
            '"outcomes" to train on; for prompts without either, --set source.require_label=false'
        )
    return Record(prompt=prompt, messages=out, label=label, **extras)


def _seed_extras(obj: Mapping[str, Any], bad: Any, path: str | Path, line: int) -> dict[str, Any]:
    """Validate tela's optional keys of a seed line: ``outcomes`` (model -> number in [0, 1]),
    ``costs`` (model -> number >= 0), ``group`` and ``id`` (strings), ``sampling_p`` (in (0, 1])."""
    extras: dict[str, Any] = {}
    for key, lo, hi in (("outcomes", 0.0, 1.0), ("costs", 0.0, None)):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, Mapping) or not value:
            raise bad(f'"{key}" must be a non-empty object mapping model name to a number')
        parsed: dict[str, float] = {}
        for model, x in value.items():
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise bad(f'"{key}"[{model!r}] must be a number, got {x!r}')
            if not math.isfinite(x):
                raise bad(f'"{key}"[{model!r}] must be a finite number, got {x!r}')
            if x < lo or (hi is not None and x > hi):
                want = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
                raise bad(f'"{key}"[{model!r}] must be {want}, got {x!r}')
            parsed[check_text(str(model), path, line, f'"{key}" model name')] = float(x)
        extras[key] = parsed
    for key in ("group", "id"):
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise bad(f'"{key}" must be a string, got {type(value).__name__}')
        extras[key] = check_text(str(value), path, line, f'"{key}"')
    p = obj.get("sampling_p")
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise bad(f'"sampling_p" must be a probability in (0, 1] (the shadow log\'s sampling p), got {p!r}')
        extras["sampling_p"] = float(p)
    return extras


class _NonStandardJSON(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonStandardJSON(f"{name} is not a JSON value (standard JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise _NonStandardJSON(f"number {text[:40]} is out of range (beyond a double's ±1.8e308)")
    return x


def json_decoder() -> json.JSONDecoder:
    """A decoder that refuses ``NaN``/``Infinity`` and numbers that overflow to them (Python's json
    accepts these; standard JSON and every other reader do not)."""
    return json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads_json(text: str, path: str | Path, line: int | None = None) -> Any:
    """``json.loads`` with every failure as an :class:`InputError` naming ``path`` and the line:
    bad JSON, ``NaN``/``Infinity``, and nesting too deep for Python's parser (a RecursionError)."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        if line is None:
            where, column = e.lineno, e.colno
        else:  # one line of a file: json counts its newline as a line of its own, so count from the text
            where, column = line, min(e.pos, len(text.rstrip("\r\n"))) + 1
        raise InputError(path, where, f"invalid JSON: {e.msg} (column {column})") from None
    except RecursionError:
        raise InputError(path, line, "JSON nested too deeply to read") from None
    except ValueError as e:  # NaN/Infinity, or an integer longer than Python converts (4,300 digits)
        raise InputError(path, line, str(e).split(";")[0]) from None


def check_text(value: str, path: str | Path, line: int | None, what: str) -> str:
    """``value`` if it is valid Unicode; an :class:`InputError` for a lone surrogate (JSON's
    ``"\\ud800"`` escape decodes to one), which no tokenizer, file or terminal can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = ord(value[e.start])
        where = f"(\\u{bad:04x}) at character {e.start}"
        raise InputError(path, line, f"{what} holds a lone surrogate {where}: not valid Unicode") from None
    return value


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line number, decoded object) for each non-blank line of a JSONL file.

    Undecodable bytes, bad JSON, ``NaN``/``Infinity`` and too-deep nesting raise
    :class:`InputError` naming the line. A UTF-8 byte order mark on the first line is skipped.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    if p.is_dir():
        raise InputError(p, None, "is a directory, expected a JSONL file")
    try:
        fh = p.open("rb")
    except OSError as e:
        raise InputError(p, None, f"cannot read: {e.strerror or e}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(p, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            yield lineno, loads_json(text, p, lineno)
