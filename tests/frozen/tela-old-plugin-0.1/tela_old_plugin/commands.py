"""``tela old-length QUESTION``: a command added to the ``tela`` command line."""

from __future__ import annotations

from typing import Any

import click


def add_commands(cli: Any) -> None:
    @cli.command("old-length")
    @click.argument("question")
    def length(question: str) -> None:
        """Print the length of QUESTION in characters."""
        click.echo(len(question))
