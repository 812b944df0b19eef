"""Which data source reads a file or folder: ask every registered source's ``sniff``.

Used wherever a command takes ``--source`` with the default ``detect`` (``tela data ...``,
``tela eval``). Among the sources that claim a path, the one with the highest
``Source.detect_priority`` wins: catch-alls (``jsonl`` claims any ``.jsonl``, ``routellm-csv`` any
``.csv``) declare a negative one and yield to a source that knows the schema. Two claims at the
top are an error asking for ``--source``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tela_core.components import Source
from tela_core.data.protocols import split
from tela_core.infra.errors import InputError, NoRecordsError
from tela_core.plugins.discovery import get_registry

__all__ = ["detect_source", "open_source", "read_records", "DETECT"]

#: the ``--source`` value that means "detect from the path"
DETECT = "detect"


def detect_source(path: str | Path) -> str:
    """The name of the registered source that reads ``path``.

    Raises :class:`InputError` when the path does not exist, no source claims it, or several
    specific sources do (the message lists them and the registered sources).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    reg = get_registry()
    claims: dict[str, int] = {}
    for name in reg.names("source"):
        cls = reg.get("source", name)
        try:
            source = cls()
            if isinstance(source, Source) and source.sniff(p):
                claims[name] = int(getattr(cls, "detect_priority", 0))
        except Exception:  # a source that cannot even be built with defaults does not claim
            continue
    if claims:
        top = max(claims.values())
        best = [n for n, prio in claims.items() if prio == top]
        if len(best) == 1:
            return best[0]
        raise InputError(p, None, f"several sources can read this ({', '.join(best)}); pick one with --source")
    raise InputError(
        p, None, f"cannot tell which source reads this; pass --source (registered: {', '.join(reg.names('source'))})"
    )


def open_source(path: str | Path, name: str | None = DETECT, options: Mapping[str, Any] | None = None) -> Any:
    """A source instance for ``path``: ``name`` if given (``None``/``"detect"``: detected), with
    ``options`` validated by its options model. Options the source does not have are dropped
    when the source was detected (e.g. ``weak_model`` for a JSONL file), kept (and refused by
    its model) when the user named the source."""
    reg = get_registry()
    detected = name in (None, DETECT)
    chosen = detect_source(path) if detected else str(name)
    opts = {k: v for k, v in dict(options or {}).items() if v is not None}
    if detected:
        fields = getattr(reg.get("source", chosen).Options, "model_fields", {})
        opts = {k: v for k, v in opts.items() if k in fields}
    return reg.create("source", chosen, opts)


def read_records(
    data: Path,
    source_name: str = DETECT,
    weak: str | None = None,
    strong: str | None = None,
    protocol: str | None = None,
    side: str = "eval",
    complete: str | None = None,
) -> tuple[list[Any], Any, dict[str, Any]]:
    """Records of ``data`` read by its source (detected or named), unlabelled lines allowed, and
    cut by ``protocol`` to its ``side`` ("eval" or "train"). Returns (records, source, info).

    ``complete``, for a source whose records lack some models by design (``partial_outcomes``,
    e.g. ``routerarena``): ``"pair"`` keeps the records with both models of the source's pair (a
    router between two models is judged on them), ``"every"`` those with every model's outcome (a
    router among N models); how many were left out is in ``info["source_notes"]``."""
    reg = get_registry()
    name = detect_source(data) if source_name in (None, DETECT) else source_name
    fields = getattr(reg.get("source", name).Options, "model_fields", {})
    opts: dict[str, Any] = {}
    if "require_label" in fields:
        opts["require_label"] = False
    for key, value in (("weak_model", weak), ("strong_model", strong)):
        if value is not None and (key in fields or source_name not in (None, DETECT)):
            opts[key] = value
    source = reg.create("source", name, opts)
    records = list(source.records(Path(data)))
    if not records:
        raise NoRecordsError(data)
    info: dict[str, Any] = {"records_read": len(records)}
    if protocol:
        train, evals = split(protocol, records)
        info.update(train_records=len(train), eval_records=len(evals))
        records = evals if side == "eval" else train
        if not records:
            raise InputError(data, None, f"protocol {protocol!r} leaves no {side} records")
    notes = dict(source.stats)
    if complete is not None and getattr(source, "partial_outcomes", False):
        records, left_out = _complete(records, source, complete)
        if left_out:
            notes["records_left_out_incomplete"] = left_out
    if notes:
        info["source_notes"] = notes
    return records, source, info


def _complete(records: list[Any], source: Any, complete: str) -> tuple[list[Any], int]:
    """``records`` with the models ``complete`` asks for (:func:`read_records`), and how many were
    left out; all of them where that would leave none (the caller's own check names the problem)."""
    if complete == "pair":
        opts = getattr(source, "options", None)
        need = [m for m in (getattr(opts, "weak_model", None), getattr(opts, "strong_model", None)) if m]
    else:
        need = list(dict.fromkeys(m for r in records for m in (r.outcomes or {})))
    kept = [r for r in records if r.outcomes and all(m in r.outcomes for m in need)]
    if len(need) < 2 or not kept:
        return records, 0
    return kept, len(records) - len(kept)
