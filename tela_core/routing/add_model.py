"""Add a model to a trained N-model router without starting over (``tela run --add-to``).

A router that predicts every model's quality (an N-model router: ``Scores.quality``) takes one new
model from records of its outcomes on a few hundred prompts. Its family fits only what the new model
needs (``Scorer.add_model(records, model, folder)``: e.g. matrix-factorization's model vector and
bias with the prompt projection frozen, kNN's outcome column); everything else is copied. The new
router is a new folder (or the next version of a versions folder, not made current), written whole
or not at all; the router it came from is never changed. Its manifest lists the model and says where
it came from (``added_models``), its policy's costs gain the new model's mean cost per request.

Families that can add a model have an ``add_model`` method; the others are refused in one line that
names the ones that can.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tela_core.components import KINDS
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json, remove_stale_partials, staged_dir
from tela_core.infra.locks import output_lock
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import MANIFEST, POLICY, read_manifest, read_policy, router_version, write_policy
from tela_core.routing.targets import all_model_names
from tela_core.schema.records import Record

__all__ = ["add_model", "families_that_add", "new_model_of", "FEW_RECORDS", "FAMILY_KIND"]

#: the component kind of router families (``scorer`` before tela 0.3)
FAMILY_KIND = "family" if "family" in KINDS else "scorer"

#: below this many labelled prompts the run warns: the new model's predictions are rough
FEW_RECORDS = 50


def families_that_add() -> list[str]:
    """Registered families whose routers can take a new model (they have ``add_model``)."""
    reg = get_registry()
    return sorted(n for n in reg.names(FAMILY_KIND) if callable(getattr(reg.get(FAMILY_KIND, n), "add_model", None)))


def new_model_of(records: Sequence[Record], models: Sequence[str], where: str) -> tuple[str, int]:
    """(the one model ``records`` name that ``models`` lack, how many records have its outcome);
    a one-line error when they name none or several."""
    new = [m for m in all_model_names(records) if m not in models]
    if not new:
        raise TelaError(
            f"{where}: the records name no model the router lacks (its models: {', '.join(models)}); "
            "give records with the new model's outcomes (tela judge over its answers)"
        )
    if len(new) > 1:
        raise TelaError(
            f"{where}: the records name {len(new)} models the router lacks ({', '.join(new)}); add one model at a time"
        )
    return new[0], sum(1 for r in records if r.outcomes and new[0] in r.outcomes)


def _mean_cost(records: Sequence[Record], model: str) -> float | None:
    costs = [float(r.costs[model]) for r in records if r.costs and r.costs.get(model) is not None]
    return sum(costs) / len(costs) if costs else None


def add_model(
    router: str | Path,
    records: Sequence[Record],
    output: str | Path,
    *,
    data_label: str = "the data",
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Write into ``output`` the router in ``router`` with the one new model ``records`` name
    (module doc); return ``output``. Nothing is written when anything is refused."""
    from tela_core.routing.router import Router

    src = Path(router)
    out = Path(output)
    manifest = read_manifest(src)
    family = str(manifest["scorer"])
    reg = get_registry()
    cls = reg.get(FAMILY_KIND, family)
    if not callable(getattr(cls, "add_model", None)):
        raise TelaError(
            f"{src}: family {family!r} cannot take a new model; families that can: "
            f"{', '.join(families_that_add()) or 'none installed'} (or train a new router on every model's records)"
        )
    try:
        same = out.resolve() == src.resolve()
    except OSError:
        same = False
    if same:
        raise TelaError(f"{out}: the new router must go to another folder than the router it extends")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise TelaError(f"{out} exists and is not empty; choose another --output (or --force to replace it)")
    spec = read_policy(src)
    loaded = Router.load(src)
    scorer: Any = loaded.scorer  # a family with add_model (checked above)
    old = [str(m) for m in (getattr(scorer, "models", None) or [])]
    if len(old) < 2:
        raise TelaError(f"{src}: this router predicts no per-model quality; train it on outcome data to add a model")
    pair = manifest.get("weak") and manifest.get("strong")
    if pair and spec.get("name") == "threshold":
        raise TelaError(
            f"{src}: this router routes the pair {manifest['weak']} -> {manifest['strong']} (policy threshold); "
            "a model is added to an N-model router (trained on 3 or more models' records with no pair named)"
        )
    model, n = new_model_of(records, old, data_label)
    if n < FEW_RECORDS:
        echo(f"warning: only {n} records have an outcome for {model}; its predicted quality will be rough")
    options = dict(spec.get("options") or {})
    costs = options.get("costs") if isinstance(options.get("costs"), dict) else None
    cost = _mean_cost(records, model)
    if costs is not None and cost is None:
        raise TelaError(
            f"{data_label}: no record gives a cost for {model}, and the router's policy weighs each model's cost; "
            "judge answers collected with tela collect (they carry token counts and prices)"
        )
    with output_lock(out):
        remove_stale_partials(out)
        with staged_dir(out) as stage:
            shutil.rmtree(stage)
            shutil.copytree(src, stage, symlinks=False, ignore=shutil.ignore_patterns(".score-cache", ".*.lock"))
            fitted = scorer.add_model(records, model, stage)
            new_manifest = dict(manifest)
            new_manifest["models"] = [*old, model]
            model_costs = manifest.get("model_costs")
            if isinstance(model_costs, dict) and cost is not None:
                new_manifest["model_costs"] = {**model_costs, model: cost}
            step = {
                "model": model,
                "records": n,
                "from": str(src),
                "from_version": router_version(src),
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **(fitted or {}),
            }
            new_manifest["added_models"] = [*(manifest.get("added_models") or []), step]
            atomic_write_json(stage / MANIFEST, new_manifest)
            models = [str(m) for m in (spec.get("models") or [])]
            if costs is not None and cost is not None:
                costs = {**costs, model: cost}
                options["costs"] = costs
                models = sorted([*old, model], key=lambda m: costs.get(m, float("inf")))  # type: ignore[union-attr]
            elif set(models) == set(old):
                models = [*models, model]
            atomic_write_json(stage / POLICY, {**spec, "options": options, "models": models})
            budget = options.get("budget")
            if spec.get("name") == "budget" and isinstance(budget, (int, float)) and budget > 0:
                _recalibrate_budget(stage, records, model, float(budget), data_label, echo)
    echo(f"added {model} to {src} from {n} records ({', '.join(str(v) for k, v in step.items() if k == 'method')})")
    return out


def _recalibrate_budget(
    folder: Path, records: Sequence[Record], model: str, budget: float, data_label: str, echo: Callable[[str], None]
) -> None:
    """The budget policy's λ found again with the new model among the choices, on the new model's
    labelled prompts (the λ -> cost curve saved with the old λ did not have it)."""
    from tela_core.routing.calibration import calibrate_budget
    from tela_core.routing.router import Router

    prompts = [r.prompt for r in records if r.outcomes and model in r.outcomes]
    router = Router.load(folder)
    s = router.scores(prompts, quality=True)
    if s.quality is None:  # pragma: no cover - the families that add a model predict every model
        raise TelaError(f"{folder}: the new router predicts no per-model quality")
    what = f"{data_label}: the {len(prompts)} prompts the new model was added from (tela run --add-to)"
    saved = calibrate_budget(router, s.quality, list(s.models or router.models), budget, data=what)
    lam = saved["options"].get("lam")
    point = {
        "rule": "the budget of the router it came from",
        "note": f"λ found again with {model} among the models",
        "heldout": len(prompts),
        "heldout_what": f"the prompts {model} was added from, predicted; not held out",
        "policy": "budget",
        "knob": "budget",
        "value": budget,
        "lam": lam,
        "cost_per_1000": saved["options"].get("achieved_cost"),
    }
    write_policy(folder, "budget", saved["options"], saved["models"], operating_point=point)
    echo(
        f"budget policy: λ {saved['options'].get('lam', 0):.4g} meets ${budget:.4g} per 1,000 requests with "
        f"{model} among the models, on the {len(prompts)} prompts it was added from"
    )
