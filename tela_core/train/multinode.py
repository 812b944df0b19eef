"""Where this node sits in a multi-node run: node count, node rank, rendezvous address.

A cluster scheduler starts one ``tela run`` per node (Slurm's ``srun``, a Kubernetes PyTorchJob
pod, a ``torchrun``-style wrapper) rather than reaching the nodes over ssh, and tells each one where
it sits through environment variables. :func:`resolve_nodes` turns the ``tela run`` options and
those variables into a :class:`NodeLaunch`; :func:`tela_core.train.launch.launcher_command` turns that
into one ``torchrun`` per node. Order of precedence, per setting (first one set wins):

============  ===========================================================================
setting       sources
============  ===========================================================================
nnodes        ``--nnodes``, ``PET_NNODES``, ``SLURM_NNODES``/``SLURM_JOB_NUM_NODES``,
              ``NNODES``, ``WORLD_SIZE`` (PyTorchJob's one-process-per-pod form, only with
              ``MASTER_ADDR`` set), else 1
node rank     ``--node-rank``, ``PET_NODE_RANK``, ``SLURM_NODEID``, ``NODE_RANK``, ``RANK``
              (with ``WORLD_SIZE`` above), else 0
master addr   ``--master-addr``, ``PET_MASTER_ADDR``, ``MASTER_ADDR``, the first host of
              ``SLURM_JOB_NODELIST``/``SLURM_NODELIST``
master port   ``--master-port``, ``PET_MASTER_PORT``, ``MASTER_PORT``, else 29500
rendezvous    ``--rdzv-endpoint HOST:PORT``, ``PET_RDZV_ENDPOINT``: torchrun's elastic c10d
              rendezvous (ranks by arrival; no node rank needed); ``--rdzv-id``/``PET_RDZV_ID``,
              ``SLURM_JOB_ID``, else ``tela``
============  ===========================================================================

Heavy libraries are not imported here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from tela_core.infra.errors import TelaError
from tela_core.schema.launch import NodeLaunch

__all__ = ["NodeLaunch", "resolve_nodes", "first_slurm_host", "DEFAULT_MASTER_PORT"]

DEFAULT_MASTER_PORT = 29500


_SLURM_LIST = re.compile(r"^([^\[,]+)(?:\[([^\]]+)\])?")


def first_slurm_host(nodelist: str) -> str | None:
    """The first host of a Slurm node list: ``gpu[03-05,09],cpu1`` -> ``gpu03`` (as
    ``scontrol show hostnames`` would list it first), ``a1,a2`` -> ``a1``."""
    m = _SLURM_LIST.match(nodelist.strip())
    if not m:
        return None
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TelaError(f"{name}={value!r}: expected an integer") from None


def resolve_nodes(
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> NodeLaunch:
    """This node's :class:`NodeLaunch` from the options given (None: not given) and ``env``
    (default ``os.environ``); precedence in the module doc. Raises :class:`TelaError` for a
    multi-node run that has no master address or rendezvous endpoint, or a node rank out of range.
    """
    env = os.environ if env is None else env
    origin: dict[str, str] = {}

    def pick(flag: str, value: Any, *names: str) -> Any:
        if value is not None:
            origin[flag.strip("-").replace("-", "_")] = flag
            return value
        for n in names:
            if env.get(n, "").strip():
                origin[flag.strip("-").replace("-", "_")] = n
                return env[n].strip()
        return None

    # PyTorchJob without torchrun gives each pod WORLD_SIZE = pods and RANK = pod index; those names
    # also mean "processes" inside a launched job, so they count only beside a MASTER_ADDR.
    pod_form = bool(env.get("WORLD_SIZE") and env.get("MASTER_ADDR")) and not env.get("LOCAL_RANK")
    n = pick(
        "--nnodes",
        nnodes,
        "PET_NNODES",
        "SLURM_NNODES",
        "SLURM_JOB_NUM_NODES",
        "NNODES",
        *(["WORLD_SIZE"] if pod_form else []),
    )
    if isinstance(n, str):  # torchrun's elastic MIN:MAX form counts MAX nodes
        n_int = _int(n.split(":")[-1], origin["nnodes"])
    else:
        n_int = 1 if n is None else int(n)
    if n_int < 1:
        raise TelaError(f"--nnodes must be at least 1, got {n_int}")
    if n_int == 1:
        return NodeLaunch(origin=tuple(origin.items()))

    r = pick("--node-rank", node_rank, "PET_NODE_RANK", "SLURM_NODEID", "NODE_RANK", *(["RANK"] if pod_form else []))
    rank = 0 if r is None else (_int(r, origin["node_rank"]) if isinstance(r, str) else int(r))
    endpoint = pick("--rdzv-endpoint", rdzv_endpoint, "PET_RDZV_ENDPOINT")
    addr = pick("--master-addr", master_addr, "PET_MASTER_ADDR", "MASTER_ADDR")
    if addr is None and not endpoint:
        for name in ("SLURM_JOB_NODELIST", "SLURM_NODELIST"):
            if env.get(name):
                addr = first_slurm_host(env[name])
                if addr:
                    origin["master_addr"] = name
                    break
    port = pick("--master-port", master_port, "PET_MASTER_PORT", "MASTER_PORT")
    port_int = (
        DEFAULT_MASTER_PORT
        if port is None
        else (_int(port, origin["master_port"]) if isinstance(port, str) else int(port))
    )
    if not 0 < port_int < 65536:
        raise TelaError(f"--master-port must be in 1..65535, got {port_int}")
    if not endpoint and not addr:
        raise TelaError(
            f"a {n_int}-node run needs the address of node 0: pass --master-addr HOST (and the same "
            "--master-port on every node) or --rdzv-endpoint HOST:PORT, or set MASTER_ADDR"
        )
    if not endpoint and not 0 <= rank < n_int:
        raise TelaError(f"--node-rank must be in 0..{n_int - 1} for --nnodes {n_int}, got {rank}")
    rid = None
    if endpoint:
        rid = pick("--rdzv-id", rdzv_id, "PET_RDZV_ID", "SLURM_JOB_ID") or "tela"
    return NodeLaunch(
        nnodes=n_int,
        node_rank=rank,
        master_addr=addr,
        master_port=port_int,
        rdzv_endpoint=endpoint,
        rdzv_id=rid,
        origin=tuple(origin.items()),
    )
