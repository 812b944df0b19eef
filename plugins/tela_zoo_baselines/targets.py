"""Training targets shared by the zoo's families: what "the strong model is needed" means.

A family learns w = P(strong model needed) from records. Outcome records carry per-model quality
(``Record.outcomes``); seed records carry a 1..5 judge label (``Record.label``). The ``target``
option picks the reading:

- ``weak-wrong`` (default): 1 when the weak model's outcome is below 0.5. RouteLLM's binary label.
- ``gain``: strong outcome − weak outcome in [−1, 1], mapped to [0, 1] as (gain + 1) / 2. It is the
  oracle's own ordering: prompts where only the weak model is right are pushed *down*, and prompts
  that both models fail (strong buys nothing) sit in the middle.
- ``label``: 1 when the judge label is 1..3 (the weak answer is not good enough), the seed's
  reading w = 1 − P([[4]]) − P([[5]]).

The weak and strong models are the ``weak``/``strong`` options when given; otherwise, with exactly
two models in the outcomes, the one with the higher mean outcome on the training records is strong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from tela_core.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.records import Record

__all__ = ["Target", "TARGETS", "resolve_pair", "make_targets", "model_names", "outcome_matrix"]

Target = Literal["weak-wrong", "gain", "label"]
TARGETS: tuple[str, ...] = ("weak-wrong", "gain", "label")


@dataclass(frozen=True)
class Pair:
    """The weak (cheap) and strong model names a two-model router chooses between."""

    weak: str
    strong: str


def model_names(records: Sequence["Record"]) -> list[str]:
    """Models present in every record's outcomes, in first-seen order."""
    names: list[str] | None = None
    for r in records:
        if not r.outcomes:
            continue
        if names is None:
            names = list(r.outcomes)
        else:
            names = [n for n in names if n in r.outcomes]
    return names or []


def outcome_matrix(records: Sequence["Record"], models: Sequence[str]) -> "np.ndarray":
    """(n, m) float array of outcomes; a clear error naming the first record without them."""
    import numpy as np

    out = np.zeros((len(records), len(models)), dtype=np.float64)
    for i, r in enumerate(records):
        if not r.outcomes:
            raise TelaError(f"record {r.id or i}: no outcomes; this target needs outcome data (e.g. the routellm-csv source)")
        for j, m in enumerate(models):
            if m not in r.outcomes:
                raise TelaError(f"record {r.id or i}: no outcome for model {m!r}; it has {sorted(r.outcomes)}")
            out[i, j] = float(r.outcomes[m])
    return out


def resolve_pair(records: Sequence["Record"], weak: str | None, strong: str | None) -> Pair:
    """The weak/strong pair from options, or inferred from two-model outcomes."""
    names = model_names(records)
    if weak and strong:
        for n in (weak, strong):
            if names and n not in names:
                raise TelaError(f"model {n!r} is not in the outcomes; models: {', '.join(names)}")
        return Pair(weak, strong)
    if len(names) != 2:
        raise TelaError(
            f"cannot tell weak from strong among {len(names)} models ({', '.join(names) or 'none'}); "
            "set the family options weak=... and strong=..."
        )
    acc = outcome_matrix(records, names).mean(axis=0)
    s = int(acc.argmax())
    pair = Pair(weak=names[1 - s], strong=names[s])
    if weak and weak != pair.weak or strong and strong != pair.strong:
        raise TelaError(f"weak/strong options ({weak}, {strong}) do not match the outcomes' models {names}")
    return pair


def make_targets(records: Sequence["Record"], target: str, weak: str | None = None, strong: str | None = None) -> tuple["np.ndarray", dict[str, Any]]:
    """Per-record training target in [0, 1] and the facts to store in the manifest."""
    import numpy as np

    if target not in TARGETS:
        raise TelaError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if not records:
        raise TelaError("no training records")
    if target == "label":
        missing = [i for i, r in enumerate(records) if r.label is None]
        if missing:
            raise TelaError(f"record {records[missing[0]].id or missing[0]}: target 'label' needs a 1..5 label")
        y = np.array([1.0 if (r.label or 5) <= 3 else 0.0 for r in records])
        return y, {"target": target}
    pair = resolve_pair(records, weak, strong)
    o = outcome_matrix(records, [pair.weak, pair.strong])
    if target == "weak-wrong":
        y = (o[:, 0] < 0.5).astype(np.float64)
    else:
        y = (o[:, 1] - o[:, 0] + 1.0) / 2.0
    return y, {"target": target, "weak": pair.weak, "strong": pair.strong}


def option_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The target-related options, for the manifest."""
    return {k: options.get(k) for k in ("target", "weak", "strong")}
