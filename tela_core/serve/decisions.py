"""The decision log: one JSON line per request ``tela serve`` answered, and calibration from it.

A line holds the time, request id, router, score ``w``, threshold, the model routing chose and
the model that answered (they differ after a fallback), the upstream's status and latency, token
counts and the estimated cost; the routed text only when the server runs with ``--log-prompts``.
Each line is written with one ``write`` to a file opened for appending, so the lines of several
worker processes never interleave, and a reader never sees half a line except the last one of a
killed server (which :func:`read_decisions` skips).

:func:`calibrate_from_traffic` sets a router's threshold from the scores of the user's own
traffic (``tela calibrate --traffic LOG --strong-share P``), not from a benchmark's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tela_core.infra.errors import InputError, TelaError
from tela_core.infra.io import json_line_bytes
from tela_core.infra.logfile import AppendLog, read_log
from tela_core.routing.calibration import calibrate_on_traffic

__all__ = ["DecisionLog", "read_decisions", "traffic_scores", "calibrate_from_traffic"]


class DecisionLog:
    """Append-only JSONL writer (one ``os.write`` per line) that follows rotation: a log moved
    away or deleted is opened again at its path before the next line (:class:`tela_core.infra.logfile.AppendLog`),
    and :meth:`reopen` (SIGHUP) opens it again on demand."""

    def __init__(self, path: str | Path, log_prompts: bool = False) -> None:
        self.path = Path(path)
        self.log_prompts = bool(log_prompts)
        self._file = AppendLog(self.path, "decision log")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one line; raises :class:`OSError` when it could not be written (a full disk)."""
        line = json_line_bytes(record, default=str)  # strict JSON, one line for every reader (infra.io)
        self._file.write(line)

    def reopen(self) -> None:
        self._file.reopen()

    def close(self) -> None:
        self._file.close()


def read_decisions(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line of a decision log. A bad line raises
    :class:`InputError` naming the line, except a truncated last line (a killed server's)."""
    yield from read_log(path, "decision log")


def traffic_scores(path: str | Path, router: str | None = None) -> tuple[list[float], str]:
    """The ``w`` of every freshly routed request in the log for ``router`` (a served router's
    name), and the router name used. Passed-through requests, and sticky follow-up turns (routed
    on an earlier turn) are left out. With ``router`` None the log must hold one router only."""
    by_router: dict[str, list[float]] = {}
    for _lineno, rec in read_decisions(path):
        name, w = rec.get("router"), rec.get("w")
        if not isinstance(name, str) or not isinstance(w, (int, float)) or rec.get("sticky"):
            continue
        by_router.setdefault(name, []).append(float(w))
    if not by_router:
        raise InputError(path, None, "no routed requests in this decision log")
    if router is None:
        if len(by_router) > 1:
            raise TelaError(
                f"{path}: the log holds several routers ({', '.join(sorted(by_router))}); pick one with "
                "--traffic-router NAME"
            )
        router = next(iter(by_router))
    if router not in by_router:
        raise TelaError(f"{path}: no requests routed by {router!r}; routers in the log: {', '.join(sorted(by_router))}")
    return by_router[router], router


def calibrate_from_traffic(
    router_dir: str | Path,
    log: str | Path,
    strong_share: float,
    router_name: str | None = None,
    policy: str = "calibrated",
    policy_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Set ``router_dir``'s threshold so ``strong_share`` of the logged traffic would go to the
    strong model, and save it as the router's ``policy`` (default ``calibrated``). Returns what
    was saved and from how many requests.

    Kept for callers of 0.1/0.2.0.dev: it is :func:`tela_core.routing.calibration.calibrate_on_traffic`
    (logged prompts rescored by this router, a log of another router version refused, a shadow log
    refused), which ``tela calibrate --traffic`` calls.
    """
    return calibrate_on_traffic(
        router_dir, log, strong_share, router_name=router_name, policy=policy, policy_options=policy_options
    )
