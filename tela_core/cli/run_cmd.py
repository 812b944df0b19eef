"""``tela run`` (train a router end to end) and ``tela demo`` (the default main job).

Settings come from defaults, then ``--config FILE`` (YAML or TOML), then the flags given on the
command line; ``--set backend.KEY=VALUE`` / ``--set family.KEY=VALUE`` set component options.
Rerunning the same command on the same ``--output`` resumes from the last checkpoint; a different
config there is refused unless ``--force``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

__all__ = ["register", "run", "demo"]

#: CLI parameter -> RunConfig field, for the flags that map one to one
_FIELDS = (
    "source", "data", "formatter", "family", "backend", "model", "output", "processes", "hostfile",
    "trust_remote_code", "epochs", "learning_rate", "batch_size", "grad_accum", "max_length",
    "max_steps", "warmup_ratio", "save_steps", "sample", "eval_fraction", "seed",
)


def register(cli: click.Group) -> None:
    """Attach ``tela run`` and ``tela demo`` to ``cli``."""
    cli.add_command(run)
    cli.add_command(demo)


@click.command()
@click.option("--source", default=None, metavar="NAME", help="Data source (default: detected from --data).")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Training data (seed JSONL or outcome data).")
@click.option("--formatter", default=None, metavar="NAME", help="Prompt formatter.  [default: role-prefix]")
@click.option("--family", default=None, metavar="NAME", help="Router family (scorer).  [default: score-token]")
@click.option("--backend", default=None, metavar="NAME", help="Trainer backend for families trained by one.  [default: deepspeed-z3]")
@click.option("--model", default=None, metavar="DIR|GGUF", help="Base model: a local HF dir or a .gguf file.  [default: smollm2-135m]")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Output dir: the router artifact.")
@click.option("--processes", type=int, default=None, help="Training processes (ranks) on this node.  [default: 1]")
@click.option("--hostfile", type=click.Path(path_type=Path), default=None, help="DeepSpeed hostfile for multi-node runs.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML/TOML file of run options.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Component option, e.g. --set backend.offload_optimizer=true (repeatable).")
@click.option("--epochs", type=float, default=None, help="Training epochs.  [default: 3, as the seed]")
@click.option("--learning-rate", "--lr", "learning_rate", type=float, default=None, help="Peak learning rate.  [default: 5e-5]")
@click.option("--batch-size", type=int, default=None, help="Examples per rank per step.  [default: 8]")
@click.option("--grad-accum", type=int, default=None, help="Gradient accumulation steps.  [default: 1]")
@click.option("--max-length", type=int, default=None, help="Longest example in tokens (no padding to it).  [default: 2048]")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--warmup-ratio", type=float, default=None, help="Share of steps for LR warm-up.  [default: 0]")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps (0: never).  [default: 50]")
@click.option("--sample", type=int, default=None, help="Train on N records sampled with seed 42.")
@click.option("--eval-fraction", type=float, default=None, help="Held-out share for eval loss.  [default: 0.1]")
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 42]")
@click.option("--trust-remote-code/--no-trust-remote-code", default=None, help="Allow a model's own code.  [default: off]")
@click.option("--force", is_flag=True, help="Replace an existing run with a different config.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def run(config_file: Path | None, overrides: tuple[str, ...], force: bool, quiet: bool, **flags: Any) -> None:
    """Train a router: prepare data, fine-tune, and write a self-describing router artifact.

    \b
    Example:
      tela run --data train.jsonl --formatter role-prefix --backend deepspeed-z3 \\
               --model ./SmolLM2-135M-Instruct.Q4_1.gguf --output runs/router --processes 2
    """
    from ..pipeline import resolve_config
    from ..pipeline import run as run_pipeline

    cfg = resolve_config(config_file, {k: v for k, v in flags.items() if k in _FIELDS}, overrides)
    t0 = time.time()
    out = run_pipeline(cfg, force=force, quiet=quiet, echo=lambda m: click.echo(m, err=True))
    click.echo(f"router written to {out} ({time.time() - t0:.0f} s)", err=True)
    click.echo(str(out))


DEMO_QUESTIONS = (
    "What is 2 + 2?",
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain why this is open.",
)


@click.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Where to write the demo router.")
@click.option("--sample", type=int, default=64, show_default=True, help="Records of the bundled sample to use.")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--processes", type=int, default=1, show_default=True, help="Training ranks.")
@click.option("--model", default=None, metavar="DIR|GGUF", help="Base model.  [default: smollm2-135m]")
@click.option("--force", is_flag=True, help="Retrain even if the demo router exists with another config.")
def demo(output: Path, sample: int, epochs: float, processes: int, model: str | None, force: bool) -> None:
    """Train a real router on the bundled MMLU sample (role-prefix, deepspeed-z3, SmolLM2-135M),
    then show what it predicts for two questions. About 10 minutes on 2 CPU cores."""
    from ..data import sample_path
    from ..pipeline import RunConfig
    from ..pipeline import run as run_pipeline
    from ..router import Router

    cfg = RunConfig.build({
        "data": sample_path(), "formatter": "role-prefix", "backend": "deepspeed-z3", "model": model,
        "output": output, "processes": processes, "sample": sample, "epochs": epochs,
        "learning_rate": 1e-4, "batch_size": 8, "max_length": 512, "save_steps": 0,
    })
    t0 = time.time()
    click.echo(f"tela demo: training a score-token router on {sample} records of {cfg.data.name} "
               f"(SmolLM2-135M, deepspeed-z3, {processes} rank(s))", err=True)
    out = run_pipeline(cfg, force=force, echo=lambda m: click.echo(m, err=True))
    trained = time.time() - t0
    router = Router.load(out)
    spec = router.policy_spec
    scores = router.scores(list(DEMO_QUESTIONS))
    chosen = [d.model for d in router.decisions(scores)]
    click.echo(f"\nrouter: {out.resolve()}  (trained in {trained:.0f} s)")
    click.echo(f"policy: {spec.get('name')} {spec.get('options')}")
    for i, q in enumerate(DEMO_QUESTIONS):
        exp = scores.expected[i] if scores.expected is not None else float("nan")
        click.echo(f"  w={scores.w[i]:.3f}  expected score={exp:.2f}  -> {chosen[i]}  {q}")
    click.echo(f"w = P(strong model needed); route with: tela route --router {out} \"your question\"")
