"""What ``tela run`` does, start to finish.

1. :func:`tela_core.train.resolve_config` builds the :class:`RunConfig` (``config.py``).
2. Every option and the data are checked before anything is written; records are read, sampled,
   split and formatted (``data.py``).
3. The output dir is guarded (``guard.py``): a different config is refused unless ``--force``;
   the same config resumes from the last checkpoint or reports that the router is done.
4. A family that trains itself is fit here; a backend-trained one goes to its backend, which
   starts the workers through :func:`tela_core.train.launch_workers` (``launch.py``).
5. :func:`run` writes the manifest and the default policy last: an output dir with ``tela.json``
   is a finished router.

Heavy libraries are imported inside functions only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.data.duplicates import find_duplicates
from tela_core.data.fingerprint import SKETCH_KEY, prompt_sketch
from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json, remove_stale_partials, staged_dir
from tela_core.infra.locks import output_lock
from tela_core.models.resolve import resolve_model
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import read_manifest, read_policy, write_manifest, write_policy
from tela_core.routing.operating_point import (
    NMODEL_RULES,
    OperatingPoint,
    choose_nmodel_point,
    choose_operating_point,
    mean_costs,
    parse_rule,
    small_sample_warning,
)
from tela_core.routing.router import Router
from tela_core.routing.targets import all_model_names

from ..components import TrainJob
from .config import RUN_SUBDIR, RunConfig, check_settings_used
from .data import data_sources, data_summary, format_rows, mix_pair, read_data, split_mix, write_rows
from .guard import check_output, check_output_path
from .heldout import FOLDS, MAX_HELDOUT, heldout_scores, out_of_fold_quality, out_of_fold_scores, outcomes_of
from .launch import node_launch

if TYPE_CHECKING:
    from .multinode import NodeLaunch

__all__ = ["run", "normal_file_modes"]


def run(cfg: RunConfig, force: bool = False, quiet: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Train the router ``cfg`` describes into ``cfg.output`` and return that directory.

    Every option and the data are checked before anything is written; the output dir is locked
    (:mod:`tela_core.infra.locks`) from the first write to the last. A family that trains itself is fit
    into a hidden staging dir beside the output and moved into place when done; a backend run
    writes its marker (``.tela/run.json``) only once training starts, so that a run refused for a
    bad option never blocks the corrected one.
    """
    reg = get_registry()
    reg.create(
        "formatter", cfg.formatter, cfg.formatter_options
    )  # unknown names and bad options fail before anything is written
    scorer_cls = reg.get("scorer", cfg.family)
    uses_backend = bool(getattr(scorer_cls, "uses_backend", False))
    check_settings_used(cfg, uses_backend)
    backend = reg.create("backend", cfg.backend, cfg.backend_options) if uses_backend else None
    family = reg.create("scorer", cfg.family, cfg.family_options)  # bad family options fail here too
    if backend is not None and hasattr(backend, "check"):
        backend.check()  # e.g. a user DeepSpeed config that is missing or not JSON
    if cfg.hostfile is not None and not Path(cfg.hostfile).is_file():
        raise TelaError(f"{cfg.hostfile}: hostfile not found")
    nodes = node_launch(cfg) if uses_backend else None  # a bad --nnodes/--node-rank fails before any write
    data_sources(cfg)  # a missing data file or a bad --set source.* fails before the model loads
    model = None
    if uses_backend:
        model = resolve_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
    # a router between two models trains on the records with both of its pair's outcomes; a family
    # that predicts each model's quality also on N-model records that lack some (but none is named)
    pair_named = {"weak", "strong"} & set(cfg.family_options)
    mix = read_data(cfg, complete_pair=uses_backend or bool(pair_named) or not hasattr(family, "predict_models"))
    records = mix.records
    for part in mix.parts:
        if part.notes.get("records_without_the_pair"):
            echo(
                f"note: {part.spec.data}: {part.notes['records_without_the_pair']} of {part.records_read} records lack "
                "the weak or the strong model's outcome; a router between two models trains on the others"
            )
    if mix.by_role:
        echo(
            f"the sources name different model pairs ({mix.describe_pairs()}): each record's outcomes are "
            "keyed by role, and the router routes between 'weak' and 'strong' (tela serve --weak/--strong "
            "says which model plays each)"
        )
    dups = find_duplicates(records).warning()
    if dups:
        echo(dups)
    target = getattr(getattr(family, "options", None), "target", None)
    # N-model records for a family that predicts each model's quality: no pair needed
    nmodel = len(all_model_names(records)) > 2 and callable(getattr(family, "predict_models", None))
    if (
        mix.pair is None
        and target not in (None, "label")
        and not {"weak", "strong"} <= set(cfg.family_options)
        and not nmodel
    ):
        problem = next((p.problem for p in mix.parts if p.problem), None)
        if problem:  # the family would fail on it too, but without saying how tela run names the pair
            raise TelaError(problem)
    bare = next((p for p in mix.parts if not p.has_outcomes), None)
    if bare is not None and target in ("weak-wrong", "gain"):  # the family would name a record, not the file
        where = str(bare.spec.data) if bare.total == 1 else f"{bare.spec.data} ({bare.section})"
        raise TelaError(
            f"{where}: its records carry 1..5 labels only, no per-model outcomes, and family {cfg.family!r} "
            f"learns target {target!r} from outcomes; train on the labels with --set family.target=label"
            + (", or drop this source" if bare.total > 1 else "")
        )
    # a family that trains itself computes no eval loss: holding records out would only waste them
    train, evals, origins = split_mix(cfg, mix, holds_out=uses_backend)
    train_counts = [0] * len(mix.parts)
    for o in origins:
        train_counts[o] += 1
    for note in mix.untrained_notes(train_counts):
        echo(note)
    if not train:
        raise TelaError(
            f"{cfg.data_label()}: the split leaves no training records ({len(records)} read); lower --eval-fraction"
        )
    rows: dict[str, list[dict[str, Any]]] | None = None
    if model is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model.path), trust_remote_code=cfg.trust_remote_code)
        rows = {"train.jsonl": format_rows(cfg, train, tokenizer), "eval.jsonl": format_rows(cfg, evals, tokenizer)}

    out = Path(cfg.output)
    check_output_path(out)
    with output_lock(out):
        remove_stale_partials(out)
        state = check_output(out, cfg.fingerprint(), force, cfg.model_dump(mode="json"))
        if state == "done":
            echo(f"{out} is already trained with this config; nothing to do (pass --force to retrain)")
            return out
        if state == "resume":
            echo(f"resuming the run in {out}")
        summary = data_summary(cfg, records, train, evals, mix, origins, None if uses_backend else 0.0)
        trained = mix.trained_pairs(train_counts)
        pairs = {"trained_pairs": trained} if trained else {}
        if backend is None:
            _fit_family(cfg, family, train, out, summary, mix_pair(cfg, mix), pairs, echo)
            return out
        assert model is not None and rows is not None
        pair = {"weak": mix.pair[0], "strong": mix.pair[1]} if mix.pair else {}
        return _train_with_backend(
            cfg, backend, model, rows, pair, pairs, train, summary, out, force, quiet, echo, nodes, evals
        )


def _marker(cfg: RunConfig) -> dict[str, Any]:
    return {"fingerprint": cfg.fingerprint(), "config": cfg.model_dump(mode="json"), "argv": sys.argv}


def _fit_family(
    cfg: RunConfig,
    family: Any,
    train: Sequence[Any],
    out: Path,
    summary: dict[str, Any],
    pair: Mapping[str, str],
    pairs: Mapping[str, Any],
    echo: Callable[[str], None] = print,
) -> None:
    """Fit a self-training family into a staging dir beside ``out``, then move it into place.

    ``pair`` is the data's weak/strong pair, handed to the family (unless its options name one) and
    kept in the manifest where the family's own target does not record one (``target=label``), so
    the router routes between those models, not the placeholders; ``pairs`` the sources' real pairs.
    """
    config = cfg.model_dump(mode="json")
    fit_config = {"run": config, "formatter": cfg.formatter, "seed": cfg.seed, **pair}
    # out is missing, an empty dir, a forced replacement or an unfinished older run: replaced whole
    with staged_dir(out) as stage:
        family.fit(train, stage, fit_config)
        if not (stage / "policy.json").exists():
            write_policy(stage, "threshold", {"threshold": 0.5})
        manifest = read_manifest(stage)
        extra = {k: v for k, v in manifest.items() if k not in ("tela_artifact", "scorer", "created", "plugins")}
        extra.update(data=summary, config=config, **pairs, **{SKETCH_KEY: prompt_sketch(r.prompt for r in train)})
        if len(pair) == 2 and not (extra.get("weak") and extra.get("strong")):
            extra.update(pair)
        manifest = write_manifest(stage, scorer=manifest["scorer"], **extra)
        (stage / RUN_SUBDIR).mkdir(exist_ok=True)
        if not _save_nmodel_point(cfg, stage, family, train, fit_config, echo):
            _save_operating_point(cfg, stage, manifest, echo, folds=lambda: _out_of_fold(cfg, train, fit_config, stage))
        atomic_write_json(stage / RUN_SUBDIR / "run.json", _marker(cfg))


def _train_with_backend(
    cfg: RunConfig,
    backend: Any,
    model: Any,
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    pair: Mapping[str, str],
    pairs: Mapping[str, Any],
    train: Sequence[Any],
    data_summary: dict[str, Any],
    out: Path,
    force: bool,
    quiet: bool,
    echo: Callable[[str], None],
    nodes: NodeLaunch | None = None,
    evals: Sequence[Any] = (),
) -> Path:
    """Write the formatted data and the run marker, train with ``backend``, write the manifest last."""
    run_dir = out / RUN_SUBDIR
    run_dir.mkdir(parents=True, exist_ok=True)
    config = cfg.model_dump(mode="json")
    write_rows(run_dir, rows)
    atomic_write_json(run_dir / "run.json", _marker(cfg))  # training starts now: a resumable run
    job = TrainJob(
        model=str(model.path),
        output_dir=out,
        train_file=run_dir / "train.jsonl",
        eval_file=run_dir / "eval.jsonl" if data_summary["eval"] else None,
        formatter=cfg.formatter,
        processes=cfg.processes,
        hostfile=Path(cfg.hostfile) if cfg.hostfile else None,
        trust_remote_code=cfg.trust_remote_code,
        force=force,
        run_dir=run_dir,
        quiet=quiet,
        nodes=nodes,
        train=cfg.train_settings(),
        family=cfg.family,
        formatter_options=dict(cfg.formatter_options),
    )
    if nodes is not None and nodes.multi:
        echo(f"multi-node run: {nodes.describe()}")
    backend.train(job)
    if nodes is not None and nodes.multi and not (run_dir / "trained.json").is_file():
        echo(f"this node's ranks finished; global rank 0 (node 0) writes the router there, not into {out}")
        return out
    base_model = {"name": model.name, "path": str(model.path), "model_type": model.model_type}
    normal_file_modes(out)
    attempts = run_dir / "attempts.jsonl"
    last = (
        json.loads(attempts.read_text().splitlines()[-1])
        if attempts.exists() and attempts.read_text().strip()
        else None
    )
    if last and last.get("train_examples_used", last.get("train_examples")) != last.get("train_examples"):
        echo(
            f"note: {last['train_examples'] - last['train_examples_used']} of {last['train_examples']} training "
            f"examples were longer than --max-length {cfg.max_length} with their answer cut off, and were skipped"
        )
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # finished: resumable state no longer needed
    if not (out / "policy.json").exists():
        write_policy(out, "threshold", {"threshold": 0.5}, [pair["weak"], pair["strong"]] if pair else None)
    manifest = write_manifest(
        out,
        scorer=cfg.family,
        scorer_options=cfg.family_options,
        formatter=cfg.formatter,
        formatter_options=cfg.formatter_options,
        base_model=base_model,
        backend={"name": cfg.backend, "options": backend.options.model_dump(mode="json")},
        data=data_summary,
        config=config,
        training=last,
        **{SKETCH_KEY: prompt_sketch(r.prompt for r in train)},
        **pairs,
        **pair,
    )
    _save_operating_point(cfg, out, manifest, echo, heldout=lambda: _held_out(cfg, out, evals))
    return out


def _out_of_fold(
    cfg: RunConfig, train: Sequence[Any], fit_config: Mapping[str, Any], stage: Path
) -> tuple[Any, list[Any], str]:
    """Out-of-fold scores of a self-training family's training records (:mod:`.heldout`)."""
    reg = get_registry()
    work = stage / RUN_SUBDIR / "folds"
    try:
        w, records = out_of_fold_scores(
            lambda: reg.create("scorer", cfg.family, cfg.family_options), train, fit_config, cfg.seed, work
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return w, records, f"{FOLDS}-fold out-of-fold scores of the training records"


def _save_nmodel_point(
    cfg: RunConfig,
    stage: Path,
    family: Any,
    train: Sequence[Any],
    fit_config: Mapping[str, Any],
    echo: Callable[[str], None],
) -> bool:
    """Save an N-model policy over every model, cheap -> strong, for a family that predicts each
    model's quality trained on records with every model's cost, unless the run names a pair
    (``--set family.weak/strong``) or a two-model rule (``share=P``, ``threshold=T``); the point is
    chosen by ``cfg.operating_point`` (:func:`~tela_core.routing.operating_point.choose_nmodel_point`)
    on out-of-fold predictions of the training records. False: the router stays on its pair."""
    import numpy as np

    models = [str(m) for m in getattr(family, "models", None) or []]
    kind, _ = parse_rule(cfg.operating_point)
    if len(models) < 3 or not hasattr(family, "predict_models"):
        return False
    if kind in ("share", "threshold"):
        return _keep_pair(stage, echo, f"operating point {cfg.operating_point} is a rule for a weak/strong pair")
    if {"weak", "strong"} & set(cfg.family_options):
        if kind in NMODEL_RULES:
            echo(f"note: operating point {cfg.operating_point}: the run names a weak/strong pair, so it does not apply")
        return False
    costs = mean_costs(train, models)
    if costs is None:
        return _keep_pair(
            stage,
            echo,
            f"the training records give no cost for every one of the {len(models)} models (N-model policies weigh "
            "each model's cost)",
        )
    rule = cfg.operating_point or "knee"
    echo(f"choosing the operating point ({rule}) among {len(models)} models on {FOLDS}-fold out-of-fold predictions")
    work = stage / RUN_SUBDIR / "folds"
    reg = get_registry()
    try:
        quality, cols, records = out_of_fold_quality(
            lambda: reg.create("scorer", cfg.family, cfg.family_options), train, fit_config, cfg.seed, work
        )
        what = f"{FOLDS}-fold out-of-fold predictions of the training records"
    except TelaError as e:  # too few prompts to hold any out: the router's own predictions, which flatter it
        echo(f"note: operating point: {e}; chosen on the router's predictions of its training prompts instead")
        records = list({r.prompt: r for r in train}.values())
        s = Router.load(stage).scores([r.prompt for r in records], quality=True)
        if s.quality is None:
            raise TelaError(f"family {cfg.family!r} predicts no per-model quality") from None
        quality, cols, what = (
            s.quality,
            list(s.models or models),
            "the router's predictions of its training prompts, not held out",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = sorted(cols, key=lambda m: (costs[m], cols.index(m)))  # cheap -> strong
    q = np.asarray(quality, dtype=float)[:, [cols.index(m) for m in order]]
    truth = np.array([[(r.outcomes or {}).get(m, np.nan) for m in order] for r in records], dtype=float)
    name, options, point = choose_nmodel_point(q, order, truth, costs, rule=rule, heldout_what=what)
    write_policy(stage, name, options, order, operating_point=point)
    return True


def _keep_pair(stage: Path, echo: Callable[[str], None], why: str) -> bool:
    """Save the router in ``stage`` routing its weak/strong pair (the models its ``w`` reads, the
    lowest and the highest mean outcome) instead of the N-model policy its family saved, whose
    operating point cannot be chosen (``why``). False: its pair's operating point is chosen next."""
    pair = read_manifest(stage).get("w_pair")
    spec = read_policy(stage)
    if not (isinstance(pair, list) and len(pair) == 2):
        return False
    echo(f"note: {why}, so the router routes between its weak/strong pair {pair[0]} < {pair[1]}")
    if spec.get("name") != "threshold" or list(spec.get("models") or []) != [str(m) for m in pair]:
        write_policy(stage, "threshold", {"threshold": 0.5}, [str(m) for m in pair])
    return False


def _held_out(cfg: RunConfig, out: Path, evals: Sequence[Any]) -> tuple[Any, list[Any], str]:
    """The trained router's scores of the held-out records (``--eval-fraction``)."""
    if len(evals) < 1:
        raise TelaError("--eval-fraction held no records out")
    w, records = heldout_scores(out, evals, cfg.seed, trust_remote_code=cfg.trust_remote_code)
    what = f"the held-out {cfg.eval_fraction:g} of the training data" + (
        f", {MAX_HELDOUT} of them drawn" if len(evals) > MAX_HELDOUT else ""
    )
    return w, records, what


def _save_operating_point(
    cfg: RunConfig,
    router_dir: Path,
    manifest: Mapping[str, Any],
    echo: Callable[[str], None],
    folds: Callable[[], tuple[Any, list[Any], str]] | None = None,
    heldout: Callable[[], tuple[Any, list[Any], str]] | None = None,
) -> None:
    """Choose the router's operating point by ``cfg.operating_point``
    (:mod:`tela_core.routing.operating_point`) on scores of records it did not train on, and save
    it as its policy. A two-model ``threshold`` policy is replaced; a family's own policy (e.g.
    ``tiers`` over N models) is kept."""
    spec = read_policy(router_dir)
    models = [str(m) for m in (spec.get("models") or [])]
    if spec.get("name", "threshold") != "threshold" or len(models) > 2:
        return
    kind, _ = parse_rule(cfg.operating_point)
    rule = cfg.operating_point or "knee"
    if kind in NMODEL_RULES:
        echo(f"note: operating point {rule} is for a router among N models; this one routes a pair: the knee is taken")
        kind, rule = "knee", "knee"
    point: OperatingPoint
    if kind == "threshold":
        point = choose_operating_point(None, rule=rule)
    else:
        scores = folds or heldout
        assert scores is not None
        try:
            echo(
                f"choosing the operating point ({rule}) on "
                + (
                    f"{FOLDS}-fold out-of-fold scores of the training records"
                    if folds is not None
                    else "the router's scores of the held-out records"
                )
            )
            w, records, what = scores()
        except Exception as e:  # noqa: BLE001 - the router is trained: a fold the family cannot fit (one class, too
            # few records) must not lose it; the fixed threshold is kept and the run says why
            said = str(e) if isinstance(e, TelaError) else f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
            point = OperatingPoint(
                rule, 0.5, note=f"no held-out scores to choose it on ({said}); the threshold 0.5 was kept"
            )
        else:
            pair = manifest.get("w_pair") if not manifest.get("weak") else None  # an N-model family's pair
            named = {"weak": manifest.get("weak"), "strong": manifest.get("strong")}
            weak, strong = outcomes_of(records, {"weak": pair[0], "strong": pair[1]} if pair else named)
            point = choose_operating_point(w, weak, strong, rule=rule, heldout_what=what)
            small = small_sample_warning(
                point.heldout,
                "the operating point",
                "set it on more prompts with tela calibrate --data FILE --strong-share P",
            )
            if small:
                echo(small)
    if point.note:
        echo(f"note: operating point: {point.note}")
    record = point.to_dict()
    if kind == "threshold" or point.target_share is None:
        write_policy(router_dir, "threshold", {"threshold": point.threshold}, models or None, operating_point=record)
        return
    options = {
        "strong_share": point.target_share,
        "threshold": point.threshold,
        "calibration_prompts": max(point.heldout, 1),
        "calibration_data": f"{point.heldout_what} (tela run, operating point {point.rule})",
        "achieved_share": point.strong_share,
    }
    write_policy(router_dir, "calibrated", options, models or None, operating_point=record)


def normal_file_modes(root: Path) -> None:
    """Give the artifact's files a normal file's mode (0666 less the umask, 0644 usually): some
    writers (safetensors via a temporary file) leave 0600, unreadable to the other users of a
    shared router."""
    mask = os.umask(0)
    os.umask(mask)
    for p in root.iterdir():
        if p.is_file() and not p.is_symlink():
            os.chmod(p, 0o666 & ~mask)
