"""The settings of one ``tela run``: :class:`RunConfig` and where its values come from.

Defaults < ``--config`` file (YAML or TOML, :func:`load_config_file`) < CLI flags < ``--set
SECTION.KEY=VALUE`` overrides (:func:`parse_overrides`), merged by :func:`resolve_config` and
validated before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tela_core.infra.errors import TelaError
from tela_core.infra.io import read_utf8

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

#: Where a run keeps its internals (config, data, checkpoints, logs), inside the output dir.
RUN_SUBDIR = ".tela"


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
    data: Path
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

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v < 2**32:  # numpy's RandomState (the seed's sampling) takes 32-bit seeds
            raise ValueError(f"must be in [0, 2**32), got {v}")
        return v

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> "RunConfig":
        """Validate ``values``; a :class:`TelaError` naming each bad option otherwise."""
        try:
            return cls(**dict(values))
        except ValidationError as e:
            problems = "; ".join(
                f"--{'.'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}"
                for err in e.errors()
            )
            raise TelaError(f"bad run options: {problems}") from None

    def train_settings(self) -> dict[str, Any]:
        """The settings a training worker needs."""
        return {
            k: getattr(self, k)
            for k in ("epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "max_steps",
                      "warmup_ratio", "save_steps", "seed")
        }

    def fingerprint(self) -> str:
        """Hash of everything that changes the trained router (not where or how it is launched)."""
        d = self.model_dump(mode="json", exclude={"output", "hostfile", *LAUNCH_FIELDS})
        d["data"] = str(Path(self.data).resolve()) if Path(self.data).exists() else str(self.data)  # or a hub id
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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
        said = " ".join(str(e).split())
        raise TelaError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'YAML'}: {said}") from None
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
    """``--set backend.r=8 --set family.k=5`` -> ``{"backend_options": {"r": 8}, ...}``."""
    sections = {
        "backend": "backend_options", "family": "family_options", "source": "source_options",
        "formatter": "formatter_options",
    }
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        section, name, value = parse_assignment(item)
        if section not in sections:
            raise TelaError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(sections)}"
            )
        out.setdefault(sections[section], {})[name] = value
    return out


def resolve_config(
    config_file: str | Path | None, flags: Mapping[str, Any], overrides: Sequence[str] = ()
) -> RunConfig:
    """Defaults < ``config_file`` < ``flags`` (the CLI flags given, None meaning "not given") <
    ``--set`` overrides (merged into the component option sections)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    for section, opts in parse_overrides(overrides).items():
        values[section] = {**dict(values.get(section) or {}), **opts}
    try:
        return RunConfig.build(values)
    except TelaError as e:
        if config_file:  # say where the values came from: the user may not have typed them
            raise TelaError(f"{e} (options read from {config_file} and the command line)") from None
        raise


#: Run settings that only a family trained by a backend (``uses_backend``, e.g. score-token) reads.
BACKEND_SETTINGS = (
    "backend", "backend_options", "model", "processes", "hostfile", *LAUNCH_FIELDS, "trust_remote_code", "formatter", "formatter_options", "epochs",
    "learning_rate", "batch_size", "grad_accum", "max_length", "max_steps", "warmup_ratio", "save_steps",
)


def check_settings_used(cfg: RunConfig, uses_backend: bool) -> None:
    """Refuse settings the family would silently ignore (``--model`` for ``length``, say): a user who
    passes them expects them to matter."""
    if uses_backend:
        return
    given = [k for k in BACKEND_SETTINGS if k in cfg.model_fields_set]
    if given:
        flags = ", ".join("--set backend.*" if k == "backend_options" else f"--{k.replace('_', '-')}" for k in given)
        raise TelaError(
            f"family {cfg.family!r} trains itself, without a backend or base model, and would ignore {flags}; "
            "drop them (they apply to backend-trained families such as score-token), or set its own options "
            "with --set family.KEY=VALUE"
        )
