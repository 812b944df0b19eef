"""The family SDK: what a router family that trains itself needs, builtin or third-party.

A *family* is a :class:`~tela_core.components.Scorer` that trains through ``fit(train, output_dir,
config)`` instead of a backend. Every such family does the same bookkeeping around its own model,
and this module holds it once so a new family is only its model:

- :class:`TargetOptions`: the options every family shares, what to learn (``target``) and which
  models are weak and strong. Subclass it for your family's ``Options``.
- :class:`FamilyScorer`: a ``Scorer`` base with the steps around ``fit`` and ``load``:
  :meth:`~FamilyScorer.merge_options` (the pair ``tela run`` or an ensemble hands over in
  ``config``), :meth:`~FamilyScorer.start_fit`, :meth:`~FamilyScorer.finish_fit` (manifest and
  ``policy.json``) and :meth:`~FamilyScorer.check_manifest` (the artifact is this family's; options
  restored from it).
- :func:`train_data`: the training target and the outcome matrix of the records.
- :func:`read_json` and :func:`artifact_field`: read the family's own artifact files, with one
  line naming the file when it is missing or damaged instead of a traceback.

The targets themselves (``weak-wrong``, ``gain``, ``label``) and the one weak/strong pair rule are
in :mod:`tela_core.routing.targets`; a linear probe on any features is
:class:`tela_core.routing.probe.LinearProbeScorer`.

Nothing here imports numpy or another heavy module at import time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import LoadContext, Scorer
from tela_core.infra.errors import TelaError
from tela_core.routing.artifact import read_manifest, write_manifest, write_policy
from tela_core.routing.targets import all_model_names, make_targets, model_names, outcome_matrix, outcome_values
from tela_core.schema.records import Record

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "TargetOptions",
    "FamilyScorer",
    "TrainData",
    "train_data",
    "read_json",
    "artifact_field",
    "NMODEL_POLICY",
]


class TargetOptions(BaseModel):
    """Options every family has: what to learn, and which models are weak and strong.

    Subclass it and add your family's own fields. ``extra="forbid"`` makes a typo in a config an
    error rather than a silently ignored key.
    """

    model_config = ConfigDict(extra="forbid")

    target: Literal["weak-wrong", "gain", "label"] = Field(
        "weak-wrong", description="weak-wrong | gain | label (see tela_core.routing.targets)"
    )
    weak: str | None = Field(None, description="weak model name in the outcomes (inferred for two models)")
    strong: str | None = Field(None, description="strong model name in the outcomes (inferred for two models)")


class FamilyScorer(Scorer):
    """Base for families that train themselves (``uses_backend = False``).

    A subclass sets ``name``, ``description`` and ``Options`` (a :class:`TargetOptions` subclass) and
    implements ``fit``, ``load`` and ``score`` with the helpers below::

        def fit(self, train, output_dir, config):
            self.merge_options(config)              # the pair tela hands over, if any
            out = self.start_fit(train, output_dir)
            y, meta = make_targets(train, self.options.target, self.options.weak, self.options.strong)
            ...                                     # fit on y, write your files into out
            return self.finish_fit(out, len(train), meta)

        def load(self, artifact_dir, context=LoadContext()):
            self.check_manifest(artifact_dir, context)
            ...                                     # read your files

    The artifact then holds the manifest ``tela.json`` (scorer name, options, target, pair, train
    size and time) and a ``threshold`` ``policy.json`` between the weak and strong model.
    """

    uses_backend = False
    Options: ClassVar[type[TargetOptions]] = TargetOptions
    options: TargetOptions

    def merge_options(self, config: Mapping[str, Any] | None) -> TargetOptions:
        """Update ``self.options`` with the keys of ``config`` that are options of this family.

        ``fit``'s ``config`` carries the pair (``weak``, ``strong``) that ``tela run`` or an
        ensemble resolved, plus keys meant for other parts (``run``, ``formatter``, ``seed``); only
        the ones this family's ``Options`` declares are taken, and the merged options are validated.
        """
        data = self.options.model_dump()
        fields = set(type(self.options).model_fields)
        for k, v in (config or {}).items():
            if k in fields:
                data[k] = v
        self.options = type(self.options)(**data)
        return self.options

    def start_fit(self, records: Sequence[Record], output_dir: Path) -> Path:
        """Refuse an empty training set, create ``output_dir`` and start the training clock that
        :meth:`finish_fit` reads. Returns ``output_dir`` as a ``Path``."""
        if not records:
            raise TelaError(f"{self.name}: no training records")
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        return out

    def finish_fit(self, out: Path, n_train: int, meta: Mapping[str, Any]) -> Path:
        """Write the manifest and ``policy.json`` into ``out`` and return it.

        ``meta`` is what :func:`~tela_core.routing.targets.make_targets` returned (``target``, ``weak``,
        ``strong``) plus anything else worth keeping in the manifest; ``scorer_options`` is always
        this family's options, so :meth:`~tela_core.routing.router.Router.load` recreates the family as it
        was trained. With a weak and a strong model the policy routes between their names.
        """
        models = [m for m in (meta.get("weak"), meta.get("strong")) if m] or None
        write_manifest(
            out,
            scorer=self.name,
            scorer_options=self.options.model_dump(),
            train_records=n_train,
            train_seconds=round(time.perf_counter() - getattr(self, "_t0", time.perf_counter()), 3),
            **{k: v for k, v in meta.items() if k not in ("scorer", "scorer_options")},
        )
        every = list(meta.get("models") or [])
        costs = meta.get("model_costs") or None
        if not models and len(every) > 2 and costs:
            # An N-model router: it routes among every model by predicted quality and cost.
            order = sorted(every, key=lambda m: costs[m])
            write_policy(out, NMODEL_POLICY, {"costs": costs}, models=order)
            return out
        if not models and len(every) > 2 and meta.get("w_pair"):
            # Without every model's cost no N-model policy can weigh them (as `tela run` does): the
            # saved policy routes the pair w reads; `--policy cost-aware --set policy.costs=...` can
            # still route among every model, whose quality the router predicts.
            models = list(meta["w_pair"])
        write_policy(out, "threshold", {"threshold": 0.5}, models=models if models and len(models) == 2 else None)
        return out

    def check_manifest(self, artifact_dir: Path, context: LoadContext | None = None) -> dict[str, Any]:
        """Read ``artifact_dir``'s manifest, refuse one written by another family, and restore this
        family's options from its ``scorer_options`` (keys the options no longer have are dropped),
        keeping the caller's ``context.batch_size`` in a ``batch_size`` option. ``context`` is what
        :meth:`load` received (None: a ``load`` written before it had one). Returns the manifest."""
        manifest = read_manifest(artifact_dir)
        if manifest["scorer"] != self.name:
            raise TelaError(f"{artifact_dir}: written by scorer {manifest['scorer']!r}, not {self.name!r}")
        opts = manifest.get("scorer_options") or {}
        fields = type(self.options).model_fields
        restored = {k: v for k, v in opts.items() if k in fields}
        batch_size = (context or self._legacy_context()).batch_size
        if batch_size is not None and "batch_size" in fields:
            restored["batch_size"] = batch_size
        self.options = type(self.options)(**restored)
        return manifest


#: The policy an N-model router (trained without a weak/strong pair) is saved with.
NMODEL_POLICY = "cost-aware"


@dataclass
class TrainData:
    """Training records read for a family: the two-model target and the full outcome matrix.

    Keeping the whole matrix (not only the two-model target) lets one artifact answer both "does
    this prompt need the strong model?" and, for N models, "how likely is each model to be right?".

    *N-model records* (more than two models and no pair named) need not carry every model's
    outcome: ``observed`` says which they have, and families leave the rest out of their loss or
    their average. Such a router has no weak/strong pair; its ``w`` reads the models with the
    lowest and the highest mean outcome (``meta["w_pair"]``), and it is saved with the
    ``cost-aware`` policy over all its models.
    """

    #: (n,) target in [0, 1] per record (see :func:`tela_core.routing.targets.make_targets`);
    #: NaN where a record lacks an outcome the target reads (N-model records only).
    y: np.ndarray
    #: (n, m) outcomes of ``models`` (0 where ``observed`` is False), or None when the records
    #: carry no outcomes (``label`` target).
    outcomes: np.ndarray | None
    #: Models with outcomes: for two models those in every record, for N models those in any, in
    #: first-seen order.
    models: list[str]
    #: ``make_targets``' facts (``target``, ``weak``, ``strong``) plus ``models``: for the manifest.
    meta: dict[str, Any]
    #: (n, m) True where the record has that model's outcome; None when ``outcomes`` is None.
    observed: np.ndarray | None = None

    @property
    def nmodel(self) -> bool:
        """True for a router among more than two models without a weak/strong pair."""
        return "w_pair" in self.meta


def train_data(records: Sequence[Record], target: str, weak: str | None, strong: str | None) -> TrainData:
    """The target (two-model reading) of ``records`` and their full outcome matrix, if they have one.

    With more than two models in the outcomes and no pair named, the records are N-model training
    data (:class:`TrainData`); otherwise the two-model rules of
    :func:`~tela_core.routing.targets.make_targets` apply unchanged, and the outcomes keep every
    model, those missing from some records masked (``observed``), as long as the pair is in all.
    """
    import numpy as np

    everyone = all_model_names(records)
    if target != "label" and not (weak or strong) and len(everyone) > 2:
        values, observed = outcome_values(records, everyone)
        seen = observed.sum(axis=0)
        mean = np.where(seen > 0, (values * observed).sum(axis=0) / np.maximum(seen, 1), np.nan)
        jw, js = int(np.nanargmin(mean)), int(np.nanargmax(mean))
        if jw == js:
            raise TelaError(f"every model has the same mean outcome ({mean[jw]:.4f}); nothing to route on")
        y = np.full(len(records), np.nan)
        both = observed[:, jw] & observed[:, js]
        if target == "weak-wrong":
            y[both] = (values[both, jw] < 0.5).astype(np.float64)
        elif target == "gain":
            y[both] = (values[both, js] - values[both, jw] + 1.0) / 2.0
        else:
            make_targets(records, target)  # the error naming the targets
        meta: dict[str, Any] = {"target": target, "models": everyone, "w_pair": [everyone[jw], everyone[js]]}
        costs = _mean_costs(records, everyone)
        if costs:
            meta["model_costs"] = costs
        return TrainData(y, values, everyone, meta, observed)
    models = model_names(records)
    y, meta = make_targets(records, target, weak, strong)
    if target != "label" and len(everyone) > max(len(models), 2):
        # a named pair in every record, other models' outcomes missing from some (N-model records):
        # every model is kept, its missing outcomes masked, as without a pair
        values, observed = outcome_values(records, everyone)
        return TrainData(y, values, everyone, {**meta, "models": everyone}, observed)
    # the label target reads no outcomes: records without them (a labels-only copy) train it too
    has_all = target != "label" or all(r.outcomes for r in records)
    outcomes = outcome_matrix(records, models) if models and has_all else None
    meta = {**meta, "models": models}
    every = None if outcomes is None else np.ones(outcomes.shape, dtype=bool)
    return TrainData(y, outcomes, models, meta, every)


def _mean_costs(records: Sequence[Record], models: Sequence[str]) -> dict[str, float] | None:
    """Each model's mean cost per request over the records that give one; None unless every model
    has one."""
    total = {m: 0.0 for m in models}
    count = {m: 0 for m in models}
    for r in records:
        for m, c in (r.costs or {}).items():
            if m in total and c is not None:
                total[m] += float(c)
                count[m] += 1
    if not all(count.values()):
        return None
    return {m: total[m] / count[m] for m in models}


def read_json(path: Path) -> Any:
    """Read a JSON file of an artifact; a missing or broken one is a :class:`TelaError` naming it
    (so a damaged router gives one line telling the user to train it again, not a traceback)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TelaError(f"{path}: missing from the router artifact") from None
    except (ValueError, RecursionError, OSError) as e:  # bad JSON or UTF-8, too deep, a directory
        raise TelaError(
            f"{path}: damaged router file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "train the router again"
        ) from None


def artifact_field(data: Any, path: Path, key: str, kind: type | tuple[type, ...]) -> Any:
    """``data[key]`` checked to be a ``kind``: a damaged or foreign artifact file gives one line
    naming the file and the key, not a ``KeyError``. ``bool`` never passes for a number."""
    if not isinstance(data, dict) or key not in data:
        raise TelaError(f"{path}: damaged router file: no {key!r} field; train the router again")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TelaError(
            f"{path}: damaged router file: {key!r} has the wrong type ({type(value).__name__}); train the router again"
        )
    return value
