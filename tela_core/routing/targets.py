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

The weak and strong models follow :func:`resolve_pair`, the one rule every command and family uses.
This module is part of the family SDK: a third-party family calls :func:`make_targets` too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.schema.records import Record

__all__ = [
    "Target",
    "TARGETS",
    "NAME_THE_PAIR",
    "resolve_pair",
    "make_targets",
    "model_names",
    "all_model_names",
    "model_groups",
    "outcome_matrix",
    "outcome_values",
]

Target = Literal["weak-wrong", "gain", "label"]
TARGETS: tuple[str, ...] = ("weak-wrong", "gain", "label")


def model_names(records: Sequence[Record]) -> list[str]:
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


def all_model_names(records: Sequence[Record]) -> list[str]:
    """Every model any record has an outcome for, in first-seen order (N-model records may lack
    some models' outcomes: a judge asked only some of them)."""
    names: dict[str, None] = {}
    for r in records:
        for m in r.outcomes or {}:
            names.setdefault(m, None)
    return list(names)


def outcome_values(records: Sequence[Record], models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(values, observed)``: (n, m) outcomes (0 where missing) and the (n, m) boolean mask of the
    outcomes the records have. Missing outcomes are valid N-model training data: families that
    predict every model's quality leave them out of their loss or their average."""
    import numpy as np

    values = np.zeros((len(records), len(models)), dtype=np.float64)
    observed = np.zeros((len(records), len(models)), dtype=bool)
    col = {m: j for j, m in enumerate(models)}
    for i, r in enumerate(records):
        for m, v in (r.outcomes or {}).items():
            j = col.get(m)
            if j is not None:
                values[i, j] = float(v)
                observed[i, j] = True
    return values, observed


def outcome_matrix(records: Sequence[Record], models: Sequence[str]) -> np.ndarray:
    """(n, m) float array of outcomes; a clear error naming the first record without them."""
    import numpy as np

    out = np.zeros((len(records), len(models)), dtype=np.float64)
    for i, r in enumerate(records):
        if not r.outcomes:
            raise TelaError(
                f"record {r.id or i}: no outcomes; this target needs outcome data (e.g. the routellm-csv source)"
            )
        for j, m in enumerate(models):
            if m not in r.outcomes:
                raise TelaError(f"record {r.id or i}: no outcome for model {m!r}; it has {sorted(r.outcomes)}")
            out[i, j] = float(r.outcomes[m])
    return out


#: how to name the pair, where the caller does not say (``tela eval``, ``tela zoo``, the families)
NAME_THE_PAIR = "pass --weak-model and --strong-model (family options weak=... and strong=...)"


def resolve_pair(
    records: Sequence[Record],
    weak: str | None = None,
    strong: str | None = None,
    source: Any = None,
    how: str = NAME_THE_PAIR,
) -> tuple[str, str]:
    """The (weak, strong) models a two-model router chooses between; the one rule that `tela run`,
    `tela eval`, `tela zoo` and every family follow.

    The names given win; else the source's own pair (its ``weak_model``/``strong_model`` options,
    e.g. RouteLLM's Mixtral/GPT-4); else, with exactly two models in the outcomes, the one with the
    lower mean outcome is weak. Equal means, more than two models, or a name that is not in the
    outcomes are errors that say how to name the pair (``how``: the caller's way, e.g. ``tela run``'s
    model map ``--set source.models.weak=NAME``). Records whose outcomes name no model in common
    (two datasets of different models in one file) are an error that lists each set of models.
    """
    names = model_names(records)
    opts = getattr(source, "options", None)
    weak = weak or getattr(opts, "weak_model", None)
    strong = strong or getattr(opts, "strong_model", None)
    if not names:
        if any(r.outcomes for r in records):
            raise TelaError(f"the records name no model in common ({model_groups(records)}); {how}")
        raise TelaError("the data has no per-model outcomes; routing quality needs outcome data (e.g. RouteLLM CSVs)")
    for role, m in (("weak", weak), ("strong", strong)):
        if m and m not in names:
            hint = f"(--{role}-model)" if how == NAME_THE_PAIR else f"({how})"
            gaps = _gaps(records, [m])
            if gaps:  # in the data, but not in every record: saying "not in the outcomes" would be false
                raise TelaError(  # no name map fixes records that lack the model's outcome: say what does
                    f"{role} model {gaps}; models in every record: {', '.join(names)} (those records lack "
                    f"its outcome, e.g. users' verdicts from tela feedback on requests nobody judged, which "
                    f"score one model only: a router between two models needs both; drop those records)"
                )
            raise TelaError(f"{role} model {m!r} is not in the outcomes; models: {', '.join(names)} {hint}")
    if not (weak and strong):
        if len(names) == 1 and all(len(r.outcomes) == 1 for r in records if r.outcomes):
            raise TelaError(
                f"the data scores one model only ({names[0]}): a router between two models needs both models' "
                "outcomes; judge every model's answer (tela judge --judge llm-judge --set judge.rate=all), "
                "or train on the judge's 1..5 label alone (tela run --set family.target=label)"
            )
        if len(names) != 2:
            gaps = _gaps(records, [])
            raise TelaError(
                f"cannot tell weak from strong among {len(names)} models ({', '.join(names)})"
                + (f"; {gaps}" if gaps else "")
                + f"; {how}"
            )
        if weak or strong:
            weak, strong = (
                (weak, next(n for n in names if n != weak)) if weak else (next(n for n in names if n != strong), strong)
            )
        else:
            mean = outcome_matrix(records, names).mean(axis=0)
            if mean[0] == mean[1]:
                raise TelaError(
                    f"{names[0]} and {names[1]} have the same mean outcome ({mean[0]:.4f}); say which is weak: {how}"
                )
            weak, strong = (names[0], names[1]) if mean[0] < mean[1] else (names[1], names[0])
    if weak == strong:
        raise TelaError(f"weak and strong model are both {weak!r}")
    return weak, strong  # type: ignore[return-value]


def _gaps(records: Sequence[Record], models: Sequence[str], most: int = 2) -> str:
    """``"'b' has no outcome in 30 of 300 records (first: record q7)"`` for ``models`` (default: every
    model some records name and others lack), so an error about a pair says which records lack one."""
    scored = [r for r in records if r.outcomes]
    if not models:
        models = list(dict.fromkeys(m for r in scored for m in (r.outcomes or {})))
    parts = []
    for m in models:
        lacking = [i for i, r in enumerate(scored) if m not in (r.outcomes or {})]
        if lacking and len(lacking) < len(scored):
            first = scored[lacking[0]]
            parts.append(
                f"{m!r} has no outcome in {len(lacking)} of {len(scored)} records "
                f"(first: record {first.id or lacking[0] + 1})"
            )
    return "; ".join(parts[:most]) + (f"; {len(parts) - most} more such model(s)" if len(parts) > most else "")


def model_groups(records: Sequence[Record], most: int = 3) -> str:
    """``"400 records have a, b; 90 records have c, d"``: the sets of models the records' outcomes
    name, largest first, for an error that has to say why the records share no model."""
    from collections import Counter

    groups = Counter(tuple(sorted(r.outcomes)) for r in records if r.outcomes)
    parts = []
    for models, n in groups.most_common(most):
        shown = ", ".join(models[:6]) + (f", … ({len(models)} models)" if len(models) > 6 else "")
        parts.append(f"{n} record{'s' if n != 1 else ''} have {shown}")
    if len(groups) > most:
        parts.append(f"{len(groups) - most} more set(s) of models")
    return "; ".join(parts)


def make_targets(
    records: Sequence[Record], target: str, weak: str | None = None, strong: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
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
    w_name, s_name = resolve_pair(records, weak, strong)
    o = outcome_matrix(records, [w_name, s_name])
    if target == "weak-wrong":
        y = (o[:, 0] < 0.5).astype(np.float64)
    else:
        y = (o[:, 1] - o[:, 0] + 1.0) / 2.0
    return y, {"target": target, "weak": w_name, "strong": s_name}


def option_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The target-related options, for the manifest."""
    return {k: options.get(k) for k in ("target", "weak", "strong")}
