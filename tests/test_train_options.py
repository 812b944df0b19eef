"""``tela run`` option handling: config files, overrides, output-dir guards and clear errors (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tela_core.data import sample_path
from tela_core.infra.errors import TelaError
from tela_core.testkit.helpers import run_cli
from tela_core.train import RUN_SUBDIR, RunConfig, check_output, resolve_config, zero3_config


def _run(*args: str) -> object:
    """``tela run ARGS`` in this process (the test kit's runner)."""
    return run_cli("run", *args)


def test_config_file_then_flags_then_set(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(
        "data: d.jsonl\noutput: o\nepochs: 1\nbatch_size: 4\nbackend_options:\n  offload_optimizer: true\n"
    )
    cfg = resolve_config(cfg_file, {"epochs": 2.0, "batch_size": None}, ["backend.offload_params=true"])
    assert cfg.epochs == 2.0  # flag beats file
    assert cfg.batch_size == 4  # file beats default
    assert cfg.backend_options == {"offload_optimizer": True, "offload_params": True}
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d.jsonl"\noutput = "o"\nlearning_rate = 1e-4\n[family_options]\nk = 3\n')
    cfg = resolve_config(toml, {}, [])
    assert cfg.learning_rate == 1e-4 and cfg.family_options == {"k": 3}


def test_seed_defaults() -> None:
    cfg = RunConfig.build({"data": "d", "output": "o"})
    assert (cfg.epochs, cfg.batch_size * cfg.grad_accum, cfg.max_length, cfg.eval_fraction, cfg.seed) == (
        3,
        8,
        2048,
        0.1,
        42,
    )
    assert (cfg.formatter, cfg.backend, cfg.family) == ("role-prefix", "deepspeed-z3", "score-token")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--processes", "0"], "--processes: must be at least 1"),
        (["--set", "oops"], "SECTION.KEY=VALUE"),
        (["--epochs", "-1"], "--epochs"),
    ],
)
def test_bad_options_exit_2_before_writing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    res = _run("--data", str(sample_path()), "--output", str(out), *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not out.exists()


def test_unknown_backend_lists_registered(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _run("--data", str(sample_path()), "--output", str(out), "--backend", "nope")
    assert res.exit_code == 2
    assert "unknown backend 'nope'" in res.output and "deepspeed-z3" in res.output and "lora" in res.output
    assert not out.exists()


def test_unknown_backend_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _run("--data", str(sample_path()), "--output", str(out), "--set", "backend.offload_everything=true")
    assert res.exit_code == 2 and "offload_everything" in res.output
    assert not out.exists()


def test_missing_model_is_an_error_before_any_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _run("--data", str(sample_path()), "--output", str(out), "--model", str(tmp_path / "missing"))
    assert res.exit_code == 2
    assert "no such file or directory" in res.output
    assert not out.exists()


def test_missing_data(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "out"
    res = _run("--data", str(tmp_path / "none.jsonl"), "--output", str(out), "--model", str(tiny_model))
    assert res.exit_code == 2 and "not found" in res.output
    assert not out.exists()


def test_bad_user_deepspeed_config(tmp_path: Path, tiny_model: Path) -> None:
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    out = tmp_path / "out"
    res = _run(
        "--data",
        str(sample_path()),
        "--output",
        str(out),
        "--model",
        str(tiny_model),
        "--set",
        f"backend.ds_config={bad}",
    )
    assert res.exit_code == 2 and f"{bad}:1: not valid JSON" in res.output
    assert not out.exists()


def test_output_guard(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert check_output(out, "abc", force=False) == "new"
    (out / RUN_SUBDIR).mkdir(parents=True)
    (out / RUN_SUBDIR / "run.json").write_text(json.dumps({"fingerprint": "abc", "config": {"epochs": 3}}))
    assert check_output(out, "abc", force=False) == "resume"
    with pytest.raises(TelaError, match=r"different config \(differs in: epochs\).*--force"):
        check_output(out, "xyz", force=False, config={"epochs": 1})
    (out / "tela.json").write_text("{}")
    assert check_output(out, "abc", force=False) == "done"
    assert check_output(out, "xyz", force=True) == "new" and not out.exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(TelaError, match="not a tela run"):
        check_output(other, "abc", force=True)
    assert (other / "notes.txt").exists()


def test_zero3_config_consolidates_on_save() -> None:
    cfg = zero3_config(offload_optimizer=True, offload_params=True)
    zero = cfg["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert cfg["zero_force_ds_cpu_optimizer"] is False


def test_family_without_backend_trains_through_fit(tmp_path: Path) -> None:
    out = tmp_path / "length-router"
    res = _run("--family", "length", "--data", str(sample_path()), "--output", str(out))
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["scorer"] == "length"
    assert (out / "policy.json").exists()
    res = _run("--family", "nope", "--data", str(sample_path()), "--output", str(tmp_path / "x"))
    assert res.exit_code == 2 and "unknown family 'nope'" in res.output and "score-token" in res.output
