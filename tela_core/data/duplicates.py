"""Duplicate prompts whose records disagree: the same text labelled or scored two ways.

A router sees only the prompt, so two records with one prompt and different outcomes (or labels)
teach it both answers at once; a few are noise, many mean the data was merged from runs that do not
agree. Training and ``tela data check`` count them and warn, with the numbers, instead of silently
averaging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DuplicateReport", "find_duplicates"]


@dataclass(frozen=True)
class DuplicateReport:
    """``prompts``: texts that occur more than once; ``records``: the records holding them;
    ``conflicting``: the texts among them whose records differ in label or outcomes."""

    prompts: int
    records: int
    conflicting: int

    def warning(self) -> str | None:
        """A one-line warning when some duplicates conflict, else None."""
        if not self.conflicting:
            return None
        return (
            f"warning: {self.conflicting} prompt(s) occur more than once with conflicting labels or outcomes "
            f"({self.prompts} duplicated prompts in {self.records} records); a router cannot learn both "
            "answers: deduplicate the data or check how it was merged"
        )


def find_duplicates(records: Sequence[Any]) -> DuplicateReport:
    """Count duplicated and conflicting prompts among ``records`` (anything with ``prompt``,
    ``label`` and ``outcomes``).

    Records of one prompt conflict when two of them carry different labels, or different outcomes.
    A record that carries no outcomes (labels only, e.g. one source of a mix) conflicts with none
    on outcomes: it says nothing about them."""
    labels: dict[str, set[Any]] = {}
    outcomes: dict[str, set[tuple[Any, ...]]] = {}
    counts: dict[str, int] = {}
    for r in records:
        label = getattr(r, "label", None)
        if label is not None:
            labels.setdefault(r.prompt, set()).add(label)
        scored = getattr(r, "outcomes", None)
        if scored:
            outcomes.setdefault(r.prompt, set()).add(tuple(sorted(scored.items())))
        counts[r.prompt] = counts.get(r.prompt, 0) + 1
    dup = [p for p, n in counts.items() if n > 1]
    return DuplicateReport(
        prompts=len(dup),
        records=sum(counts[p] for p in dup),
        conflicting=sum(1 for p in dup if len(labels.get(p, ())) > 1 or len(outcomes.get(p, ())) > 1),
    )
