"""The training stage: what ``tela run`` does, and what a backend plugin uses to train.

- ``config.py``: :class:`RunConfig`, every setting of one run (defaults < ``--config`` file <
  CLI flags < ``--set``), validated before anything is written.
- ``data.py``: records read through the source plugin, sampled and split (seed 42), formatted
  into ``train.jsonl``/``eval.jsonl`` (prompt/completion) in the run dir ``OUTPUT/.tela``.
- ``guard.py``: a different config on an existing output dir is refused unless ``--force``; the
  same config resumes from the last checkpoint or reports that the router is done.
- ``launch.py``: :func:`launch_workers` starts the launcher (``torchrun`` on one node or one per
  node, ``deepspeed --hostfile`` across nodes) on a worker module and follows rank 0's progress;
  ``multinode.py`` places this node in a multi-node run.
- ``runner.py``: :func:`run`, the whole run; the manifest and default policy are written last, so an
  output dir with ``tela.json`` is a finished router.

What a backend uses (both builtin backends, ``deepspeed-z3`` and ``lora``, are built from these):

- ``worker.py``: the shared training worker (TRL ``SFTTrainer``, completion-only loss from
  ``loss.py``, score tokens from ``tokens.py``), run on every rank as ``python -m``
  :data:`WORKER_MODULE` by :func:`run_worker`; ``spec.py``: :class:`WorkerSpec`, the typed
  ``worker.json`` the launcher writes and the worker reads (with :class:`LoraSettings`).
- ``deepspeed_config.py``: :func:`zero3_config` and :func:`load_ds_config` (a user's JSON file).
- ``adapters.py``: :func:`load_merged`/:func:`merge_adapter`, a LoRA adapter merged into its base.

Nothing here imports torch, transformers or deepspeed at module level, and nothing imports
``worker.py`` but the launched workers.
"""

from __future__ import annotations

from .adapters import load_merged, merge_adapter
from .config import RUN_SUBDIR, RunConfig, load_config_file, parse_assignment, parse_overrides, resolve_config
from .data import prepare_data, split_records
from .deepspeed_config import load_ds_config, zero3_config
from .guard import check_output
from .launch import launch_workers, run_worker
from .multinode import NodeLaunch
from .runner import run
from .spec import WORKER_MODULE, LoraSettings, WorkerSpec, worker_spec
from .tokens import add_score_tokens

__all__ = [
    "RUN_SUBDIR",
    "RunConfig",
    "load_config_file",
    "parse_assignment",
    "parse_overrides",
    "resolve_config",
    "prepare_data",
    "split_records",
    "check_output",
    "launch_workers",
    "run_worker",
    "NodeLaunch",
    "run",
    "WORKER_MODULE",
    "WorkerSpec",
    "LoraSettings",
    "worker_spec",
    "zero3_config",
    "load_ds_config",
    "add_score_tokens",
    "load_merged",
    "merge_adapter",
]
