"""Training on several sources at once: read each, map its models onto one weak/strong pair, weigh it.

A run's data is a list of :class:`SourceSpec` (one per ``--data`` of ``tela run``, or the ``mix:``
list of a run config file). Each source is read by its own source plugin, cut to its protocol's
training side if it names one, and its models are mapped onto the pair the router routes between:

- ``models: {weak: NAME, strong: NAME}`` (``--set source.models.weak=NAME``; ``sourceN.`` for the
  Nth source of a mix) names the source's models that play each role; a source whose plugin has
  ``weak_model``/``strong_model`` options (the outcome sources) gets them too, so its 1..5 labels
  are computed from the mapped pair. Without a map a source's pair follows
  :func:`tela_core.routing.targets.resolve_pair` (its plugin's default pair, or the lower mean of two).
- When every source's pair is the same two names, the records keep them and the router routes
  between those models. When the pairs differ (MMLU's Mixtral/GPT-4 beside LLMRouter's
  Gemma/Nemotron), each record's outcomes and costs are re-keyed by role, ``weak`` and
  ``strong``, and the router routes between those two roles (``tela serve --weak/--strong`` says
  which upstream plays each); the real pairs are kept for the manifest.

``weight`` scales how much a source counts in training: a source of n training records with weight w contributes
``floor(w)`` copies of them plus ``round((w - floor(w)) * n)`` more drawn without replacement with the run's seed
(:func:`tela_core.data.sampling.subsample`, seed 42 by default), so the same command always trains on the same rows. A
weight is at most :data:`MAX_WEIGHT` (10,000), and weights make at most :data:`MAX_WEIGHTED_ROWS` (10 million)
training rows: past either, the run is refused with one line naming the source before anything is copied. Weights
apply to the training side only: the held-out eval split (score-token's eval loss) never holds a copy of a training
row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tela_core.data.detect import DETECT, detect_source
from tela_core.data.protocols import names, split
from tela_core.data.records import Record
from tela_core.data.sampling import subsample
from tela_core.infra.errors import NoRecordsError, PairModelError, TelaError
from tela_core.plugins.discovery import get_registry
from tela_core.routing.targets import model_names, resolve_pair

__all__ = [
    "ROLES",
    "SourceSpec",
    "SourcePart",
    "Mix",
    "section_name",
    "open_source_of",
    "read_part",
    "combine",
    "read_mix",
    "weigh",
    "weighted_count",
    "MAX_WEIGHT",
    "MAX_WEIGHTED_ROWS",
]

#: the roles a model map names; also the model names of a router trained on differing pairs
ROLES = ("weak", "strong")
#: the largest ``weight`` a source may have
MAX_WEIGHT = 10_000
#: the most training rows weights may make (when they make more rows than the sources have)
MAX_WEIGHTED_ROWS = 10_000_000


class SourceSpec(BaseModel):
    """One source of a run's data: a ``mix:`` entry of a run config file, or one ``--data`` of ``tela run``."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    source: str = "detect"
    source_options: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    weight: float = 1.0
    protocol: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _lift_models(cls, values: Any) -> Any:
        """``source_options: {models: {...}}`` (what ``--set source.models.weak=NAME`` writes) is
        the model map, tela's own option of every source, not the plugin's."""
        if (
            isinstance(values, dict)
            and isinstance(values.get("source_options"), dict)
            and "models" in values["source_options"]
        ):
            values = dict(values)
            opts = dict(values["source_options"])
            lifted = opts.pop("models")
            if not isinstance(lifted, dict):
                raise ValueError(f"models must map weak and strong to model names, got {lifted!r}")
            values["models"] = {**lifted, **dict(values.get("models") or {})}
            values["source_options"] = opts
        return values

    @field_validator("models")
    @classmethod
    def _models(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - set(ROLES))
        if bad:
            raise ValueError(f"the model map takes weak and strong, got {', '.join(map(repr, bad))}")
        for role, name in v.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"models.{role} must be a model name, got {name!r}")
        if v.get("weak") is not None and v.get("weak") == v.get("strong"):
            raise ValueError(f"models.weak and models.strong are both {v['weak']!r}")
        return v

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):  # pydantic reads true as 1.0: a config slip, not a weight
            raise ValueError(
                f"must be a positive number (1: as it is, 2: counts twice, 0.5: half), got {str(v).lower()}"
            )
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"must be a positive number (1: as it is, 2: counts twice, 0.5: half), got {v}")
        if v > MAX_WEIGHT:  # each unit is a copy of the source's rows: 1e9 asked for billions of them
            raise ValueError(
                f"must be at most {MAX_WEIGHT:,} (each unit of weight is one more copy of the source's "
                f"training rows), got {v:g}"
            )
        return v

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: str | None) -> str | None:
        if v is not None and v not in names():
            raise ValueError(f"unknown protocol {v!r}; known: {', '.join(names())}")
        return v


def section_name(index: int, total: int) -> str:
    """The ``--set`` section of the ``index``-th (1-based) of ``total`` sources: ``source`` for the
    only one, ``source2`` for the second of a mix."""
    return "source" if total == 1 else f"source{index}"


def _label(spec: SourceSpec, index: int, total: int) -> str:
    return str(spec.data) if total == 1 else f"{spec.data} ({section_name(index, total)})"


def open_source_of(spec: SourceSpec, index: int = 1, total: int = 1) -> Any:
    """The source instance that reads ``spec.data`` (named, or detected from the path), with the
    model map handed to a plugin that has ``weak_model``/``strong_model`` options. Options are
    checked against the plugin even when it was detected: a misspelt option is an error, never dropped."""
    reg = get_registry()
    named = None if spec.source in (None, DETECT) else reg.get("source", spec.source)
    if not Path(spec.data).exists() and not getattr(named, "reads_hub_ids", False):  # hub ids: the source says
        raise TelaError(f"{spec.data}: data file not found")
    name = detect_source(Path(spec.data)) if named is None else spec.source
    options = dict(spec.source_options)
    fields = getattr(reg.get("source", name).Options, "model_fields", {})
    for role in ROLES:
        key = f"{role}_model"
        if role in spec.models and key in fields:
            if options.get(key) not in (None, spec.models[role]):
                raise TelaError(
                    f"{_label(spec, index, total)}: {section_name(index, total)}.models.{role}={spec.models[role]!r} "
                    f"and {section_name(index, total)}.{key}={options[key]!r} disagree; give one"
                )
            options[key] = spec.models[role]
    return reg.create("source", name, options)


@dataclasses.dataclass
class SourcePart:
    """One source as read: its records (protocol side taken) and the pair its models resolve to."""

    spec: SourceSpec
    index: int
    total: int
    source: str
    records: list[Record]
    records_read: int
    models: list[str]
    pair: tuple[str, str] | None
    problem: str | None
    sha256: str | None
    notes: dict[str, Any]

    @property
    def section(self) -> str:
        return section_name(self.index, self.total)

    @property
    def has_outcomes(self) -> bool:
        return any(r.outcomes for r in self.records)

    def summary(self, train: int | None = None) -> dict[str, Any]:
        """What the manifest records about this source."""
        out: dict[str, Any] = {
            "source": self.source,
            "path": str(Path(self.spec.data).resolve()) if Path(self.spec.data).exists() else str(self.spec.data),
            "sha256": self.sha256,
            "records_read": self.records_read,
            "records": len(self.records),
            "protocol": self.spec.protocol,
            "weight": self.spec.weight,
            "weak": self.pair[0] if self.pair else None,
            "strong": self.pair[1] if self.pair else None,
        }
        if self.spec.models:
            out["models"] = dict(self.spec.models)
        if train is not None:
            out["train"] = train
        return out


def read_part(spec: SourceSpec, index: int = 1, total: int = 1, complete_pair: bool = False) -> SourcePart:
    """Read one source: every record, its protocol's training side, and its weak/strong pair.

    ``complete_pair`` (a router between two models): from a source that yields N-model records
    lacking some models by design (its class sets ``partial_outcomes``, e.g. ``routerarena``, whose
    model files cover different prompts), only the records with both models of the pair named (the
    source's map, else its ``weak_model``/``strong_model``) are kept, counted in the notes
    (``records_without_the_pair``); a family that predicts each model's quality keeps them all.
    Records of other sources that lack the pair stay an error that names them (:func:`resolve_pair`)."""
    source = open_source_of(spec, index, total)
    path = Path(spec.data)
    try:
        records = list(source.records(path))
    except PairModelError as e:  # the source says --weak-model; tela run names the pair per source
        raise e.with_how(f"--set {section_name(index, total)}.models.{e.role}=NAME") from None
    if not records:
        raise NoRecordsError(path)
    read = len(records)
    without_pair = 0
    if complete_pair:
        records, without_pair = _with_pair(records, spec, source)
    if spec.protocol:
        try:
            records, _ = split(spec.protocol, records)
        except TelaError as e:
            raise TelaError(f"{_label(spec, index, total)}: {e}") from None
        if not records:
            raise TelaError(f"{_label(spec, index, total)}: protocol {spec.protocol!r} leaves no training records")
    sec = section_name(index, total)
    how = f"map them: --set {sec}.models.weak=NAME --set {sec}.models.strong=NAME"
    if not model_names(records):  # one file, several datasets: no map can fix that, separate sources can
        how = (
            "give each set of models its own file, and train on them as sources of one run (--data A --data B), "
            "each mapped onto the pair: --set sourceN.models.weak=NAME --set sourceN.models.strong=NAME"
        )
    pair: tuple[str, str] | None = None
    problem = None
    if any(r.outcomes for r in records):
        try:
            pair = resolve_pair(records, spec.models.get("weak"), spec.models.get("strong"), source, how=how)
        except TelaError as e:
            if spec.models:  # the user's map is wrong: say so now
                raise TelaError(f"{_label(spec, index, total)}: {e}") from None
            problem = f"{_label(spec, index, total)}: {e}"
    elif spec.models:
        raise TelaError(
            f"{_label(spec, index, total)}: {sec}.models maps models, but its records carry no per-model "
            "outcomes (labels only); drop the map for this source"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    notes = dict(getattr(source, "stats", {}) or {})
    if without_pair:
        notes["records_without_the_pair"] = without_pair
    return SourcePart(
        spec,
        index,
        total,
        source.name,
        records,
        read,
        model_names(records),
        pair,
        problem,
        digest,
        notes,
    )


def _with_pair(records: list[Record], spec: SourceSpec, source: Any) -> tuple[list[Record], int]:
    """``records`` that have both models of the named pair (``complete_pair`` of :func:`read_part`),
    and how many did not; all of them where no pair is named or every record has it."""
    if not getattr(source, "partial_outcomes", False):
        return records, 0
    opts = getattr(source, "options", None)
    weak = spec.models.get("weak") or getattr(opts, "weak_model", None)
    strong = spec.models.get("strong") or getattr(opts, "strong_model", None)
    if not (weak and strong) or not any(r.outcomes for r in records):
        return records, 0
    kept = [r for r in records if r.outcomes and weak in r.outcomes and strong in r.outcomes]
    if not kept or len(kept) == len(records) or any(not r.outcomes for r in records):
        return records, 0  # the pair is not in the data (resolve_pair says so), or labels-only records
    return kept, len(records) - len(kept)


@dataclasses.dataclass
class Mix:
    """The sources of a run, combined: records in source order, which source each came from, the
    pair the router routes between, and whether the records were re-keyed by role."""

    parts: list[SourcePart]
    records: list[Record]
    origins: list[int]
    pair: tuple[str, str] | None
    by_role: bool

    def trained_pairs(self, train_counts: Sequence[int] | None = None) -> list[list[str]]:
        """The distinct real (weak, strong) pairs of the sources, for the manifest; with
        ``train_counts`` (training rows per source, after weights), only the sources that train."""
        out: list[list[str]] = []
        for i, p in enumerate(self.parts):
            if train_counts is not None and not train_counts[i]:
                continue
            if p.pair and list(p.pair) not in out:
                out.append(list(p.pair))
        return out

    def untrained_notes(self, train_counts: Sequence[int]) -> list[str]:
        """One line per source that gives no training row (``train_counts``: rows per source after
        weights), e.g. a weight of 0.4 on a one-record source, which rounds to 0 rows."""
        notes = []
        for i, p in enumerate(self.parts):
            if train_counts[i] or not p.records:
                continue
            label = _label(p.spec, p.index, p.total)
            why = (
                f"weight {p.spec.weight:g} rounds it to 0 training rows (raise the weight to train on it)"
                if p.spec.weight < 1
                else "0 training rows"
            )
            notes.append(f"note: {label}: {why}; it does not train this router and is left out of its trained pairs")
        return notes

    def describe_pairs(self) -> str:
        return "; ".join(f"{p.section}: {p.pair[0]} -> {p.pair[1]}" for p in self.parts if p.pair)


def _by_role(record: Record, pair: tuple[str, str]) -> Record:
    weak, strong = pair
    outcomes = {"weak": record.outcomes[weak], "strong": record.outcomes[strong]} if record.outcomes else None
    costs = None
    if record.costs:
        costs = {role: record.costs[m] for role, m in (("weak", weak), ("strong", strong)) if m in record.costs} or None
    return dataclasses.replace(record, outcomes=outcomes, costs=costs)


def combine(parts: Sequence[SourcePart]) -> Mix:
    """Put the sources' records together under one pair (module doc). A source whose pair cannot
    be told is an error only where it matters: when its records must be re-keyed beside others."""
    parts = list(parts)
    records = [r for p in parts for r in p.records]
    origins = [i for i, p in enumerate(parts) for _ in p.records]
    with_outcomes = [p for p in parts if p.has_outcomes]
    pairs = {p.pair for p in with_outcomes if p.pair}
    unresolved = [p for p in with_outcomes if p.pair is None]
    if not with_outcomes:
        return Mix(parts, records, origins, None, False)
    if unresolved:
        same_models = len({tuple(sorted(p.models)) for p in with_outcomes}) == 1 and all(
            p.models for p in with_outcomes
        )
        if len(parts) == 1 or (same_models and len(pairs) <= 1):
            return Mix(parts, records, origins, None, False)  # one set of models: the family names the pair
        raise TelaError(f"{unresolved[0].problem} (each source of a mix needs its weak/strong pair to be told apart)")
    if len(pairs) == 1:
        return Mix(parts, records, origins, next(iter(pairs)), False)
    keyed = []
    for p in parts:
        keyed += [_by_role(r, p.pair) if p.pair else r for r in p.records]
    return Mix(parts, keyed, origins, ROLES, True)  # type: ignore[arg-type]


def read_mix(specs: Sequence[SourceSpec], complete_pair: bool = False) -> Mix:
    """Read every source of ``specs`` and combine them (``complete_pair``: :func:`read_part`)."""
    total = len(specs)
    return combine([read_part(s, i, total, complete_pair) for i, s in enumerate(specs, start=1)])


def weighted_count(n: int, weight: float) -> int:
    """How many training rows ``n`` rows of a source with ``weight`` become (:func:`weigh`)."""
    whole = math.floor(weight)
    return whole * n + round((weight - whole) * n)


def weigh(
    records: Sequence[Any],
    origins: Sequence[int],
    weights: Sequence[float],
    seed: int = 42,
    labels: Sequence[str] | None = None,
) -> tuple[list[Any], list[int]]:
    """``records`` (each from source ``origins[i]``) with each source counted ``weights[source]``
    times: whole copies, then the fraction drawn with ``seed`` (module doc). Source order is kept.
    Returns the records and, for each, its source. Weights that would make more than
    :data:`MAX_WEIGHTED_ROWS` rows (and more than the sources hold) are a :class:`TelaError` naming
    the source that adds the most (``labels[source]``, else its number), counted before any row is copied."""
    if all(w == 1 for w in weights):
        return list(records), list(origins)
    sizes = [0] * len(weights)
    for o in origins:
        sizes[o] += 1
    counts = [weighted_count(n, w) for n, w in zip(sizes, weights)]
    if sum(counts) > max(MAX_WEIGHTED_ROWS, len(records)):
        big = max(range(len(counts)), key=counts.__getitem__)
        name = labels[big] if labels is not None else f"source {big + 1}"
        raise TelaError(
            f"{name}: weight {weights[big]:g} on its {sizes[big]:,} training records makes {counts[big]:,} rows "
            f"({sum(counts):,} in all); weights may make at most {MAX_WEIGHTED_ROWS:,} training rows: lower the weight"
        )
    out: list[Any] = []
    where: list[int] = []
    for s, w in enumerate(weights):
        mine = [r for r, o in zip(records, origins) if o == s]
        whole = math.floor(w)
        part = mine * whole
        extra = round((w - whole) * len(mine))
        if extra:
            part += subsample(mine, extra, seed=seed)
        out += part
        where += [s] * len(part)
    return out, where
