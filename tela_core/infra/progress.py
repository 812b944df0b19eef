"""Rich progress bars for long work, shown only where a person is watching.

Long steps (embedding thousands of prompts, running a causal LM over them, scoring an eval set)
report through :func:`progress_bar`. It draws a transient rich bar on stderr when stderr is a
terminal (or when asked to), and is a no-op otherwise, so logs and tests stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["make_progress", "progress_bar"]


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def advance(self, *a: Any, **k: Any) -> None:
        return None

    def update(self, *a: Any, **k: Any) -> None:
        return None


def make_progress(enabled: bool | None = None) -> Any:
    """A rich ``Progress`` (elapsed and remaining time, n of total) or a no-op with its methods.

    ``enabled=None`` means "when stderr is a terminal".
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@contextmanager
def progress_bar(
    description: str, total: int, enabled: bool | None = None, log_every: float = 30.0
) -> Iterator[Callable[[int, int], None]]:
    """Yield ``report(done, total)``, the callback shape :func:`tela_core.models.vector_cache.embed` takes.

    On a terminal (``enabled=None``) a rich bar. Elsewhere (a log, a notebook, a CI job), long work
    is not silent either: one plain line on stderr every ``log_every`` seconds once it has run
    that long (``DESCRIPTION: 2,048/10,903 (19%), 1 min 2 s, about 4 min left``); work that ends
    sooner prints nothing, so short commands and tests stay quiet. ``enabled=False``: nothing.
    """
    if enabled is None and not sys.stderr.isatty() and log_every > 0:
        with _log_progress(description, total, log_every) as report:
            yield report
        return
    bar = make_progress(enabled)
    with bar:
        task = bar.add_task(description, total=total)

        def report(done: int, total_now: int) -> None:
            bar.update(task, completed=done, total=total_now)

        yield report


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


@contextmanager
def _log_progress(description: str, total: int, every: float) -> Iterator[Callable[[int, int], None]]:
    import time

    start = time.monotonic()
    last = {"at": start}

    def report(done: int, total_now: int) -> None:
        now = time.monotonic()
        if now - last["at"] < every or total_now <= 0:
            return
        last["at"] = now
        took = now - start
        left = f", about {_duration(took * (total_now - done) / done)} left" if 0 < done < total_now else ""
        print(
            f"{description}: {done:,}/{total_now:,} ({100 * done // total_now}%), {_duration(took)}{left}",
            file=sys.stderr,
            flush=True,
        )

    yield report
