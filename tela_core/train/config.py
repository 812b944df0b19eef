"""The settings of one ``tela run``: :class:`RunConfig` and where its values come from.

Defaults < ``--config`` file (YAML or TOML, :func:`load_config_file`) < CLI flags < ``--set
SECTION.KEY=VALUE`` overrides (:func:`parse_overrides`), merged by :func:`resolve_config` and
validated before anything is written.

The data is one source (``data``, ``source``, ``source_options``) or several (``mix``: a list of
:class:`tela_core.data.mix.SourceSpec`, from repeated ``--data``/``--source``/``--weight`` flags or
a config file's ``mix:``); :meth:`RunConfig.sources` gives both as the same list.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tela_core.components import RUN_SUBDIR, TrainSettings
from tela_core.data.mix import SourceSpec, section_name
from tela_core.data.protocols import names
from tela_core.infra.errors import TelaError, config_parse_error
from tela_core.infra.io import read_utf8
from tela_core.routing.operating_point import parse_rule

__all__ = [
    "RUN_SUBDIR",
    "LAUNCH_FIELDS",
    "BACKEND_SETTINGS",
    "RunConfig",
    "load_config_file",
    "parse_assignment",
    "parse_overrides",
    "resolve_config",
    "check_settings_used",
]


#: RunConfig fields that place this node in a multi-node run (not part of the fingerprint).
LAUNCH_FIELDS = ("nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint")


class RunConfig(BaseModel):
    """Every setting of one ``tela run``. Training defaults follow the seed where it makes sense
    (3 epochs, effective batch 8, max length 2048, 10% eval split, seed 42); the seed's batch
    1 × accumulation 8 becomes batch 8 × accumulation 1 with dynamic padding (same effective batch).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = "detect"
    source_options: dict[str, Any] = Field(default_factory=dict)
    data: Path | None = None
    #: several sources (``mix:`` in a config file, or ``--data`` given more than once); replaces ``data``
    mix: list[SourceSpec] | None = None
    #: train on this protocol's training side of the data (``tela_core.data.protocols``)
    protocol: str | None = None
    formatter: str = "role-prefix"
    formatter_options: dict[str, Any] = Field(default_factory=dict)
    family: str = "score-token"
    family_options: dict[str, Any] = Field(default_factory=dict)
    backend: str = "deepspeed-z3"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    output: Path
    processes: int = 1
    hostfile: Path | None = None
    # Multi-node placement (None: from the scheduler's environment, see tela_core.train.multinode).
    # Where the run is launched, not what it trains: left out of the fingerprint, like hostfile.
    nnodes: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None
    rdzv_endpoint: str | None = None
    trust_remote_code: bool = False
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 2048
    max_steps: int | None = None
    warmup_ratio: float = 0.0
    save_steps: int = 50
    sample: int | None = None
    eval_fraction: float = 0.1
    seed: int = 42
    #: how the saved policy's threshold is chosen (:mod:`tela_core.routing.operating_point`); None: the knee
    operating_point: str | None = None

    @model_validator(mode="after")
    def _one_kind_of_data(self) -> RunConfig:
        if self.mix is not None:
            if self.data is not None:
                raise ValueError("give either data (one source) or mix (several), not both")
            if not self.mix:
                raise ValueError("mix must list at least one source")
            if "source" in self.model_fields_set and self.source != "detect":
                raise ValueError("with a mix, name each entry's source (mix: [{data: ..., source: ...}])")
        elif self.data is None:
            raise ValueError("no training data: give --data (or data: / mix: in the config file)")
        return self

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: str | None) -> str | None:
        if v is not None and v not in names():
            raise ValueError(f"unknown protocol {v!r}; known: {', '.join(names())}")
        return v

    @field_validator("processes")
    @classmethod
    def _processes(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v

    @field_validator("batch_size", "grad_accum", "max_length")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v

    @field_validator("epochs", "learning_rate")
    @classmethod
    def _positive_float(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:  # nan compares false with everything: check it by name
            raise ValueError(f"must be a positive finite number, got {v}")
        return v

    @field_validator("eval_fraction", "warmup_ratio")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not math.isfinite(v) or not 0 <= v < 1:
            raise ValueError(f"must be in [0, 1), got {v}")
        return v

    @field_validator("max_steps", "sample")
    @classmethod
    def _positive_or_none(cls, v: int | None) -> int | None:
        if v is not None and v < 1:  # 0 must not quietly mean "no limit" / "everything"
            raise ValueError(f"must be at least 1 (leave it out for no limit), got {v}")
        return v

    @field_validator("save_steps")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be 0 or more, got {v}")
        return v

    @field_validator("operating_point")
    @classmethod
    def _operating_point(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            kind, value = parse_rule(v)
        except TelaError as e:
            raise ValueError(str(e).removeprefix(f"operating point {str(v).strip()!r}: ")) from None
        return kind if value is None else f"{kind}={value:g}"

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v < 2**32:  # numpy's RandomState (the seed's sampling) takes 32-bit seeds
            raise ValueError(f"must be in [0, 2**32), got {v}")
        return v

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> RunConfig:
        """Validate ``values``; a :class:`TelaError` naming each bad option otherwise."""
        try:
            return cls(**dict(values))
        except ValidationError as e:
            mix = dict(values).get("mix")
            total = len(mix) if isinstance(mix, list) else 1
            problems = "; ".join(
                f"{_where(err['loc'], total)}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors()
            )
            raise TelaError(f"bad run options: {problems}") from None

    def sources(self) -> list[SourceSpec]:
        """The run's data as a list of sources: the one of ``data`` or each entry of ``mix``, with the
        top-level ``source_options`` (``--set source.KEY=VALUE``) and ``protocol`` applied to every
        entry that does not set its own."""
        if self.mix is None:
            assert self.data is not None
            return [
                SourceSpec(
                    data=self.data, source=self.source, source_options=dict(self.source_options), protocol=self.protocol
                )
            ]
        shared = dict(self.source_options)
        shared_models = dict(shared.pop("models", None) or {})
        out = []
        for s in self.mix:
            out.append(
                SourceSpec(
                    data=s.data,
                    source=s.source,
                    source_options={**shared, **s.source_options},
                    models={**shared_models, **s.models},
                    weight=s.weight,
                    protocol=s.protocol or self.protocol,
                )
            )
        return out

    def data_label(self) -> str:
        """The data as a message names it: the path, or the paths of a mix."""
        if self.mix is None:
            return str(self.data)
        return " + ".join(str(s.data) for s in self.mix)

    def train_settings(self) -> TrainSettings:
        """The training flags a backend receives (:attr:`tela_core.TrainJob.train`)."""
        return TrainSettings(**{k: getattr(self, k) for k in TrainSettings.model_fields})

    def fingerprint(self) -> str:
        """Hash of everything that changes the trained router (not where or how it is launched)."""
        d = self.model_dump(mode="json", exclude={"output", "hostfile", *LAUNCH_FIELDS})
        for key in (
            "mix",
            "protocol",
            "operating_point",
        ):  # added in 0.2: left out when unset, so older runs keep their fingerprint
            if d.get(key) is None:
                d.pop(key, None)
        if self.data is not None:
            d["data"] = _where_data(self.data)
        for entry, spec in zip(d.get("mix") or [], self.mix or []):
            entry["data"] = _where_data(spec.data)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _where_data(path: Path) -> str:
    return str(Path(path).resolve()) if Path(path).exists() else str(path)  # or a hub id


def _where(loc: Sequence[Any], total: int) -> str:
    """A validation error's location as the user set it: ``--eval-fraction``, or for the Nth source
    of a mix ``--weight (source2)`` / ``--set source2.models``."""
    if not loc:
        return "data"
    if len(loc) >= 3 and loc[0] == "mix" and isinstance(loc[1], int):
        section = section_name(loc[1] + 1, total)
        field = str(loc[2])
        if field in ("models", "source_options"):
            return f"--set {section}{'.models' if field == 'models' else ''}"
        return f"--{field.replace('_', '-')} ({section})"
    return "--" + ".".join(str(x) for x in loc).replace("_", "-")


# ------------------------------------------------------------------------------------------------
# Config files and overrides
# ------------------------------------------------------------------------------------------------


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) run config.

    Top-level keys are run options (``epochs``, ``learning_rate``, ...); the sections ``backend``,
    ``family`` and ``source`` hold options of those components, e.g.::

        backend: deepspeed-z3
        epochs: 1
        backend_options: {offload_optimizer: true}
    """
    p = Path(path)
    if not p.is_file():
        raise TelaError(f"{p}: config file not found")
    text = read_utf8(p)
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except RecursionError:
        raise TelaError(f"{p}: nested too deeply to read") from None
    except Exception as e:  # yaml/toml parse errors carry line numbers in their message
        raise TelaError(config_parse_error(p, "TOML" if p.suffix.lower() == ".toml" else "YAML", e)) from None
    if not isinstance(data, dict):
        raise TelaError(f"{p}: expected a mapping of options at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_assignment(
    item: str, flag: str = "--set", example: str = "backend.r=8", shape: str = "SECTION.KEY=VALUE"
) -> tuple[str, str, Any]:
    """``"SECTION.KEY=VALUE"`` -> (section, key, value), the one syntax of ``tela run --set`` and
    ``tela zoo --set``. VALUE is read as a YAML scalar or flow collection (``8`` is an int,
    ``true`` a bool, ``[a, b]`` a list, ``{k: 5}`` a mapping); anything else stays a string.
    Dashes in KEY become underscores (``max-train`` = ``max_train``).
    """
    import yaml

    key, sep, raw = item.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or not section or not name:
        raise TelaError(f"{flag} {item!r}: expected {shape}, e.g. {flag} {example}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return section, name.replace("-", "_"), value


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set backend.r=8 --set family.k=5`` -> ``{"backend_options": {"r": 8}, ...}``.

    The source sections take a dotted KEY as a nested one (``--set source.models.weak=NAME`` ->
    ``{"source_options": {"models": {"weak": "NAME"}}}``); ``sourceN`` (N = 1, 2, ...) is the Nth
    source of a mix, returned as ``"sourceN"``, which :func:`resolve_config` applies to that entry.
    """
    sections = {
        "backend": "backend_options",
        "family": "family_options",
        "source": "source_options",
        "formatter": "formatter_options",
    }
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        section, name, value = parse_assignment(item)
        nth = section.removeprefix("source")
        if section.startswith("source") and nth.isdigit() and int(nth) >= 1:
            key = section
        elif section in sections:
            key = sections[section]
        else:
            raise TelaError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(sections)} "
                "(or sourceN, the Nth --data of a mix)"
            )
        if key.startswith("source"):
            *path, last = name.split(".")
            into = out.setdefault(key, {})
            for part in path:
                nxt = into.setdefault(part, {})
                if not isinstance(nxt, dict):
                    raise TelaError(f"--set {item!r}: {part} is already set to a value, not a mapping")
                into = nxt
            into[last] = value
        else:
            out.setdefault(key, {})[name] = value
    return out


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested mappings merged key by key (a config file's
    ``models: {weak: A}`` plus ``--set source.models.strong=B`` keeps both)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _apply_data_flags(values: dict[str, Any], flags: Mapping[str, Any]) -> None:
    """Put ``tela run``'s ``--data``/``--source``/``--weight`` (each given once per source, paired in
    order) into ``values``: one ``--data`` is ``data`` (and ``source``), several are a ``mix``.
    Data on the command line replaces the config file's ``data``/``mix``."""
    datas, sources, weights = (_as_list(flags.get(k)) for k in ("data", "source", "weight"))
    if not datas:
        if len(sources) > 1 or weights or (sources and values.get("mix") is not None):
            flag = "--weight" if weights else "--source"
            raise TelaError(
                f"{flag} pairs with --data (one per --data, in order); give the data with --data, "
                "or name each mix entry's source and weight in the config file"
            )
        if sources:
            values["source"] = sources[0]
        return
    for flag, given in (("--source", sources), ("--weight", weights)):
        if given and len(given) != len(datas):
            raise TelaError(
                f"--data is given {len(datas)} time(s) and {flag} {len(given)}: give one {flag} per --data, in order"
                + (" (--source detect reads a path by its own format)" if flag == "--source" else "")
            )
    values.pop("data", None)
    values.pop("mix", None)
    if len(datas) == 1:
        if weights:
            raise TelaError(
                "--weight weighs the sources of a mix against each other; with one --data there is nothing to weigh"
            )
        values["data"] = datas[0]
        if sources:
            values["source"] = sources[0]
        return
    default = values.pop("source", "detect")
    values["mix"] = [
        {"data": d, "source": sources[i] if sources else default, **({"weight": weights[i]} if weights else {})}
        for i, d in enumerate(datas)
    ]


def resolve_config(
    config_file: str | Path | None, flags: Mapping[str, Any], overrides: Sequence[str] = ()
) -> RunConfig:
    """Defaults < ``config_file`` < ``flags`` (the CLI flags given, None meaning "not given") <
    ``--set`` overrides (merged into the component option sections, or into the Nth entry of a mix
    for ``sourceN``). ``flags`` may hold ``data``, ``source`` and ``weight`` as lists, one per source."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    if config_file and not _as_list(flags.get("data")):  # --data replaces the file's mix: then it is not read
        _check_mix_entries(config_file, values.get("mix"))
    _apply_data_flags(values, flags)
    values.update({k: v for k, v in flags.items() if v is not None and k not in ("data", "source", "weight")})
    try:
        for section, opts in parse_overrides(overrides).items():
            if section.startswith("source") and section != "source_options":
                _set_entry(values, int(section.removeprefix("source")), opts)
            else:
                values[section] = _merge(dict(values.get(section) or {}), opts)
        return RunConfig.build(values)
    except TelaError as e:
        if config_file:  # say where the values came from: the user may not have typed them
            raise TelaError(f"{e} (options read from {config_file} and the command line)") from None
        raise


def _check_mix_entries(path: str | Path, mix: Any) -> None:
    """Each ``mix:`` entry of a run config file, checked where the user wrote it: a misspelt key
    (``wieght: 2``) or a bad value is ``FILE: mix entry N: ...`` listing the valid keys, not a flag
    the user never typed (``--wieght (source2)``)."""
    if not isinstance(mix, list):
        return  # not a list (or absent): RunConfig says what mix must be
    valid = list(SourceSpec.model_fields)
    for n, entry in enumerate(mix, start=1):
        where = f"{path}: mix entry {n}"
        if not isinstance(entry, Mapping):
            raise TelaError(f"{where}: expected a mapping of {', '.join(valid)}, got {entry!r}")
        unknown = [str(k) for k in entry if k not in valid]
        if unknown:
            raise TelaError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")
        try:
            SourceSpec.model_validate(dict(entry))
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or 'entry'}: {err['msg'].removeprefix('Value error, ')}"
                for err in e.errors()
            )
            raise TelaError(f"{where}: {problems}") from None


def _set_entry(values: dict[str, Any], n: int, opts: Mapping[str, Any]) -> None:
    """``--set sourceN.KEY=VALUE``: an option of the Nth source of the mix."""
    mix = values.get("mix")
    if not isinstance(mix, list):
        raise TelaError(f"--set source{n}.*: there is one source; set its options with --set source.KEY=VALUE")
    if not 1 <= n <= len(mix):
        raise TelaError(
            f"--set source{n}.*: the mix has {len(mix)} sources (source1..source{len(mix)}, in --data order)"
        )
    entry = dict(mix[n - 1]) if isinstance(mix[n - 1], Mapping) else mix[n - 1]
    if isinstance(entry, dict):
        entry["source_options"] = _merge(dict(entry.get("source_options") or {}), opts)
        mix[n - 1] = entry


#: Run settings that only a family trained by a backend (``uses_backend``, e.g. score-token) reads.
BACKEND_SETTINGS = (
    "backend",
    "backend_options",
    "model",
    "processes",
    "hostfile",
    *LAUNCH_FIELDS,
    "trust_remote_code",
    "formatter",
    "formatter_options",
    "epochs",
    "learning_rate",
    "batch_size",
    "grad_accum",
    "max_length",
    "max_steps",
    "warmup_ratio",
    "save_steps",
)


def check_settings_used(cfg: RunConfig, uses_backend: bool) -> None:
    """Refuse settings the family would silently ignore (``--model`` for ``length``, say): a user who
    passes them expects them to matter. A family that trains itself holds nothing out (it computes no
    eval loss: it trains on every record), so a nonzero ``--eval-fraction`` is refused too."""
    if uses_backend:
        return
    given = [k for k in BACKEND_SETTINGS if k in cfg.model_fields_set]
    if "eval_fraction" in cfg.model_fields_set and cfg.eval_fraction > 0:
        given.append("eval_fraction")
    if given:
        flags = ", ".join("--set backend.*" if k == "backend_options" else f"--{k.replace('_', '-')}" for k in given)
        raise TelaError(
            f"family {cfg.family!r} trains itself, without a backend or base model, and would ignore {flags}; "
            "drop them (they apply to backend-trained families such as score-token), or set its own options "
            "with --set family.KEY=VALUE"
        )
