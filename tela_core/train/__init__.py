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

Nothing here imports torch, transformers or deepspeed at module level.
"""

from __future__ import annotations

from .config import RUN_SUBDIR, RunConfig, load_config_file, parse_assignment, parse_overrides, resolve_config
from .data import prepare_data, split_records
from .guard import check_output
from .launch import launch_workers
from .multinode import NodeLaunch
from .runner import run

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
    "NodeLaunch",
    "run",
]
