"""Every option of every registered component says what it does: `tela plugins show` prints the
description, and a plugin author reads them as the component's contract. A choice is a Literal,
so a typo is refused with the allowed values instead of being carried into a run."""

from __future__ import annotations

import typing

from tela_core import get_registry
from tela_core.plugins.registry import KINDS


def components():
    reg = get_registry()
    for kind in KINDS:
        for name in reg.names(kind):
            yield kind, name, reg.get(kind, name)


def test_every_option_has_a_description() -> None:
    missing = [
        f"{kind} {name}: {field}"
        for kind, name, cls in components()
        for field, info in cls.Options.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert not missing, "options without a description:\n" + "\n".join(missing)


def test_choices_are_literals_not_free_text() -> None:
    """A str option whose description lists its choices ("a | b | c") must be a Literal."""
    loose = [
        f"{kind} {name}: {field}"
        for kind, name, cls in components()
        for field, info in cls.Options.model_fields.items()
        if info.annotation is str and " | " in (info.description or "")
    ]
    assert not loose, "choices typed as str:\n" + "\n".join(loose)


def test_the_checks_see_the_builtin_components() -> None:
    kinds = {kind for kind, _, _ in components()}
    assert {"source", "formatter", "backend", "family", "policy"} <= kinds
    assert any(
        typing.get_origin(info.annotation) is typing.Literal
        for _, _, cls in components()
        for info in cls.Options.model_fields.values()
    )
