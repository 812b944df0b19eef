"""What a backend hands the shared training worker: the module to launch and its ``worker.json``.

A backend builds the spec with :func:`worker_spec` (adding ``deepspeed`` and ``lora`` settings
as it needs) and passes it with :data:`WORKER_MODULE` to :func:`tela_core.train.launch_workers`::

    spec = worker_spec(job, zero3_config(), None)
    launch_workers(Path(job.config["run_dir"]), WORKER_MODULE, spec, job.processes, job.hostfile,
                   quiet=bool(job.config.get("quiet")), nodes=job.config.get("nodes"))
"""

from __future__ import annotations

from typing import Any

from ..components import TrainJob

__all__ = ["WORKER_MODULE", "worker_spec"]

#: The shared training worker (:mod:`tela_core.train.worker`), run as ``python -m`` on every rank.
WORKER_MODULE = "tela_core.train.worker"


def worker_spec(job: TrainJob, deepspeed: dict[str, Any] | None, lora: dict[str, Any] | None) -> dict[str, Any]:
    """What :mod:`tela_core.train.worker` reads from ``worker.json``: the job's model, data and
    training settings, a DeepSpeed config (None: no DeepSpeed) and LoRA settings (None: a full
    fine-tune; else ``r``, ``alpha``, ``dropout``, ``target_modules``)."""
    return {
        "model": job.model,
        "output_dir": str(job.output_dir),
        "train_file": str(job.train_file),
        "eval_file": str(job.eval_file) if job.eval_file else None,
        "trust_remote_code": job.trust_remote_code,
        "train": dict(job.config["train"]),
        "deepspeed": deepspeed,
        "lora": lora,
    }
