"""What ``tela collect`` and ``tela judge`` share: the paid-call engine built from the shared flags,
the model check before any call, a loop that closes the upstream clients, the progress bar that
shows money spent, and how money and durations print. Command modules do not import each other;
both import this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tela_core.collect.store import SUMMARY_NAME

__all__ = [
    "SUMMARY_NAME",
    "make_engine",
    "check_models",
    "run_checked",
    "CallProgress",
    "money",
    "duration",
    "EXIT_MISSING",
    "EXIT_UNREADABLE",
    "EXIT_CODES_HELP",
    "exit_if",
]

#: exit code: the run ended, and answers (verdicts) are missing because calls failed after every retry
EXIT_MISSING = 3
#: exit code of tela judge: the judge model's first replies held no verdict it could read; it stopped asking
EXIT_UNREADABLE = 4
#: the exit codes, as both commands' help ends
EXIT_CODES_HELP = (
    "Exit codes: 0 done (also a stop at --max-cost: the summary says what was not asked); 2 bad input "
    "or option, or a key refused (401/403); 3 done, but some answers or verdicts ended in an error "
    "(rerun to ask them again), also when the run stopped at --max-cost too; 4 (tela judge) the judge "
    "model's first replies held no readable verdict, so it stopped asking; 130 stopped by Ctrl-C; 1 a bug."
)


def exit_if(code: int) -> None:
    """End the command with ``code`` (after its output was written and printed); 0 returns."""
    if code:
        import click

        click.get_current_context().exit(code)


def money(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:,.4f}" if x < 100 else f"${x:,.2f}"


def duration(s: float) -> str:
    s = int(round(s))
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
        if s >= 3600
        else f"{s // 60}m{s % 60:02d}s"
        if s >= 60
        else f"{s}s"
    )


def make_engine(models: Mapping[str, Any], flags: Mapping[str, Any], spent_before: float = 0.0) -> Any:
    """The :class:`~tela_core.collect.calls.Engine` for ``models`` (from ``resolve_models``) with the
    shared paid-call flags; ``--max-cost`` needs a price for every model."""
    from ..collect.endpoints import CallSettings
    from ..collect.endpoints import make_engine as engine_for

    return engine_for(models, CallSettings.from_flags(flags), spent_before)


def check_models(engine: Any, timeout_s: float) -> None:
    """Each model's upstream answers the check (reachable, key, model id) before any paid call."""
    from ..collect.endpoints import check_models as check

    check(engine, timeout_s)


def run_checked(engine: Any, body: Callable[[], Any]) -> Any:
    """Run the coroutine ``body()`` on a fresh loop and close the upstream clients after it."""
    from ..collect.endpoints import run_closing

    return run_closing(engine, body)


class CallProgress:
    """A rich progress bar with ETA (on a terminal), its description carrying the money spent."""

    def __init__(self, label: str, total: int, engine: Any) -> None:
        from ..infra.progress import make_progress

        self.label = label
        self.engine = engine
        self.bar = make_progress()
        self.task: Any = None
        self.total = total

    def __enter__(self) -> CallProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def advance(self, errors: int = 0) -> None:
        b = self.engine.budget
        spent = f" {money(b.spent_now)}" if any(ep.prices.known for ep in self.engine.endpoints.values()) else ""
        errs = f" ({errors} errors)" if errors else ""
        self.bar.update(self.task, advance=1, description=f"{self.label}{spent}{errs}")
