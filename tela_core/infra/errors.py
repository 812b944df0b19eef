"""Errors tela raises on purpose, each carrying a message fit to show a user as is.

The CLI turns every :class:`TelaError` into ``Error: <message>`` on stderr and exit code 2, so a
plugin that raises one of these gets the same clear report as the core.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "TelaError",
    "InputError",
    "NoRecordsError",
    "PairModelError",
    "UnknownComponentError",
    "DuplicateComponentError",
    "PluginLoadError",
    "UpstreamError",
    "JudgeOutputError",
]


def plural(kind: str) -> str:
    """``policy`` -> ``policies``, ``scorer`` -> ``scorers``: a component kind in a sentence."""
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


class TelaError(Exception):
    """Any user-facing failure: bad input, bad option, missing file. Exit code 2."""

    exit_code = 2


class InputError(TelaError):
    """A problem in an input file, located as ``FILE:LINE: what is wrong``.

    ``line`` is 1-based; ``None`` when the problem is with the file as a whole.
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class NoRecordsError(InputError):
    """An input with no records in it: the one wording every command uses for it."""

    def __init__(self, path: str | Path, why: str = "empty, or only blank lines") -> None:
        super().__init__(path, None, f"no records ({why})")


class PairModelError(InputError):
    """A source's weak or strong model (``role``) is not set, or not in its data (``problem`` says
    which). The message ends with how to name it, ``how``: ``--weak-model``/``--strong-model`` by
    default (``tela eval``, ``tela zoo``, ``tela data check``); a command that names the pair
    another way re-words it with :meth:`with_how` (``tela run``: ``--set sourceN.models.weak=NAME``)."""

    def __init__(self, path: str | Path, role: str, problem: str, how: str | None = None) -> None:
        self.role = role
        self.problem = problem
        self.how = how or f"--{role}-model"
        super().__init__(path, None, f"{problem} ({self.how})")

    def with_how(self, how: str) -> PairModelError:
        """The same error, saying ``how`` to name the model instead."""
        return PairModelError(self.path, self.role, self.problem, how)


class UnknownComponentError(TelaError):
    """A name asked for that no plugin registered; the message lists the registered ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; registered {plural(kind)}: {listed}")


class DuplicateComponentError(TelaError):
    """Two plugins registered the same kind and name; the message names both plugins."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind = kind
        self.name = name
        self.plugins = (first, second)
        super().__init__(
            f"{kind} {name!r} is registered by two plugins: {first!r} and {second!r}; "
            f"disable one with TELA_DISABLE_PLUGINS"
        )


class PluginLoadError(TelaError):
    """A plugin failed to import or to register; names the plugin and its distribution."""

    def __init__(self, plugin: str, dist: str | None, error: BaseException) -> None:
        self.plugin = plugin
        self.dist = dist
        self.error = error
        from_dist = f" (distribution {dist})" if dist else ""
        super().__init__(f"plugin {plugin!r}{from_dist} is broken: {type(error).__name__}: {error}")


class UpstreamError(Exception):
    """An upstream model endpoint failed: unreachable, timed out, or answered with a server error.

    Raised by :class:`tela_core.components.Upstream` clients; ``tela serve`` falls back to the other
    model once, then answers 502. ``reason`` is a short label for metrics (``timeout``,
    ``connect``, ``status``, ``protocol``); ``status`` is the upstream's HTTP status when it sent one.
    Not a :class:`TelaError`: it describes a live request, not a user's input.
    """

    def __init__(self, message: str, reason: str = "error", status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(message)


class JudgeOutputError(TelaError):
    """A judge model's reply that cannot be read as a verdict: no ``[[k]]``, two different ones, a
    value off the scale. ``tela judge`` asks again, then records the item as an error; a label is
    never guessed. ``reply`` is the judge's text; ``index`` which of the item's judge requests it
    answered (set by the judge when it knows), so only that call needs asking again.
    """

    def __init__(self, message: str, reply: str | None = None, index: int | None = None) -> None:
        self.reply = reply
        self.index = index
        super().__init__(message)


def config_parse_error(path: str | Path, kind: str, e: BaseException) -> str:
    """A YAML or TOML parser's error as ``FILE:LINE: not valid KIND: what (column C)``, one line:
    the parsers' own messages spread the place over several lines with a quoted ``<unicode
    string>`` and a caret, and TOML's hides the line at the end."""
    import re

    line = column = None
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)  # yaml.MarkedYAMLError
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
        what = getattr(e, "problem", None) or getattr(e, "context", None) or str(e)
    else:
        what = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", what)  # tomllib's message
        if m:
            line, column = int(m.group(1)), int(m.group(2))
            what = what[: m.start()]
    what = " ".join(str(what).split())
    where = f"{path}:{line}" if line is not None else f"{path}"
    return f"{where}: not valid {kind}: {what}" + (f" (column {column})" if column is not None else "")
