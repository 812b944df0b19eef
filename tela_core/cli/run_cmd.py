"""``tela run``: train a router end to end (``tela demo`` lives in :mod:`.demo_cmd`).

Settings come from defaults, then ``--config FILE`` (YAML or TOML), then the flags given on the
command line; ``--set backend.KEY=VALUE`` (also ``family``, ``source``, ``formatter``) sets component options.
Rerunning the same command on the same ``--output`` resumes from the last checkpoint; a different
config there is refused unless ``--force``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from tela_core.routing.artifact import read_manifest, read_policy
from tela_core.routing.operating_point import OperatingPoint, describe_nmodel_point, gains_nothing

from ..train import resolve_config
from ..train import run as run_pipeline
from ..train.add_model import run_add_model
from .options import (
    force_option,
    launch_options,
    output_option,
    protocol_option,
    set_option,
    source_option,
    trust_option,
)

__all__ = ["register", "run"]

#: CLI parameter -> RunConfig field, for the flags that map one to one
_FIELDS = (
    "source",
    "data",
    "weight",
    "protocol",
    "formatter",
    "family",
    "backend",
    "model",
    "output",
    "processes",
    "hostfile",
    "nnodes",
    "node_rank",
    "master_addr",
    "master_port",
    "rdzv_endpoint",
    "trust_remote_code",
    "epochs",
    "learning_rate",
    "batch_size",
    "grad_accum",
    "max_length",
    "max_steps",
    "warmup_ratio",
    "save_steps",
    "sample",
    "eval_fraction",
    "seed",
    "operating_point",
)


def register(cli: click.Group) -> None:
    """Attach ``tela run`` to ``cli``."""
    cli.add_command(run)


@click.command()
@source_option(default=None, dest="source", multiple=True)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="PATH",
    help="Training data (seed JSONL or outcome data). Repeatable: several sources train one router "
    "(each with its --source and --weight, in order; --set sourceN.KEY=VALUE sets the Nth one's options).",
)
@click.option(
    "--weight",
    type=float,
    multiple=True,
    metavar="W",
    help="How much each --data counts, one per --data in order: 2 counts its records twice, 0.5 half of them "
    "(drawn with --seed).  [default: 1]",
)
@protocol_option
@click.option("--formatter", default=None, metavar="NAME", help="Prompt formatter.  [default: role-prefix]")
@click.option("--family", default=None, metavar="NAME", help="Router family.  [default: score-token]")
@click.option(
    "--backend",
    default=None,
    metavar="NAME",
    help="Trainer backend for families trained by one.  [default: deepspeed-z3]",
)
@click.option(
    "--model",
    default=None,
    metavar="DIR|GGUF",
    help="Base model: a local HF dir or a .gguf file.  [default: smollm2-135m]",
)
@output_option()
@launch_options
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML/TOML file of run options."
)
@set_option("overrides", "{backend,family,source[N],formatter}.KEY=VALUE")
@click.option("--epochs", type=float, default=None, help="Training epochs.  [default: 3, as the seed]")
@click.option(
    "--learning-rate", "--lr", "learning_rate", type=float, default=None, help="Peak learning rate.  [default: 5e-5]"
)
@click.option("--batch-size", type=int, default=None, help="Examples per rank per step.  [default: 8]")
@click.option("--grad-accum", type=int, default=None, help="Gradient accumulation steps.  [default: 1]")
@click.option(
    "--max-length", type=int, default=None, help="Longest example in tokens (no padding to it).  [default: 2048]"
)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--warmup-ratio", type=float, default=None, help="Share of steps for LR warm-up.  [default: 0]")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps (0: never).  [default: 50]")
@click.option("--sample", type=int, default=None, help="Train on N records sampled with seed 42.")
@click.option(
    "--eval-fraction",
    type=float,
    default=None,
    help=(
        "Held-out share for eval loss (families trained by a backend; the others train on every record).  "
        "[default: 0.1]"
    ),
)
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 42]")
@click.option(
    "--operating-point",
    default=None,
    metavar="RULE",
    help="How the saved policy's threshold is chosen, on scores of training records the router did not "
    "train on (the held-out part, or out-of-fold scores for families that train on every record): "
    "knee (of the quality-cost curve: the strong-call share in 0.1..0.9 that beats random routing "
    "by the most), share=P (send P of them to the strong model) or threshold=T (fixed, nothing "
    "held out). A router among N models (a family that predicts each model's quality, records with every "
    "model's cost) gets the budget policy: knee is the least cost at which it matches the best single model; "
    "or budget=B ($ per 1,000 requests), budget=best (that model's cost), lam=L (cost-aware), q=Q "
    "(quality-floor).  [default: knee]",
)
@click.option(
    "--add-to",
    "add_to",
    type=click.Path(path_type=Path),
    default=None,
    metavar="ROUTER",
    help="Add a model to this trained N-model router instead of training one: --data holds records of the "
    "one model it lacks (a few hundred prompts), the router's family fits only what that model needs, and "
    "the new router goes to --output (ROUTER is not changed; a versions folder: its current version).",
)
@trust_option(default=None)
@click.option(
    "--no-trust-remote-code",
    "no_trust_remote_code",
    is_flag=True,
    hidden=True,
    help="Turn off a config file's trust_remote_code.",
)
@force_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def run(
    config_file: Path | None,
    overrides: tuple[str, ...],
    force: bool,
    quiet: bool,
    no_trust_remote_code: bool,
    add_to: Path | None,
    **flags: Any,
) -> None:
    """Train a router: prepare data, fine-tune, and write a self-describing router artifact.

    OUTPUT becomes the router directory. Rerunning the same command on it resumes from the last
    checkpoint; a different config there is refused unless --force. --set takes the sections
    backend, family, source and formatter, e.g. --set backend.offload_optimizer=true.

    Several --data train one router on all of them (each with its --source and --weight, in
    order; --protocol takes each one's training side); --set sourceN.models.weak=NAME and
    sourceN.models.strong=NAME map the Nth source's models onto the router's weak/strong pair.

    \b
    Examples:
      tela run --data train.jsonl --formatter role-prefix --backend deepspeed-z3 \\
               --model ./SmolLM2-135M-Instruct.Q4_1.gguf --output runs/router --processes 2
      tela run --family embedding-knn --data mmlu-train.jsonl --data llmrouter.json --weight 1 --weight 2 \\
               --set source2.models.weak=mistral-7b-instruct-v0.3 -o runs/mixed
      tela run --add-to runs/v1 --data new-model-records.jsonl -o runs/v2
    """
    if no_trust_remote_code:  # hidden: overrides a config file's (or the environment's) trust_remote_code
        flags["trust_remote_code"] = False
    cfg = resolve_config(config_file, {k: v for k, v in flags.items() if k in _FIELDS}, overrides)
    if add_to is not None:  # a new model into a trained router (tela_core.train.add_model)
        given = [k for k, v in flags.items() if v not in (None, (), False)]
        given += [o.split(".", 1)[0].rstrip("0123456789") for o in overrides]
        out = run_add_model(add_to, cfg, given, force=force, echo=lambda m: click.echo(m, err=True))
        click.echo(f"router written to {out}", err=True)
        for line in summary_lines(out):
            click.echo(line, err=True)
        click.echo(str(out))
        return
    t0 = time.time()
    out = run_pipeline(cfg, force=force, quiet=quiet, echo=lambda m: click.echo(m, err=True))
    if not (Path(out) / "tela.json").is_file():  # a multi-node run's other nodes: the router is on node 0
        click.echo(f"this node's part is done ({time.time() - t0:.0f} s)", err=True)
        return
    click.echo(f"router written to {out} ({time.time() - t0:.0f} s)", err=True)
    for line in summary_lines(Path(out)):
        click.echo(line, err=True)
    click.echo(str(out))


def summary_lines(out: Path) -> list[str]:
    """What ``tela run`` made, from the router folder: records, pair, family, policy and where the
    policy lands on the held-out scores it was chosen on."""
    manifest = read_manifest(out)
    spec = read_policy(out)
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    lines = []
    if data:
        held = f", {data['eval']} held out" if data.get("eval") else ""
        lines.append(f"  records: {data.get('records')} read, {data.get('train')} trained on{held}")
    weak, strong = manifest.get("weak"), manifest.get("strong")
    models = spec.get("models") or []
    point = spec.get("operating_point") if isinstance(spec.get("operating_point"), dict) else None
    nmodel = bool(point and point.get("policy"))
    if nmodel:
        lines.append(f"  models:  {', '.join(str(m) for m in models)} (cheap -> strong)")
    elif weak and strong:
        lines.append(f"  pair:    weak {weak}, strong {strong}")
    elif len(models) >= 2:
        lines.append(f"  models:  {', '.join(str(m) for m in models)} (cheap -> strong)")
    target = manifest.get("target") or (manifest.get("scorer_options") or {}).get("target")
    if nmodel or len(models) > 2:  # the family predicts each model's quality: no two-model target
        lines.append(f"  family:  {manifest.get('scorer')} (predicts {len(models)} models' quality)")
    else:
        lines.append(f"  family:  {manifest.get('scorer')}" + (f" (target {target})" if target else ""))
    opts = spec.get("options") or {}
    if point and nmodel:
        lines.append(f"  policy:  {describe_nmodel_point(point)}")
    elif point:
        known = {k: v for k, v in point.items() if k in OperatingPoint.__dataclass_fields__}
        lines.append(f"  policy:  {spec.get('name')}, {OperatingPoint(**known).describe()}")
        why = gains_nothing(point) if point.get("strong_share") is not None else None
        if why:
            lines.append(
                f"warning: on its held-out prompts the saved policy gains nothing from routing: {why}; "
                "choose another point with tela calibrate --router DIR --data FILE --strong-share P"
            )
    else:
        lines.append(f"  policy:  {spec.get('name')} {json_dumps(opts)}")
    return lines


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
