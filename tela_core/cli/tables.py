"""Tables for people at a terminal; plain full rows for pipes and scripts.

At a terminal, a command's table is a rich table fitted to the window. Piped or captured, rich
assumes 80 columns and wraps or cuts cells, so ``tela plugins list | grep NAME`` missed long names.
When stdout is not a terminal, every table command prints plain text instead: the table's title
(if it has one) on its own line, a header row, then one line per row, cells separated by a tab and
printed in full. ``grep``, ``cut -f`` and ``awk -F'\\t'`` read it; commands with ``--json`` also
offer that for scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["stdout_is_terminal", "plain_cell", "print_rows", "print_table"]


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal (not a pipe, a file or a test's capture)."""
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return False


def plain_cell(cell: Any) -> str:
    """A table cell as one line of plain text: rich markup removed, the cell's lines joined with
    ``", "``, tabs turned into spaces (a tab separates cells)."""
    from rich.text import Text

    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = Text.from_markup(cell).plain
    else:
        text = str(cell)
    return ", ".join(line.strip() for line in text.splitlines() if line.strip()).replace("\t", " ")


def print_rows(header: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """Print ``rows`` as tab-separated lines under a ``header`` line (and ``title`` above it).
    Cells are taken as they are (``str()``), not as rich markup; tabs and newlines inside a cell
    become spaces and ``", "``."""
    if title:
        click.echo(title)
    for row in [header, *rows]:
        click.echo("\t".join(", ".join(str(c).splitlines()).replace("\t", " ") for c in row))


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a rich ``table``: as it is at a terminal (on ``console``, default stdout), else as
    plain tab-separated rows with every cell in full."""
    if stdout_is_terminal():
        if console is None:
            from rich.console import Console

            console = Console()
        console.print(table)
        return
    columns = table.columns
    cells = [list(column.cells) for column in columns]
    title = plain_cell(table.title) if table.title else None
    print_rows(
        [plain_cell(c.header) for c in columns],
        ([plain_cell(col[i]) for col in cells] for i in range(table.row_count)),
        title,
    )
