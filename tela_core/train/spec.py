"""What a backend hands the shared training worker: :class:`WorkerSpec`, the typed ``worker.json``.

A backend that trains with tela's worker calls :func:`tela_core.train.run_worker`, which builds
the spec from the job (:meth:`WorkerSpec.for_job`), writes it and starts the workers; each rank
reads it back with :meth:`WorkerSpec.read`. The launcher writes every field the worker reads, and
the worker reads nothing else::

    run_worker(job, deepspeed=zero3_config())                 # a full fine-tune under ZeRO-3
    run_worker(job, lora=LoraSettings(r=16, alpha=32, dropout=0.05, target_modules="all-linear"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tela_core.infra.deprecation import deprecated_alias
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json

from ..components import TrainJob, TrainSettings

__all__ = ["WORKER_MODULE", "LoraSettings", "WorkerSpec", "TrainSettings", "worker_spec"]

#: The shared training worker (:mod:`tela_core.train.worker`), run as ``python -m`` on every rank.
WORKER_MODULE = "tela_core.train.worker"


class LoraSettings(BaseModel):
    """The PEFT LoRA adapter the worker trains (the score-token rows train too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | str


class WorkerSpec(BaseModel):
    """Everything one training worker reads, from ``RUN_DIR/worker.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    FILE: ClassVar[str] = "worker.json"

    model: str
    """The base model: a local folder (``tela run`` resolves hub ids to one)."""
    output_dir: Path
    train_file: Path
    eval_file: Path | None = None
    trust_remote_code: bool = False
    train: TrainSettings
    deepspeed: dict[str, Any] | None = None
    """A DeepSpeed config handed to the Trainer; None: no DeepSpeed."""
    lora: LoraSettings | None = None
    """None: a full fine-tune."""
    gradient_checkpointing: bool = False

    @classmethod
    def for_job(
        cls,
        job: TrainJob,
        deepspeed: Mapping[str, Any] | None = None,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
    ) -> WorkerSpec:
        """The spec that trains ``job`` (whose ``train`` must be set, as ``tela run`` sets it)."""
        if job.train is None:
            raise TelaError("the training job carries no training settings (TrainJob.train)")
        return cls(
            model=job.model,
            output_dir=job.output_dir,
            train_file=job.train_file,
            eval_file=job.eval_file,
            trust_remote_code=job.trust_remote_code,
            train=job.train,
            deepspeed=dict(deepspeed) if deepspeed is not None else None,
            lora=lora,
            gradient_checkpointing=gradient_checkpointing,
        )

    def write(self, run_dir: Path) -> Path:
        """Write the spec atomically to ``run_dir/worker.json``; return that path."""
        path = Path(run_dir) / self.FILE
        atomic_write_json(path, self.model_dump(mode="json"), nonfinite="error")
        return path

    @classmethod
    def read(cls, run_dir: Path) -> WorkerSpec:
        """The spec in ``run_dir/worker.json``; a :class:`TelaError` naming the file and each bad field."""
        path = Path(run_dir) / cls.FILE
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise TelaError(f"{path}: cannot read the worker spec ({e})") from None
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise TelaError(f"{path}: bad worker spec: {problems}") from None


def _worker_spec(job: TrainJob, deepspeed: dict[str, Any] | None, lora: dict[str, Any] | None) -> dict[str, Any]:
    """``worker.json`` as a dict: :meth:`WorkerSpec.for_job` with ``lora`` as a dict."""
    spec = WorkerSpec.for_job(job, deepspeed, LoraSettings.model_validate(lora) if lora is not None else None)
    return spec.model_dump(mode="json")


#: tela 0.2's dict form of the spec, kept as a shim; use :meth:`WorkerSpec.for_job` or
#: :func:`tela_core.train.run_worker`.
worker_spec = deprecated_alias(_worker_spec, "tela_core.train.worker_spec", "tela_core.train.run_worker")
