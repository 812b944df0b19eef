"""What a judge run will do, worked out before any call and any write: a :class:`JudgePlan`.

:func:`plan_judging` reads the answers file, picks the pair (the answers' first and last model
unless named; over N models every model's answers are judged, the pair only naming the label's
models; over one model's answers, a judge that rates each answer alone rates them, and a pairwise
judge is refused), makes the judge (and the second judge of an agreement run) from the registry, pairs
each judge that calls a model with its judge model (resolved from ``NAME=URL#ID`` or an upstream of
``tela serve``'s config file, with ``--price`` prices), and turns the answers into each judge's
tasks, sampled when asked, on the same prompts for both judges. Bad input raises a
:class:`~tela_core.infra.errors.TelaError` naming it; nothing is called or written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.collect.endpoints import parse_price, resolve_models
from tela_core.collect.inputs import PromptRow, model_named, read_answers
from tela_core.data.sampling import subsample
from tela_core.infra.errors import InputError, TelaError

from .run import JudgeTask, judge_tasks

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Judge
    from tela_core.upstreams.config import UpstreamConfig

__all__ = ["JudgePlan", "plan_judging", "rates_alone", "read_join", "join_record", "ROLES"]

#: the judges of a run: ``judge`` makes the records; ``agreement`` is the second judge it is compared with
ROLES = ("judge", "agreement")
_FLAG = {"judge": "--judge-model", "agreement": "--agreement-model"}


@dataclass
class JudgePlan:
    """A judge run, planned: the answers, the pair, the judges with the judge model each calls, and
    each judge's tasks. Built by :func:`plan_judging`; run by :class:`~tela_core.judging.job.JudgeJob`."""

    answers: Path
    """The answers file (or ``tela collect``'s output folder) read."""
    rows: list[PromptRow]
    weak: str
    strong: str
    judges: dict[str, Judge]
    """role (``judge``, and ``agreement`` when asked) -> the judge."""
    endpoint_of: dict[str, str | None]
    """role -> the name of the judge model it calls (None: it calls none)."""
    upstreams: dict[str, tuple[UpstreamConfig, str]]
    """The judge models by name, resolved (with prices), and where each was defined."""
    tasks: dict[str, list[JudgeTask]]
    """role -> the prompts it judges (after ``sample``; both judges on the same prompts)."""
    skipped: dict[str, dict[str, int]]
    """role -> prompts left out, by reason."""
    models: list[str] = field(default_factory=list)
    """Every model of the answers file, cheap -> strong as collected: each one's answers are judged
    (over N models a prompt's record has the outcomes of the models it has answers from)."""
    joined: dict[str, dict[str, Any]] | None = None
    """``--join``: prompt id -> the record of an earlier judge run whose other models' outcomes and
    costs each record of this run carries (see :func:`read_join`); None without one."""
    started: float = field(default_factory=time.monotonic)

    @property
    def shown(self) -> dict[str, str]:
        """Each judge as the user named it: the plugin and the judge model it calls."""
        return {
            role: j.name + (f" ({self.endpoint_of[role]})" if self.endpoint_of.get(role) else "")
            for role, j in self.judges.items()
        }


def rates_alone(judge: Any) -> bool:
    """Whether ``judge`` rates each answer on its own (its class says ``rates_alone = True``), so it
    can judge one model's answers alone; a judge that compares two answers (``pairwise``) cannot."""
    return getattr(judge, "rates_alone", False) is True


def _alone_names() -> list[str]:
    """The registered judges that rate each answer on its own."""
    from tela_core.plugins import get_registry

    reg = get_registry()
    return [n for n in reg.names("judge") if rates_alone(reg.get("judge", n))]


def _pair(
    models: Sequence[str], weak: str | None, strong: str | None, where: Path, judges: Mapping[str, Judge]
) -> tuple[str, str]:
    """The pair (weak, strong); over one model's answers, that model twice, for judges that rate
    each answer alone (the records then carry that model's outcomes and no label)."""
    for flag, m in (("--weak-model", weak), ("--strong-model", strong)):
        if m is not None and m not in models:
            raise TelaError(f"{flag} {m!r}: no such model in {where}; models: {', '.join(models)}")
    if len(models) < 2 and (weak is None or strong is None):
        pairwise = [j.name for j in judges.values() if not rates_alone(j)]
        if pairwise:
            raise TelaError(
                f"{where}: answers from one model only ({', '.join(models)}), and judge {pairwise[0]!r} compares two "
                f"models' answers; to rate one model's answers use a judge that rates each alone: "
                f"{', '.join(_alone_names()) or '(none registered)'}"
            )
        return models[0], models[0]
    w = weak if weak is not None else models[0]
    s = strong if strong is not None else models[-1]
    if w == s:
        raise TelaError(f"the weak and the strong model are both {w!r}; name two models of {', '.join(models)}")
    return w, s


def _judge_models(
    judges: Mapping[str, Judge],
    given: Mapping[str, str | None],
    config_file: Any,
    prices: Sequence[str],
    timeout_s: float | None,
) -> tuple[dict[str, tuple[UpstreamConfig, str]], dict[str, str | None]]:
    """The judge models the judges call, resolved and priced, and the one each role calls;
    ``given`` is the judge model named for each role (the second judge's defaults to the first's)."""
    specs = {
        "judge": given["judge"],
        "agreement": given["agreement"] if given["agreement"] is not None else given["judge"],
    }
    wanted: dict[str, str] = {}
    for role, j in judges.items():
        if j.needs_upstream and specs[role] is None:
            raise TelaError(
                f"judge {j.name!r} calls a judge model: give {_FLAG[role]} NAME=URL#ID "
                f"(or --config FILE {_FLAG[role]} NAME)"
            )
        if not j.needs_upstream and given[role] is not None:
            raise TelaError(f"judge {j.name!r} calls no model; it does not take {_FLAG[role]}")
        if j.needs_upstream:
            wanted[role] = str(specs[role])
    resolved: dict[str, tuple[Any, str]] = {}
    endpoint_of: dict[str, str | None] = {"judge": None, "agreement": None}
    for role, spec in wanted.items():
        one = resolve_models([spec], config_file, (), flag=_FLAG[role], timeout_s=timeout_s)
        name, cfg = next(iter(one.items()))
        if name in resolved and resolved[name][0] != cfg[0]:
            raise TelaError(
                f"{_FLAG[role]}: two different judge models are named {name!r}; name them apart (NAME=URL#ID)"
            )
        resolved[name] = cfg
        endpoint_of[role] = name
    for item in prices:
        name, p = parse_price(item)
        if name not in resolved:
            raise TelaError(
                f"--price {item!r}: no judge model named {name!r}; judge models: {', '.join(resolved) or '(none)'}"
            )
        up, src = resolved[name]
        resolved[name] = (up.model_copy(update={"price_input": p.input, "price_output": p.output}), src)
    return resolved, endpoint_of


def read_join(path: str | Path, rows: Sequence[PromptRow]) -> dict[str, dict[str, Any]]:
    """The records of an earlier judge run (its ``records.jsonl``, or the folder holding it), by
    prompt id, for :func:`join_record`. A record without an id, or whose prompt differs from the
    answers' prompt of that id, is an :class:`InputError` naming the file and line; so is a file
    none of whose records is a prompt of the answers (nothing would be joined)."""
    from tela_core.data.records import validate_seed_object

    p = Path(path)
    if p.is_dir():
        p = p / "records.jsonl"
    if not p.is_file():
        raise InputError(p, None, "--join: no such records file (an earlier tela judge run's records.jsonl)")
    prompts = {r.id: r.prompt for r in rows}
    out: dict[str, dict[str, Any]] = {}
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise InputError(p, n, f"not JSON: {e}") from None
            rec = validate_seed_object(obj, p, n, require_label=False)
            if rec.id is None:
                raise InputError(p, n, 'a record without an "id": --join matches records by prompt id')
            if rec.id in prompts and prompts[rec.id] != rec.prompt:
                raise InputError(p, n, f"the prompt of id {rec.id!r} is not the answers' prompt of that id")
            out[rec.id] = obj
    if prompts and not prompts.keys() & out.keys():
        raise InputError(
            p,
            None,
            f"--join: none of its {len(out)} records is a prompt of these answers (matched by prompt id): "
            "join the records judged on the prompts these answers are to",
        )
    return out


def join_record(rec: dict[str, Any], joined: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """``rec`` with the outcomes and costs of the other models of its prompt's record in ``joined``
    (this run's outcomes win); the earlier record's label and messages are kept (they label its pair)."""
    base = joined.get(str(rec.get("id"))) if joined else None
    if base is None:
        return rec
    out = dict(base)
    for key in ("outcomes", "costs"):
        merged = {**(base.get(key) or {}), **(rec.get(key) or {})}
        out[key] = merged or None
    return out


def plan_judging(
    answers: str | Path,
    judge: str,
    *,
    options: Mapping[str, Any] | None = None,
    judge_model: str | None = None,
    agreement: str | None = None,
    agreement_options: Mapping[str, Any] | None = None,
    agreement_model: str | None = None,
    weak_model: str | None = None,
    strong_model: str | None = None,
    config_file: str | Path | None = None,
    prices: Sequence[str] = (),
    sample: int | None = None,
    timeout_s: float | None = None,
    join: str | Path | None = None,
) -> JudgePlan:
    """Plan judging ``answers`` (``tela collect``'s answers file or folder) with the registered judge
    ``judge`` and its ``options``; ``agreement`` names a second judge run on the same prompts.

    ``judge_model`` (and ``agreement_model``, which defaults to it) is ``NAME=URL#ID``, or an
    upstream ``NAME`` of ``config_file``; ``prices`` are ``NAME=IN,OUT`` (dollars per million
    tokens). ``weak_model``/``strong_model`` name the pair (by model id or the upstream name it was
    collected through); ``sample`` judges that many prompts drawn with seed 42. ``join`` names an
    earlier judge run's records (a new model's answers judged alone, joined with the models judged
    before): each record written carries their other models' outcomes and costs.
    """
    from tela_core.plugins import get_registry

    where = Path(answers)
    rows, models = read_answers(where)
    # a model is named by its id; the upstream name it was collected through is taken too
    reg = get_registry()
    judges: dict[str, Judge] = {"judge": reg.create("judge", judge, dict(options or {}))}
    if agreement is not None:
        judges["agreement"] = reg.create("judge", agreement, dict(agreement_options or {}))
    named = (model_named(weak_model, rows, models), model_named(strong_model, rows, models))
    weak, strong = _pair(models, *named, where, judges)
    joined = read_join(join, rows) if join is not None else None
    upstreams, endpoint_of = _judge_models(
        judges, {"judge": judge_model, "agreement": agreement_model}, config_file, prices, timeout_s
    )

    tasks: dict[str, list[JudgeTask]] = {}
    skipped: dict[str, dict[str, int]] = {}
    for role, j in judges.items():
        ep = endpoint_of[role]
        model_id = (upstreams[ep][0].model or ep) if ep else None  # the id the judge model is called by
        found, skip = judge_tasks(rows, j, role, ep, model_id, weak, strong, models)
        if not found:
            if j.needs_reference and skip.get("no reference answer"):
                raise TelaError(
                    f"judge {j.name!r} grades against reference answers, and no prompt of {where} with both "
                    f'answers has one (give tela collect prompts with a "reference")'
                )
            if len(models) > 2:
                raise TelaError(f"{where}: no prompt has answers judge {j.name!r} can judge")
            if weak == strong:
                raise TelaError(f"{where}: no prompt has an answer from {weak} to judge")
            raise TelaError(f"{where}: no prompt has answers from both {weak} and {strong} to judge")
        tasks[role], skipped[role] = found, skip
    if sample is not None:
        keep = {t.row.id for t in subsample(tasks["judge"], sample)}
        tasks = {role: [t for t in ts if t.row.id in keep] for role, ts in tasks.items()}
    if "agreement" in tasks:  # both judges on the same prompts
        common = {t.row.id for t in tasks["judge"]} & {t.row.id for t in tasks["agreement"]}
        tasks = {role: [t for t in ts if t.row.id in common] for role, ts in tasks.items()}
    return JudgePlan(
        answers=where,
        rows=rows,
        weak=weak,
        strong=strong,
        judges=judges,
        endpoint_of=endpoint_of,
        upstreams=upstreams,
        tasks=tasks,
        skipped=skipped,
        models=list(models),
        joined=joined,
    )
