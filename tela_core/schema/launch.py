"""Where this node sits in a multi-node run (:class:`NodeLaunch`): plain data that a training job
(:class:`tela_core.components.TrainJob`), the launcher and launched scoring ranks pass along.
:func:`tela_core.train.multinode.resolve_nodes` makes one from the options and a scheduler's
variables; ``tela_core.train.multinode.NodeLaunch`` is this class."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NodeLaunch"]


@dataclass(frozen=True)
class NodeLaunch:
    """This node's place in the run. ``nnodes == 1`` is the ordinary single-node run."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    #: setting -> where it came from ("--nnodes", "SLURM_NNODES", ...), for the run's log line
    origin: tuple[tuple[str, str], ...] = ()

    @property
    def multi(self) -> bool:
        return self.nnodes > 1

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["origin"] = dict(self.origin)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> NodeLaunch:
        if not d:
            return cls()
        d = dict(d)
        d["origin"] = tuple(dict(d.get("origin") or {}).items())
        return cls(**d)

    def describe(self) -> str:
        """One line for the run's output, naming where each setting came from."""
        where = ", ".join(f"{k} from {v}" for k, v in self.origin)
        if self.rdzv_endpoint:
            core = f"node of {self.nnodes}, rendezvous {self.rdzv_endpoint} (id {self.rdzv_id})"
        else:
            core = f"node {self.node_rank} of {self.nnodes}, master {self.master_addr}:{self.master_port}"
        return core + (f" ({where})" if where else "")
