"""Placeholder: commands of this module are not built yet."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this module's commands to ``cli``."""
