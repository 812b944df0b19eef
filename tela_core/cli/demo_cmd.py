"""``tela demo``: train a real score-token router in minutes, judge it, and show it routing.

1. Train SmolLM2-135M-Instruct with ``deepspeed-z3`` on a seeded sample of the bundled training-side
   MMLU sample (42 training subjects), as ``tela run`` does.
2. Calibrate a threshold on training-side prompts the router did not train on (``calibrated``
   policy, saved in the router like ``tela calibrate`` saves it): half of them go to the strong model.
3. Evaluate on the bundled held-out sample (300 prompts of the 15 held-out subjects): APGR and
   CPT(50%) beside random (10 seeds) and the oracle, and where the calibrated policy lands.
4. Route a handful of held-out prompts with the :class:`tela_core.Router`: the lowest-``w`` ones
   (weak model) and the highest (strong model), each with what the two models actually did.
5. When the router does not beat random there, say so, and train an ``embedding-knn`` router on
   the same 400 training-side prompts (seconds) to show beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import click

from tela_core.data.detect import open_source
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import write_policy
from tela_core.routing.router import Router

from .. import eval as ev
from ..components import Scores
from ..data import sample_path
from ..train import RunConfig, split_records
from ..train import run as run_pipeline
from .options import HELP, force_option, output_option

__all__ = ["demo", "judge", "show_decisions", "calibrate_on"]

#: Share of calibration prompts the demo's calibrated policy sends to the strong model.
DEMO_STRONG_SHARE = 0.5


def _records(name: str) -> list[Any]:
    path = sample_path(name)
    return list(open_source(path, "jsonl").records(path))


def calibrate_on(router_dir: Path, prompts: Sequence[str], share: float, data: str) -> Any:
    """Score ``prompts``, save the ``calibrated`` policy (threshold at ``share``) in the router,
    and return the reloaded :class:`~tela_core.Router`."""
    router = Router.load(router_dir)
    w = router.score(list(prompts))
    policy = get_registry().create("policy", "calibrated", {"strong_share": share}).calibrate(w, data=data)
    models = [router.models[0], router.models[-1]]
    write_policy(router_dir, "calibrated", policy.options.model_dump(mode="json"), models)
    return Router.load(router_dir)


def judge(w: Any, records: Sequence[Any], models: Sequence[str]) -> dict[str, Any]:
    """The router's, random's and the oracle's evaluations of ``w`` on ``records`` (weak, strong =
    ``models``' first and last)."""
    arrays = ev.outcome_arrays(records, models[0], models[-1])
    return {
        "router": ev.evaluate_scores(w, arrays.weak, arrays.strong, name="router"),
        "random": ev.random_baseline(arrays.weak, arrays.strong),
        "oracle": ev.evaluate_scores(
            ev.oracle_scores(arrays.weak, arrays.strong), arrays.weak, arrays.strong, name="oracle"
        ),
        "arrays": arrays,
    }


def show_decisions(router: Any, records: Sequence[Any], w: Any, echo: Callable[[str], None], k: int = 3) -> list[Any]:
    """Print the ``k`` lowest- and ``k`` highest-``w`` prompts of ``records`` with the router's
    decision and what the two models did; return those decisions (lowest first)."""
    import numpy as np

    order = np.argsort(np.asarray(w), kind="stable")
    picks = list(order[:k]) + list(order[-k:])
    weak, strong = router.models[0], router.models[-1]
    decisions = router.decisions(Scores(w=np.asarray(w)[picks]))
    for i, d in zip(picks, decisions):
        r = records[int(i)]
        o = r.outcomes or {}
        verdict = {True: "right", False: "wrong"}
        did = f"weak {verdict[o.get(weak, 0) >= 0.5]}, strong {verdict[o.get(strong, 0) >= 0.5]}"
        q = " ".join(r.prompt.split())
        echo(f"  w={d.w:.3f} -> {_short(d.model):9s} [{did}]  {q[:70] + ('…' if len(q) > 70 else '')}")
    return decisions


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
    import numpy as np

    processes = 1 if processes is None else processes
    cfg = RunConfig.build(
        {
            "data": sample_path(),
            "formatter": "role-prefix",
            "backend": "deepspeed-z3",
            "model": model,
            "output": output,
            "processes": processes,
            "sample": sample,
            "epochs": epochs,
            "learning_rate": 1e-4,
            "batch_size": 8,
            "max_length": 512,
            "save_steps": 0,
        }
    )
    t0 = time.time()
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    say(
        f"tela demo: training a score-token router on {sample} records of {sample_path().name} "
        f"({model or 'SmolLM2-135M-Instruct'}, deepspeed-z3, {processes} rank(s))"
    )
    out = run_pipeline(cfg, force=force, echo=say)
    trained = time.time() - t0

    # calibrate on training-side prompts the router did not see (seeded, as tela run sampled)
    train_side = _records("mmlu_sample.jsonl")
    used = {r.prompt for part in split_records(cfg, train_side) for r in part}
    unseen = [r for r in train_side if r.prompt not in used]
    rng = np.random.RandomState(cfg.seed)
    calib = [unseen[int(i)] for i in rng.permutation(len(unseen))[:calibration]]
    t1 = time.time()
    router = calibrate_on(out, [r.prompt for r in calib], DEMO_STRONG_SHARE, f"{sample_path().name} (not trained on)")
    heldout = _records("mmlu_heldout_sample.jsonl")
    scores = router.scores([r.prompt for r in heldout])
    result = judge(scores.w, heldout, router.models)
    scored = time.time() - t1

    click.echo(f"\nrouter: {out.resolve()}  (trained in {trained:.0f} s; calibrated and scored in {scored:.0f} s)")
    click.echo(
        f"policy: calibrated, threshold w >= {router.threshold:.4f} (sends {DEMO_STRONG_SHARE:.0%} of "
        f"{len(calib)} unseen training-side prompts to the strong model)"
    )
    click.echo(f"\nheld-out MMLU subjects, bundled sample ({len(heldout)} prompts, 15 subjects it never trained on):")
    click.echo(_row(f"score-token ({sample} records, z3)", result["router"]))
    click.echo(_row("random (mean of 10 seeds)", result["random"]))
    click.echo(_row("oracle", result["oracle"]))

    point = ev.policy_point(np.asarray(scores.w) >= router.threshold, result["arrays"])
    click.echo(
        f"  calibrated policy here: {point['strong_share']:.0%} strong calls, quality {point['quality']:.3f} "
        f"(weak alone {result['router'].q_weak:.3f}, strong alone {result['router'].q_strong:.3f})"
    )
    beats = result["router"].apgr > result["random"].apgr
    if beats:
        click.echo(
            "\nThe score-token router beats random on this sample by "
            f"{result['router'].apgr - result['random'].apgr:+.3f} "
            "APGR (300 prompts: differences under ~0.05 are within noise)."
        )
    else:
        click.echo(
            f"\nIn {trained / 60:.0f} minutes on this machine the score-token router did NOT beat random on this "
            f"sample (APGR {result['router'].apgr:.3f} vs {result['random'].apgr:.3f}); it has seen {sample} "
            "examples; docs/benchmarks.md has longer runs."
        )
    if knn == "always" or (knn == "auto" and not beats):
        click.echo(
            f"For comparison, a kNN router on sentence embeddings, trained in seconds on all {len(train_side)} "
            "training-side prompts:"
        )
        knn_out = out.parent / f"{out.name}-knn"
        t2 = time.time()
        knn_cfg = RunConfig.build(
            {"data": sample_path(), "family": "embedding-knn", "output": knn_out, "eval_fraction": 0}
        )
        run_pipeline(knn_cfg, force=True, echo=say)

        kw = Router.load(knn_out).score([r.prompt for r in heldout])
        click.echo(
            _row(f"embedding-knn (k=50, {len(train_side)} prompts)", judge(kw, heldout, router.models)["router"])
        )
        click.echo(f"  (kNN trained and scored in {time.time() - t2:.0f} s, sentence embeddings cached in $TELA_CACHE)")
    click.echo("\nrouting held-out prompts (lowest w, then highest w; [what the two models actually did]):")
    show_decisions(router, heldout, scores.w, click.echo)
    click.echo(f'w = P(strong model needed) = P([[1]]..[[3]]); route with: tela route --router {out} "your question"')


def register(cli: click.Group) -> None:
    """Attach ``tela demo`` to ``cli``."""
    cli.add_command(demo)
