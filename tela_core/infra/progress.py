"""Rich progress bars for long work, shown only where a person is watching.

Long steps (embedding thousands of prompts, running a causal LM over them, scoring an eval set)
report through :func:`progress_bar`. It draws a transient rich bar on stderr when stderr is a
terminal (or when asked to), and is a no-op otherwise, so logs and tests stay clean.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["make_progress", "progress_bar"]


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
def progress_bar(description: str, total: int, enabled: bool | None = None) -> Iterator[Callable[[int, int], None]]:
    """Yield ``report(done, total)``, the callback shape :func:`tela_core.models.embeddings.embed` takes."""
    bar = make_progress(enabled)
    with bar:
        task = bar.add_task(description, total=total)

        def report(done: int, total_now: int) -> None:
            bar.update(task, completed=done, total=total_now)

        yield report
