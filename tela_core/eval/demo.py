"""What ``tela demo`` does, as a library: train a real score-token router on the bundled MMLU
sample, calibrate it on training-side prompts it did not train on, judge it on the bundled held-out
subjects beside random and the oracle, and pick the prompts to show it routing.

1. :func:`demo_config`: ``tela run``'s config for the demo router (SmolLM2-135M-Instruct,
   ``role-prefix``, ``deepspeed-z3``, a seeded sample of the 42 training subjects).
2. :func:`calibration_records`: training-side prompts that run did not train on (seeded); the
   ``calibrated`` policy is saved in the router as ``tela calibrate`` saves it
   (:func:`calibrate_on`), sending :data:`DEMO_STRONG_SHARE` of them to the strong model.
3. :func:`judge_on_heldout`: the bundled held-out sample (300 prompts, 15 subjects): APGR and
   CPT(50%) beside :func:`tela_core.eval.baselines`, and where the calibrated policy lands.
4. :func:`extreme_decisions`: the lowest- and highest-``w`` held-out prompts with the router's
   decisions (weak model, then strong), for showing what it does.
5. :func:`knn_beside`: an ``embedding-knn`` router on the same training-side prompts (seconds).

:func:`run_demo` runs them in order and returns a :class:`DemoResult`; ``tela demo`` prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tela_core.components import Scores
from tela_core.data import sample_path
from tela_core.data.detect import open_source
from tela_core.data.records import Record
from tela_core.plugins.discovery import get_registry
from tela_core.routing.artifact import write_policy
from tela_core.routing.router import Decision, Router
from tela_core.train import RunConfig, split_records
from tela_core.train import run as run_pipeline

from .outcomes import OutcomeArrays, outcome_arrays
from .replay import Evaluation, baselines, evaluate_scores, policy_point

__all__ = [
    "DEMO_STRONG_SHARE",
    "TRAIN_SAMPLE",
    "HELDOUT_SAMPLE",
    "DemoJudgement",
    "DemoResult",
    "demo_config",
    "bundled_records",
    "calibration_records",
    "calibrate_on",
    "judge_on_heldout",
    "extreme_decisions",
    "knn_beside",
    "KnnResult",
    "finish_demo",
    "run_demo",
]

#: Share of calibration prompts the demo's calibrated policy sends to the strong model.
DEMO_STRONG_SHARE = 0.5
#: The bundled samples: the 42 training-side MMLU subjects, and the 15 held-out ones.
TRAIN_SAMPLE = "mmlu_sample.jsonl"
HELDOUT_SAMPLE = "mmlu_heldout_sample.jsonl"

KnnMode = Literal["auto", "always", "never"]
Say = Callable[[str], None]


def demo_config(
    output: Path, sample: int = 64, epochs: float = 1.0, processes: int | None = None, model: str | None = None
) -> RunConfig:
    """``tela run``'s config for the demo router: ``sample`` records of the bundled training-side
    sample, ``role-prefix``, ``deepspeed-z3`` on ``processes`` ranks (1 unless given), ``model``
    (None: SmolLM2-135M-Instruct)."""
    return RunConfig.build(
        {
            "data": sample_path(),
            "formatter": "role-prefix",
            "backend": "deepspeed-z3",
            "model": model,
            "output": output,
            "processes": 1 if processes is None else processes,
            "sample": sample,
            "epochs": epochs,
            "learning_rate": 1e-4,
            "batch_size": 8,
            "max_length": 512,
            "save_steps": 0,
        }
    )


def bundled_records(name: str) -> list[Record]:
    """The records of a bundled sample (:data:`TRAIN_SAMPLE`, :data:`HELDOUT_SAMPLE`)."""
    path = sample_path(name)
    return list(open_source(path, "jsonl").records(path))


def calibration_records(cfg: RunConfig, n: int, train_side: Sequence[Record] | None = None) -> list[Record]:
    """``n`` training-side records the run of ``cfg`` did not train on (nor evaluate on), drawn with
    the run's seed as ``tela run`` sampled its own."""
    import numpy as np

    records = list(train_side) if train_side is not None else bundled_records(TRAIN_SAMPLE)
    used = {r.prompt for part in split_records(cfg, records) for r in part}
    unseen = [r for r in records if r.prompt not in used]
    rng = np.random.RandomState(cfg.seed)
    return [unseen[int(i)] for i in rng.permutation(len(unseen))[:n]]


def calibrate_on(router_dir: Path, prompts: Sequence[str], share: float, data: str) -> Router:
    """Score ``prompts``, save the ``calibrated`` policy (threshold at ``share``) in the router,
    and return the reloaded :class:`~tela_core.Router`."""
    router = Router.load(router_dir)
    w = router.score(list(prompts))
    policy = get_registry().create("policy", "calibrated", {"strong_share": share}).calibrate(w, data=data)
    models = [router.models[0], router.models[-1]]
    write_policy(router_dir, "calibrated", policy.options.model_dump(mode="json"), models)
    return Router.load(router_dir)


#: APGR differences under this, on the 300 held-out prompts, are within noise
NOISE_APGR = 0.05


@dataclass
class DemoJudgement:
    """A router's ``w`` on held-out records judged beside random (10 seeds) and the oracle."""

    router: Evaluation
    random: Evaluation
    oracle: Evaluation
    arrays: OutcomeArrays

    @property
    def beats_random(self) -> bool:
        return self.router.apgr > self.random.apgr

    @property
    def clearly_beats_random(self) -> bool:
        """Beats random by at least :data:`NOISE_APGR`: a smaller lead on the 300 held-out prompts is noise."""
        return self.router.apgr - self.random.apgr >= NOISE_APGR


def judge_on_heldout(w: Any, records: Sequence[Record], models: Sequence[str]) -> DemoJudgement:
    """``w`` on ``records`` judged for the pair ``models``' first and last, beside the baselines."""
    arrays = outcome_arrays(records, models[0], models[-1])
    base = baselines(arrays)
    router = evaluate_scores(w, arrays.weak, arrays.strong, name="router")
    return DemoJudgement(router=router, random=base.random, oracle=base.oracle, arrays=arrays)


def extreme_decisions(router: Router, records: Sequence[Record], w: Any, k: int = 3) -> list[tuple[Record, Decision]]:
    """The ``k`` lowest- and ``k`` highest-``w`` records of ``records`` (lowest first) with the
    router's decision for each."""
    import numpy as np

    order = np.argsort(np.asarray(w), kind="stable")
    picks = list(order[:k]) + list(order[-k:])
    decisions = router.decisions(Scores(w=np.asarray(w)[picks]))
    return [(records[int(i)], d) for i, d in zip(picks, decisions)]


@dataclass
class KnnResult:
    """The ``embedding-knn`` router trained beside the demo router, judged on the same records."""

    router_dir: Path
    judgement: DemoJudgement
    trained_on: int
    seconds: float


def knn_beside(
    output: Path, heldout: Sequence[Record], models: Sequence[str], train_on: int, echo: Say = print
) -> KnnResult:
    """Train an ``embedding-knn`` router on the whole bundled training-side sample into ``output``
    (replacing what is there) and judge it on ``heldout`` for ``models``."""
    t0 = time.time()
    cfg = RunConfig.build({"data": sample_path(), "family": "embedding-knn", "output": output, "eval_fraction": 0})
    # its lines named: they come before the demo router's summary, and its notes are about this router
    run_pipeline(cfg, force=True, echo=lambda line: echo(f"embedding-knn beside it: {line}"))
    w = Router.load(output).score([r.prompt for r in heldout])
    return KnnResult(output, judge_on_heldout(w, heldout, models), train_on, time.time() - t0)


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the router, how it was calibrated and how it fared held out."""

    router_dir: Path
    router: Router
    config: RunConfig
    calibrated_on: int
    heldout: list[Record]
    scores: Scores
    judgement: DemoJudgement
    #: where the calibrated policy lands on the held-out records (:func:`tela_core.eval.policy_point`)
    policy: dict[str, Any]
    train_seconds: float
    score_seconds: float
    train_side: int
    knn: KnnResult | None = None

    def decisions(self, k: int = 3) -> list[tuple[Record, Decision]]:
        """:func:`extreme_decisions` of the held-out records."""
        return extreme_decisions(self.router, self.heldout, self.scores.w, k)


def finish_demo(
    router_dir: Path,
    cfg: RunConfig,
    calibration: int = 64,
    knn: KnnMode = "auto",
    train_seconds: float = 0.0,
    echo: Say = print,
) -> DemoResult:
    """Everything after training the router in ``router_dir`` (trained by ``cfg``): calibrate it on
    ``calibration`` unseen training-side prompts, judge it held out, and train the kNN router beside
    it (``always``, ``never``, or ``auto``: when it does not clearly beat random)."""
    import numpy as np

    train_side = bundled_records(TRAIN_SAMPLE)
    calib = calibration_records(cfg, calibration, train_side)
    t0 = time.time()
    router = calibrate_on(
        router_dir, [r.prompt for r in calib], DEMO_STRONG_SHARE, f"{sample_path().name} (not trained on)"
    )
    heldout = bundled_records(HELDOUT_SAMPLE)
    scores = router.scores([r.prompt for r in heldout])
    judged = judge_on_heldout(scores.w, heldout, router.models)
    result = DemoResult(
        router_dir=router_dir,
        router=router,
        config=cfg,
        calibrated_on=len(calib),
        heldout=heldout,
        scores=scores,
        judgement=judged,
        policy=policy_point(np.asarray(scores.w) >= router.threshold, judged.arrays),
        train_seconds=train_seconds,
        score_seconds=time.time() - t0,
        train_side=len(train_side),
    )
    if knn == "always" or (knn == "auto" and not judged.clearly_beats_random):
        knn_dir = router_dir.parent / f"{router_dir.name}-knn"
        result.knn = knn_beside(knn_dir, heldout, router.models, len(train_side), echo)
    return result


def run_demo(
    output: Path,
    *,
    sample: int = 64,
    epochs: float = 1.0,
    processes: int | None = None,
    model: str | None = None,
    calibration: int = 64,
    knn: KnnMode = "auto",
    force: bool = False,
    echo: Say = print,
) -> DemoResult:
    """Train the demo router into ``output`` (:func:`demo_config`; a demo router there with another
    config is retrained only with ``force``), then :func:`finish_demo`. ``echo`` gets the progress
    lines (training's included)."""
    cfg = demo_config(output, sample, epochs, processes, model)
    t0 = time.time()
    out = run_pipeline(cfg, force=force, echo=echo)
    return finish_demo(Path(out), cfg, calibration, knn, time.time() - t0, echo)
