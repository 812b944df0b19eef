"""The typed contract between ``tela run``, a backend and the shared training worker (issue 27):
the job's fields, ``worker.json`` written by the launcher and read by the worker, the SFTConfig
built from it, and how a rerun finds where to resume. Fast: nothing trains here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tela_core import TelaDeprecationWarning, TelaError, TrainJob, TrainSettings
from tela_core.train import LoraSettings, NodeLaunch, RunConfig, WorkerSpec, run_worker, worker_spec
from tela_core.train import launch as launch_module
from tela_core.train.worker import RecordingCollator, last_complete_checkpoint, sft_config


def settings(**kw: Any) -> TrainSettings:
    """``tela run``'s defaults, through the RunConfig a run builds them from."""
    return RunConfig.build({"data": "d.jsonl", "output": "out", **kw}).train_settings()


def job(tmp_path: Path, **kw: Any) -> TrainJob:
    kw.setdefault("train", settings())
    return TrainJob(
        model="base",
        output_dir=tmp_path / "out",
        train_file=tmp_path / "train.jsonl",
        eval_file=tmp_path / "eval.jsonl",
        formatter="role-prefix",
        **kw,
    )


def test_run_config_hands_every_training_flag_to_the_job() -> None:
    s = settings(
        epochs=2,
        learning_rate=1e-4,
        batch_size=4,
        grad_accum=2,
        max_length=512,
        max_steps=7,
        warmup_ratio=0.25,
        save_steps=3,
        seed=5,
    )
    assert s.model_dump() == {
        "epochs": 2.0,
        "learning_rate": 1e-4,
        "batch_size": 4,
        "grad_accum": 2,
        "max_length": 512,
        "max_steps": 7,
        "warmup_ratio": 0.25,
        "save_steps": 3,
        "seed": 5,
    }


def test_worker_spec_round_trip(tmp_path: Path) -> None:
    """What the launcher writes is what the worker reads, field for field; nothing the worker reads
    is left to a private default (lr_scheduler and weight_decay were read but never written)."""
    lora = LoraSettings(r=8, alpha=16, dropout=0.1, target_modules=["q_proj", "v_proj"])
    spec = WorkerSpec.for_job(job(tmp_path, trust_remote_code=True), {"zero_optimization": {"stage": 3}}, lora, True)
    run = tmp_path / "run"
    run.mkdir()
    path = spec.write(run)
    assert path == run / "worker.json"
    assert WorkerSpec.read(run) == spec
    written = json.loads(path.read_text())
    assert set(written) == set(WorkerSpec.model_fields)
    assert set(written["train"]) == set(TrainSettings.model_fields)
    assert "lr_scheduler" not in written["train"] and "weight_decay" not in written["train"]
    assert written["eval_file"] == str(tmp_path / "eval.jsonl")
    assert written["lora"]["target_modules"] == ["q_proj", "v_proj"]


def test_a_bad_worker_json_names_the_file_and_the_field(tmp_path: Path) -> None:
    spec = WorkerSpec.for_job(job(tmp_path))
    spec.write(tmp_path)
    data = json.loads((tmp_path / "worker.json").read_text())
    data["train"]["lr_scheduler"] = "cosine"  # a key no one writes is refused, not silently ignored
    (tmp_path / "worker.json").write_text(json.dumps(data))
    with pytest.raises(TelaError, match=r"worker\.json: bad worker spec: train\.lr_scheduler"):
        WorkerSpec.read(tmp_path)
    (tmp_path / "worker.json").write_text("{")
    with pytest.raises(TelaError, match=r"worker\.json: cannot read"):
        WorkerSpec.read(tmp_path)


def test_sft_config_is_built_from_the_spec(tmp_path: Path) -> None:
    spec = WorkerSpec.for_job(
        job(
            tmp_path,
            train=settings(
                batch_size=4, grad_accum=2, epochs=2, learning_rate=1e-4, max_length=256, seed=7, save_steps=0
            ),
        ),
        gradient_checkpointing=True,
    )
    args = sft_config(spec, tmp_path / "ckpt", on_gpu=False, bf16=False)
    assert (args.per_device_train_batch_size, args.per_device_eval_batch_size) == (4, 4)
    assert args.gradient_accumulation_steps == 2
    assert (args.num_train_epochs, args.learning_rate, args.max_length, args.seed) == (2.0, 1e-4, 256, 7)
    assert args.max_steps == -1  # no --max-steps: the epochs decide
    assert args.save_strategy == "no"  # --save-steps 0: no checkpoints
    assert args.gradient_checkpointing and args.completion_only_loss and not args.packing
    assert args.use_cpu and args.deepspeed is None and args.output_dir == str(tmp_path / "ckpt")
    assert args.lr_scheduler_type == "linear" and args.weight_decay == 0.0  # transformers' defaults, said nowhere else


def test_warmup_ratio_is_a_share_of_all_steps(tmp_path: Path) -> None:
    """--warmup-ratio 0.1 warms up over a tenth of the steps, whatever their number."""
    spec = WorkerSpec.for_job(job(tmp_path, train=settings(warmup_ratio=0.1, max_steps=50, save_steps=10)))
    args = sft_config(spec, tmp_path / "ckpt", on_gpu=False, bf16=False)
    assert args.max_steps == 50 and args.save_strategy == "steps" and args.save_steps == 10
    assert args.get_warmup_steps(50) == 5 and args.get_warmup_steps(400) == 40
    none = sft_config(WorkerSpec.for_job(job(tmp_path)), tmp_path / "ckpt", on_gpu=False, bf16=False)
    assert none.get_warmup_steps(400) == 0


def test_resume_takes_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    assert last_complete_checkpoint(ckpts) is None  # first attempt: nothing to resume
    for n in (3, 9, 10):
        (ckpts / f"checkpoint-{n}").mkdir(parents=True)
        (ckpts / f"checkpoint-{n}" / "trainer_state.json").write_text("{}")
    (ckpts / "checkpoint-20").mkdir()  # killed mid-save: no trainer_state.json
    (ckpts / "checkpoint-final").mkdir()
    (ckpts / "checkpoint-final" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(ckpts) == ckpts / "checkpoint-10"  # by number, not by name


def test_the_collator_records_what_each_rank_saw() -> None:
    got: list[list[dict[str, Any]]] = []
    seen: list[int] = []
    collate = RecordingCollator(lambda rows: got.append(rows) or {"n": len(rows)}, seen)
    assert collate(
        [
            {"input_ids": [1], "labels": [2], "tela_idx": 4, "prompt": "p"},
            {"input_ids": [3], "labels": [4], "tela_idx": 1, "completion": "c"},
        ]
    ) == {"n": 2}
    assert seen == [4, 1]
    assert got == [[{"input_ids": [1], "labels": [2]}, {"input_ids": [3], "labels": [4]}]]


def test_run_worker_launches_the_job_with_its_typed_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one launch call both builtin backends make: the job's run dir, ranks, hostfile, quiet
    and node placement reach the launcher, and the spec is the typed one."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(launch_module, "launch_workers", lambda *a, **kw: calls.append((a, kw)) or {"ok": 1})
    nodes = NodeLaunch(nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29500)
    j = job(tmp_path, run_dir=tmp_path / "run", quiet=True, nodes=nodes, processes=3, hostfile=None)
    lora = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules="all-linear")
    assert run_worker(j, lora=lora) == {"ok": 1}
    (run_dir, module, spec, processes, hostfile), kw = calls[0]
    assert (run_dir, module, processes, hostfile, kw) == (
        tmp_path / "run",
        "tela_core.train.worker",
        3,
        None,
        {"quiet": True, "nodes": nodes},
    )
    assert isinstance(spec, WorkerSpec) and spec.lora == lora and spec.deepspeed is None and spec.train == j.train


def test_the_deepspeed_backend_hands_its_options_to_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tela_core.plugins.discovery import get_registry

    specs: list[WorkerSpec] = []
    monkeypatch.setattr(launch_module, "launch_workers", lambda _run, _module, spec, *a, **kw: specs.append(spec) or {})
    options = {"gradient_checkpointing": True, "offload_optimizer": True}
    backend = get_registry().create("backend", "deepspeed-z3", options)
    backend.train(job(tmp_path))
    assert specs[0].gradient_checkpointing and specs[0].lora is None
    assert specs[0].deepspeed is not None
    assert specs[0].deepspeed["zero_optimization"]["offload_optimizer"]["device"] == "cpu"


def test_a_job_built_the_0_2_way_keeps_working(tmp_path: Path) -> None:
    """A third-party backend that builds a TrainJob from a config dict, or reads its keys, still
    works: the fields are filled from it, and reading a key warns naming the field."""
    old = TrainJob(
        model="m",
        output_dir=tmp_path / "out",
        train_file=tmp_path / "t.jsonl",
        eval_file=None,
        formatter="role-prefix",
        config={
            "train": settings().model_dump(),
            "run_dir": str(tmp_path / "r"),
            "quiet": True,
            "nodes": {"nnodes": 1},
            "family": "score-token",
            "formatter_options": {"x": 1},
            "mine": 2,
        },
    )
    assert (old.run_dir, old.quiet, old.nodes, old.train, old.family, old.formatter_options) == (
        tmp_path / "r",
        True,
        NodeLaunch(),
        settings(),
        "score-token",
        {"x": 1},
    )
    new = job(tmp_path, run_dir=tmp_path / "r", quiet=True, family="score-token")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert new.config["run_dir"] == str(tmp_path / "r") and new.config.get("quiet") is True
        assert new.config["train"] == settings().model_dump() and new.config["family"] == "score-token"
        assert old.config["mine"] == 2
    assert [w.category for w in caught] == [TelaDeprecationWarning] * 4
    assert str(caught[0].message).startswith("TrainJob.config['run_dir'] is deprecated: use TrainJob.run_dir instead")
    assert caught[0].filename == __file__  # the warning points at the backend's line
    assert (
        TrainJob(model="m", output_dir=tmp_path / "o", train_file=tmp_path / "t", eval_file=None, formatter="f").run_dir
        == tmp_path / "o" / ".tela"
    )


def test_worker_spec_shim_warns_and_returns_the_dict(tmp_path: Path) -> None:
    with pytest.warns(TelaDeprecationWarning, match="use tela_core.train.run_worker"):
        d = worker_spec(job(tmp_path), None, {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": "all-linear"})
    assert WorkerSpec.model_validate(d).lora == LoraSettings(r=2, alpha=4, dropout=0.0, target_modules="all-linear")
