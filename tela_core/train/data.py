"""A run's data: read records through the source plugin, sample and split them, format them.

:func:`read_records` reads ``cfg.data`` with the named (or detected) source; :func:`split_records`
takes the seed's sample and train/eval split (:mod:`tela_core.data.sampling`, ``cfg.seed``);
:func:`format_rows` turns records into prompt/completion rows with the formatter plugin, and
:func:`write_rows` writes them as ``train.jsonl``/``eval.jsonl`` into the run dir.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from tela_core.infra.errors import NoRecordsError, TelaError
from tela_core.infra.io import atomic_write_text
from .config import RunConfig

__all__ = [
    "data_source",
    "read_records",
    "source_pair",
    "data_pair",
    "split_records",
    "format_rows",
    "data_summary",
    "prepare_data",
    "write_rows",
]

def data_source(cfg: RunConfig) -> Any:
    """The source instance that reads ``cfg.data`` (named, or detected from the path). The user's
    ``--set source.KEY`` options are checked against it even when it was detected: a misspelt
    option is an error, never dropped."""
    from tela_core.data.detect import DETECT, detect_source
    from tela_core.plugins.discovery import get_registry

    named = None if cfg.source in (None, DETECT) else get_registry().get("source", cfg.source)
    if not Path(cfg.data).exists() and not getattr(named, "reads_hub_ids", False):  # hub ids: the source says
        raise TelaError(f"{cfg.data}: data file not found")
    name = detect_source(Path(cfg.data)) if cfg.source in (None, DETECT) else cfg.source
    return get_registry().create("source", name, cfg.source_options)


def read_records(cfg: RunConfig) -> list[Any]:
    """All records of ``cfg.data`` through the source plugin."""
    source = data_source(cfg)
    records = list(source.records(Path(cfg.data)))
    if not records:
        raise NoRecordsError(cfg.data)
    return records


def source_pair(cfg: RunConfig) -> dict[str, str]:
    """The weak/strong models the source is set to (outcome sources have defaults, e.g. RouteLLM's
    Mixtral/GPT-4), for a family whose options do not name them: with N models in the outcomes a
    family cannot infer the pair itself."""
    from tela_core.data.detect import open_source

    opts = getattr(open_source(Path(cfg.data), cfg.source, cfg.source_options), "options", None)
    out = {}
    for key, attr in (("weak", "weak_model"), ("strong", "strong_model")):
        value = getattr(opts, attr, None)
        if value and key not in cfg.family_options:
            out[key] = value
    return out


def data_pair(cfg: RunConfig, records: Sequence[Any]) -> dict[str, str]:
    """``{"weak": ..., "strong": ...}``: the models the data's outcomes name (the source's pair, or
    the two models it holds), which a trained router routes between; ``{}`` for data without
    per-model outcomes (seed JSONL with labels only), whose router keeps the names weak/strong."""
    from tela_core.data.detect import open_source
    from tela_core.routing.targets import resolve_pair

    source = open_source(Path(cfg.data), cfg.source, cfg.source_options)
    try:
        weak, strong = resolve_pair(records, None, None, source)
    except TelaError:
        return {}
    return {"weak": weak, "strong": strong}


def split_records(cfg: RunConfig, records: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The seed's sample (``--sample``) then train/eval split, both with ``cfg.seed``."""
    from tela_core.data.sampling import split, subsample

    chosen = subsample(records, cfg.sample, seed=cfg.seed)
    if cfg.eval_fraction <= 0:
        return list(chosen), []
    train, evals = split(chosen, eval_fraction=cfg.eval_fraction, seed=cfg.seed)
    return list(train), list(evals)


def format_rows(cfg: RunConfig, records: Sequence[Any], tokenizer: Any = None) -> list[dict[str, Any]]:
    """``records`` as the formatter turns them into prompt/completion rows (in memory, so a record
    that cannot train fails before anything is written)."""
    from tela_core.plugins.discovery import get_registry

    formatter = get_registry().create("formatter", cfg.formatter, cfg.formatter_options)
    rows = []
    for r in records:
        if not r.messages or r.messages[-1]["role"] != "assistant":
            raise TelaError(f"{cfg.data}: record {r.id or r.prompt[:40]!r} has no assistant score [[k]] to train on")
        f = formatter.format(r.messages, tokenizer)
        rows.append({"prompt": f.prompt, "completion": f.completion, "label": r.label, "id": r.id})
    return rows


def data_summary(cfg: RunConfig, records: Sequence[Any], train: Sequence[Any], evals: Sequence[Any]) -> dict[str, Any]:
    """What the manifest records about the training data (path, SHA-256, counts, split)."""
    digest = hashlib.sha256(Path(cfg.data).read_bytes()).hexdigest() if Path(cfg.data).is_file() else None
    return {
        "source": cfg.source,
        "path": str(Path(cfg.data).resolve()) if Path(cfg.data).exists() else str(cfg.data),
        "sha256": digest,
        "records": len(records),
        "sample": cfg.sample,
        "train": len(train),
        "eval": len(evals),
        "eval_fraction": cfg.eval_fraction,
        "seed": cfg.seed,
    }


def prepare_data(
    cfg: RunConfig, records: Sequence[Any], run_dir: Path, tokenizer: Any = None, formatted: bool = True
) -> dict[str, Any]:
    """Sample, split and (if ``formatted``) format ``records``; write ``train.jsonl``/``eval.jsonl``
    (prompt/completion) into ``run_dir``.

    Returns a summary for the manifest. Records without a label cannot train a score-token router.
    """
    train, evals = split_records(cfg, records)
    if formatted:
        rows = {"train.jsonl": format_rows(cfg, train, tokenizer), "eval.jsonl": format_rows(cfg, evals, tokenizer)}
        write_rows(run_dir, rows)
    return data_summary(cfg, records, train, evals)


def write_rows(run_dir: Path, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Write formatted rows as JSONL files (name -> rows) into ``run_dir``, each atomically."""
    for name, part in rows.items():
        atomic_write_text(run_dir / name, "".join(json.dumps(row) + "\n" for row in part))
