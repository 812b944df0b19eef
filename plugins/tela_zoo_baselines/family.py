"""What the zoo's self-training families share: target options and the artifact they leave.

Every family here has ``uses_backend = False``: ``fit(records, output_dir, config)`` trains on
records with outcomes (or labels) and writes an artifact dir holding its own files, the manifest
``tela.json`` (scorer name, options, target, models, train size and time) and ``policy.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tela_core.artifact import read_manifest, write_manifest, write_policy
from tela_core.components import Scorer
from tela_core.errors import TelaError
from tela_core.records import Record

__all__ = ["TargetOptions", "FamilyScorer", "read_json", "artifact_field"]


class TargetOptions(BaseModel):
    """Options every zoo family has: what to learn and which models are weak and strong."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["weak-wrong", "gain", "label"] = Field("weak-wrong", description="weak-wrong | gain | label (see tela_core.targets)")
    weak: Optional[str] = Field(None, description="weak model name in the outcomes (inferred for two models)")
    strong: Optional[str] = Field(None, description="strong model name in the outcomes (inferred for two models)")


class FamilyScorer(Scorer):
    """Base for self-training families: option merging, artifact writing, manifest checks."""

    uses_backend = False

    def _merged(self, config: Mapping[str, Any] | None) -> BaseModel:
        """Options updated with the keys of ``config`` that are options of this family."""
        data = self.options.model_dump()
        fields = set(type(self.options).model_fields)
        for k, v in (config or {}).items():
            if k in fields:
                data[k] = v
        self.options = type(self.options)(**data)
        return self.options

    def _prepare(self, records: Sequence[Record], output_dir: Path) -> Path:
        if not records:
            raise TelaError(f"{self.name}: no training records")
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        return out

    def _finish(self, out: Path, n_train: int, meta: Mapping[str, Any]) -> Path:
        models = [m for m in (meta.get("weak"), meta.get("strong")) if m] or None
        write_manifest(
            out,
            scorer=self.name,
            scorer_options=self.options.model_dump(),
            train_records=n_train,
            train_seconds=round(time.perf_counter() - getattr(self, "_t0", time.perf_counter()), 3),
            **{k: v for k, v in meta.items() if k not in ("scorer", "scorer_options")},
        )
        write_policy(out, "threshold", {"threshold": 0.5}, models=models if models and len(models) == 2 else None)
        return out

    def _check_manifest(self, artifact_dir: Path) -> dict[str, Any]:
        manifest = read_manifest(artifact_dir)
        if manifest["scorer"] != self.name:
            raise TelaError(f"{artifact_dir}: written by scorer {manifest['scorer']!r}, not {self.name!r}")
        opts = manifest.get("scorer_options") or {}
        self.options = type(self.options)(**{k: v for k, v in opts.items() if k in type(self.options).model_fields})
        return manifest


def read_json(path: Path) -> Any:
    """Read a JSON file of an artifact with a clear error when it is missing or broken."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TelaError(f"{path}: missing from the router artifact") from None
    except (ValueError, RecursionError, OSError) as e:  # bad JSON or UTF-8, too deep, a directory
        raise TelaError(f"{path}: damaged router file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        "train the router again") from None


def artifact_field(data: Any, path: Path, key: str, kind: type | tuple[type, ...]) -> Any:
    """``data[key]`` checked to be a ``kind``: a damaged or foreign artifact file gives one line
    naming the file and the key, not a KeyError."""
    if not isinstance(data, dict) or key not in data:
        raise TelaError(f"{path}: damaged router file: no {key!r} field; train the router again")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TelaError(f"{path}: damaged router file: {key!r} has the wrong type ({type(value).__name__}); "
                        "train the router again")
    return value
