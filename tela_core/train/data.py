"""A run's data: read records through the source plugins, sample and split them, format them.

:func:`read_data` reads each of the run's sources with its named (or detected) source plugin and
combines them under one weak/strong pair (:mod:`tela_core.data.mix`); :func:`split_mix` takes the
seed's sample and train/eval split (:mod:`tela_core.data.sampling`, ``cfg.seed``) and weighs the sources;
:func:`format_rows` turns records into prompt/completion rows with the formatter plugin, and
:func:`write_rows` writes them as ``train.jsonl``/``eval.jsonl`` into the run dir.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.data.mix import open_source_of, read_mix, weigh
from tela_core.data.sampling import split, subsample
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_text, json_line
from tela_core.plugins.discovery import get_registry
from tela_core.routing.targets import resolve_pair

from .config import RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.data.mix import Mix

__all__ = [
    "data_source",
    "data_sources",
    "read_data",
    "read_records",
    "mix_pair",
    "split_mix",
    "source_pair",
    "data_pair",
    "split_records",
    "format_rows",
    "data_summary",
    "prepare_data",
    "write_rows",
]


def data_sources(cfg: RunConfig) -> list[Any]:
    """The source instances that read the run's data, one per source (named, or detected from the
    path). The user's ``--set source.KEY`` options are checked against each even when it was
    detected: a misspelt option is an error, never dropped."""
    specs = cfg.sources()
    return [open_source_of(spec, i, len(specs)) for i, spec in enumerate(specs, start=1)]


def data_source(cfg: RunConfig) -> Any:
    """The source instance that reads the run's (first) source; see :func:`data_sources`."""
    return data_sources(cfg)[0]


def read_data(cfg: RunConfig, complete_pair: bool = False) -> Mix:
    """Every source of the run read (protocol side taken) and combined under one weak/strong pair
    (:mod:`tela_core.data.mix`); ``complete_pair``: a router between two models, which trains on
    the records that have both of the pair's outcomes (:func:`tela_core.data.mix.read_part`)."""
    return read_mix(cfg.sources(), complete_pair)


def read_records(cfg: RunConfig) -> list[Any]:
    """All records of the run's data, through the source plugins (see :func:`read_data`)."""
    return read_data(cfg).records


def source_pair(cfg: RunConfig) -> dict[str, str]:
    """The weak/strong models the (first) source is set to (outcome sources have defaults, e.g.
    RouteLLM's Mixtral/GPT-4), for a family whose options do not name them: with N models in the
    outcomes a family cannot infer the pair itself."""
    opts = getattr(data_source(cfg), "options", None)
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
    try:
        weak, strong = resolve_pair(records, None, None, data_source(cfg))
    except TelaError:
        return {}
    return {"weak": weak, "strong": strong}


def mix_pair(cfg: RunConfig, mix: Mix) -> dict[str, str]:
    """The pair the run's data resolved to (:class:`~tela_core.data.mix.Mix`), for a family whose
    options do not name it; ``{}`` when the data cannot say."""
    if mix.pair is None:
        return {}
    return {k: v for k, v in zip(("weak", "strong"), mix.pair) if k not in cfg.family_options}


def split_records(cfg: RunConfig, records: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The seed's sample (``--sample``) then train/eval split, both with ``cfg.seed``."""
    chosen = subsample(records, cfg.sample, seed=cfg.seed)
    if cfg.eval_fraction <= 0:
        return list(chosen), []
    train, evals = split(chosen, eval_fraction=cfg.eval_fraction, seed=cfg.seed)
    return list(train), list(evals)


def split_mix(cfg: RunConfig, mix: Mix, holds_out: bool = True) -> tuple[list[Any], list[Any], list[int]]:
    """(train, eval, the source of each training record): the seed's sample (``--sample``) and
    train/eval split of the combined records, as :func:`split_records` draws them, then each
    source's training records counted by its weight (:func:`tela_core.data.mix.weigh`).

    ``holds_out`` False (a family that trains itself and computes no eval loss) trains on every
    record instead of holding ``--eval-fraction`` of them out for nothing.

    A prompt is never on both sides: a held-out record whose prompt also occurs among the training
    records (the same question in two sources of a mix, e.g. the seed's MMLU sample beside
    RouteLLM's MMLU outcomes, or repeated within one file) joins the training side, so the eval
    loss is measured on prompts the router did not train on. Data without repeated prompts (the
    seed's) splits exactly as before.
    """
    chosen = subsample(list(range(len(mix.records))), cfg.sample, seed=cfg.seed)
    if holds_out and cfg.eval_fraction > 0:
        train_idx, eval_idx = split(chosen, eval_fraction=cfg.eval_fraction, seed=cfg.seed)
        trained = {mix.records[i].prompt for i in train_idx}
        seen_in_train = [i for i in eval_idx if mix.records[i].prompt in trained]
        if seen_in_train:
            train_idx = list(train_idx) + seen_in_train
            eval_idx = [i for i in eval_idx if mix.records[i].prompt not in trained]
    else:
        train_idx, eval_idx = list(chosen), []
    weights = [p.spec.weight for p in mix.parts]
    labels = [str(p.spec.data) if p.total == 1 else f"{p.spec.data} ({p.section})" for p in mix.parts]
    train, origins = weigh(
        [mix.records[i] for i in train_idx], [mix.origins[i] for i in train_idx], weights, cfg.seed, labels
    )
    return train, [mix.records[i] for i in eval_idx], origins


def format_rows(cfg: RunConfig, records: Sequence[Any], tokenizer: Any = None) -> list[dict[str, Any]]:
    """``records`` as the formatter turns them into prompt/completion rows (in memory, so a record
    that cannot train fails before anything is written)."""
    formatter = get_registry().create("formatter", cfg.formatter, cfg.formatter_options)
    rows = []
    for r in records:
        if not r.messages or r.messages[-1]["role"] != "assistant":
            raise TelaError(
                f"{cfg.data_label()}: record {r.id or r.prompt[:40]!r} has no assistant score [[k]] to train on"
                + (
                    " (a record with outcomes only trains a family that learns from them, e.g. --family embedding-knn)"
                    if r.outcomes
                    else ""
                )
            )
        f = formatter.format(r.messages, tokenizer)
        rows.append({"prompt": f.prompt, "completion": f.completion, "label": r.label, "id": r.id})
    return rows


def data_summary(
    cfg: RunConfig,
    records: Sequence[Any],
    train: Sequence[Any],
    evals: Sequence[Any],
    mix: Mix | None = None,
    origins: Sequence[int] | None = None,
    eval_fraction: float | None = None,
) -> dict[str, Any]:
    """What the manifest records about the training data: path, SHA-256, counts, split; with
    ``mix``, each source's path, hash, protocol, weight, pair and training rows (``sources``)."""
    single = cfg.mix is None
    path = Path(cfg.data) if single and cfg.data is not None else None
    out: dict[str, Any] = {
        "source": cfg.source if single else "mix",
        "path": (str(path.resolve()) if path.exists() else str(path)) if path is not None else None,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None,
        "records": len(records),
        "sample": cfg.sample,
        "train": len(train),
        "eval": len(evals),
        "eval_fraction": cfg.eval_fraction if eval_fraction is None else eval_fraction,
        "seed": cfg.seed,
    }
    if cfg.protocol:
        out["protocol"] = cfg.protocol
    if mix is not None:
        counts = [0] * len(mix.parts)
        for o in origins or []:
            counts[o] += 1
        out["sources"] = [p.summary(counts[i] if origins is not None else None) for i, p in enumerate(mix.parts)]
        if mix.by_role:
            out["models_by_role"] = True
    return out


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
        atomic_write_text(run_dir / name, "".join(json_line(row, what=f"{run_dir / name}") + "\n" for row in part))
