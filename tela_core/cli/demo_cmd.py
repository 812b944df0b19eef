"""``tela demo``: train a real score-token router in minutes, judge it, and show it routing.

The steps (train on the bundled MMLU sample, calibrate on training-side prompts it did not train on,
judge on the held-out subjects beside random and the oracle, an ``embedding-knn`` router beside it
when it does not beat random) are :func:`tela_core.eval.demo.run_demo`; the command parses its
options, calls it and prints the :class:`~tela_core.eval.demo.DemoResult`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from tela_core.eval.demo import DEMO_STRONG_SHARE, NOISE_APGR, TRAIN_SAMPLE, DemoResult, run_demo

from .options import HELP, force_option, output_option

__all__ = ["demo", "print_result"]


def _short(model: str) -> str:
    return "weak" if "mixtral" in model.lower() else "strong" if "gpt-4" in model.lower() else model.split("/")[-1][:12]


def _row(name: str, e: Any) -> str:
    return f"  {name:34s} APGR {e.apgr:6.3f}   CPT(50%) {e.cpt50:5.2f}"


@click.command()
@output_option(default=Path("runs/demo"))
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Train on N records sampled with seed 42.",
)
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Training epochs.")
@click.option("--processes", type=int, default=None, help=HELP["processes"])  # tela run's, spelled and explained alike
@click.option(
    "--model",
    default=None,
    metavar="DIR|GGUF",
    help="Base model: a local HF dir or a .gguf file.  [default: smollm2-135m]",
)
@click.option(
    "--calibration",
    type=int,
    default=64,
    show_default=True,
    help="Training-side prompts (not trained on) to calibrate the threshold on.",
)
@click.option(
    "--knn",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Show an embedding-kNN router beside it: when the score-token router does not beat random (auto).",
)
@force_option
def demo(
    output: Path,
    sample: int,
    epochs: float,
    processes: int | None,
    model: str | None,
    calibration: int,
    knn: Literal["auto", "always", "never"],
    force: bool,
) -> None:
    """Train a real router on the bundled MMLU sample (role-prefix, deepspeed-z3, SmolLM2-135M),
    judge it on the bundled held-out subjects beside random and the oracle, and show it routing.
    About 10 minutes on 2 CPU cores.

    OUTPUT becomes the demo router (and OUTPUT-knn the kNN one); a demo router there with another
    config is retrained only with --force."""
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    say(
        f"tela demo: training a score-token router on {sample} records of {TRAIN_SAMPLE} "
        f"({model or 'SmolLM2-135M-Instruct'}, deepspeed-z3, {processes or 1} rank(s))"
    )
    result = run_demo(
        output,
        sample=sample,
        epochs=epochs,
        processes=processes,
        model=model,
        calibration=calibration,
        knn=knn,
        force=force,
        echo=say,
    )
    print_result(result, click.echo)


def print_result(result: DemoResult, echo: Any) -> None:
    """What ``tela demo`` prints of a :class:`~tela_core.eval.demo.DemoResult`."""
    out, router, judged, sample = result.router_dir, result.router, result.judgement, result.config.sample
    echo(
        f"\nrouter: {out.resolve()}  (trained in {result.train_seconds:.0f} s; calibrated and scored in "
        f"{result.score_seconds:.0f} s)"
    )
    echo(
        f"policy: calibrated, threshold w >= {router.threshold:.4f} (sends "
        f"{DEMO_STRONG_SHARE:.0%} of {result.calibrated_on} unseen training-side prompts to the strong model)"
    )
    echo(f"\nheld-out MMLU subjects, bundled sample ({len(result.heldout)} prompts, 15 subjects it never trained on):")
    echo(_row(f"score-token ({sample} records, z3)", judged.router))
    echo(_row("random (mean of 10 seeds)", judged.random))
    echo(_row("oracle", judged.oracle))
    echo("  (APGR, CPT, and why the oracle's APGR passes 1: docs/metrics.md)")
    point = result.policy
    echo(
        f"  calibrated policy here: {point['strong_share']:.0%} strong calls, quality {point['quality']:.3f} "
        f"(weak alone {judged.router.q_weak:.3f}, strong alone {judged.router.q_strong:.3f})"
    )
    lead = judged.router.apgr - judged.random.apgr
    if judged.clearly_beats_random:
        echo(
            f"\nThe score-token router beats random on this sample by {lead:+.3f} "
            f"APGR (300 prompts: differences under ~{NOISE_APGR:.2f} are within noise)."
        )
    elif judged.beats_random:
        echo(
            f"\nThe score-token router did NOT beat random clearly on this sample: APGR {judged.router.apgr:.3f} "
            f"vs {judged.random.apgr:.3f} ({lead:+.3f}), within the noise of 300 prompts (~{NOISE_APGR:.2f}); "
            f"it has seen {sample} examples; docs/benchmarks.md has longer runs."
        )
    else:
        echo(
            f"\nIn {result.train_seconds / 60:.0f} minutes on this machine the score-token router did NOT beat "
            f"random on this sample (APGR {judged.router.apgr:.3f} vs {judged.random.apgr:.3f}); it has seen "
            f"{sample} examples; docs/benchmarks.md has longer runs."
        )
    if result.knn is not None:
        knn = result.knn
        echo(
            f"For comparison, a kNN router on sentence embeddings, trained in seconds on all {knn.trained_on} "
            "training-side prompts:"
        )
        echo(_row(f"embedding-knn (k=50, {knn.trained_on} prompts)", knn.judgement.router))
        from tela_core.models.vector_cache import cache_dir

        cached = cache_dir() / "embeddings"
        echo(f"  (kNN trained and scored in {knn.seconds:.0f} s, sentence embeddings cached in {cached})")
    echo("\nrouting held-out prompts (lowest w, then highest w; [what the two models actually did]):")
    weak, strong = router.models[0], router.models[-1]
    verdict = {True: "right", False: "wrong"}
    for r, d in result.decisions():
        o = r.outcomes or {}
        did = f"weak {verdict[o.get(weak, 0) >= 0.5]}, strong {verdict[o.get(strong, 0) >= 0.5]}"
        q = " ".join(r.prompt.split())
        echo(f"  w={d.w:.3f} -> {_short(d.model):9s} [{did}]  {q[:70] + ('…' if len(q) > 70 else '')}")
    echo(f'w = P(strong model needed) = P([[1]]..[[3]]); route with: tela route --router {out} "your question"')


def register(cli: click.Group) -> None:
    """Attach ``tela demo`` to ``cli``."""
    cli.add_command(demo)
