"""Kill tests: SIGKILL a long command at a random moment, run it again, and the result equals an
uninterrupted run's (docs/reliability.md). The moment is drawn at random (the seed is printed, so a
failure can be replayed with TELA_KILL_SEED); the whole process group dies, launcher and ranks too,
as when a machine is shut down or a job is preempted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from training_support import TrainedRun

from tela_core.data import sample_path
from tela_core.testkit.helpers import run_cli

TELA = str(Path(sys.executable).with_name("tela"))
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("TELA_KILL_SEED") or time.time_ns() % 2**31)
    print(f"kill-test seed {seed} (replay with TELA_KILL_SEED={seed})")
    return random.Random(seed)


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TELA_CACHE": str(tmp_path / "cache")}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return time.monotonic() - t0


def _kill_at(cmd: list[str], env: dict[str, str], at: float) -> int | None:
    """Start ``cmd`` in its own process group, SIGKILL the group after ``at`` seconds; the exit
    code if it finished first, else None."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        p.wait(timeout=at)
        print(f"finished before the kill at {at:.2f} s")
        return p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        print(f"killed at {at:.2f} s")
        return None


def _leftovers(folder: Path) -> list[str]:
    """Hidden staging dirs and temporary files a killed writer left and the rerun did not clean.
    (A killed writer's lock file may stay until the next writer of that path: the kernel has
    released its lock, so it blocks nobody.)"""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob(".*")
        if ".partial-" in p.name or ".old-" in p.name or p.name.endswith(".tmp") or p.name.startswith(".tmp-")
    )


def _manifest(path: Path) -> dict[str, Any]:
    m = json.loads((path / "tela.json").read_text())
    for volatile in ("created", "train_seconds"):
        m.pop(volatile, None)
    m.get("config", {}).pop("output", None)
    (m.get("training") or {}).pop("train_seconds", None)
    return m


def test_kill_tela_run_fast_family(tmp_path: Path, rng: random.Random) -> None:
    env = _env(tmp_path)
    args = [
        "run",
        "--family",
        "length",
        "--data",
        str(sample_path()),
        "--set",
        f"family.weak={WEAK}",
        "--set",
        f"family.strong={STRONG}",
    ]
    whole = tmp_path / "whole"
    took = _timed([TELA, *args, "--output", str(whole)], env)
    for attempt in range(2):
        out = tmp_path / f"killed{attempt}"
        _kill_at([TELA, *args, "--output", str(out)], env, rng.uniform(0.2, took * 1.1))
        _timed([TELA, *args, "--output", str(out)], env)
        assert _manifest(out) == _manifest(whole)
        for name in ("length.json", "policy.json"):
            assert (out / name).read_bytes() == (whole / name).read_bytes()
        assert _leftovers(tmp_path) == [] and list(tmp_path.glob(".*.lock")) == []


def test_kill_tela_zoo(tmp_path: Path, rng: random.Random) -> None:
    env = _env(tmp_path)
    args = [
        "zoo",
        "--data",
        str(sample_path()),
        "--families",
        "length,random",
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    ]
    whole = tmp_path / "whole"
    took = _timed([TELA, *args, "--output", str(whole)], env)
    out = tmp_path / "killed"
    code = _kill_at([TELA, *args, "--output", str(out)], env, rng.uniform(0.3, took * 1.1))
    # OUTPUT is nothing (the zoo is built out of sight) or the whole report (killed after the swap)
    assert not out.exists() or (out / "results.json").exists(), sorted(p.name for p in out.iterdir())
    assert code in (None, 0)
    if not out.exists():
        _timed([TELA, *args, "--output", str(out)], env)

    def comparable(folder: Path) -> dict[str, Any]:
        res = json.loads((folder / "results.json").read_text())
        for row in res["families"] + res["baselines"]:
            row.pop("train_seconds", None)
            row.pop("score_seconds", None)
        return res

    assert comparable(out) == comparable(whole)
    assert sorted(p.name for p in (out / "routers").iterdir()) == ["length", "random"]
    assert _leftovers(tmp_path) == [] and list(tmp_path.glob(".*.lock")) == []


@pytest.mark.slow
def test_kill_tela_eval_with_its_score_cache(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny score-token router scores 64 prompts with a real (tiny) LM forward pass: long enough
    for a kill to land while scoring, before, or after the cache is written."""
    from tela_core.testkit.helpers import build_tiny_router

    env = _env(tmp_path)
    router = build_tiny_router(tmp_path / "router")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(sample_path().read_text(encoding="utf-8").splitlines(keepends=True)[:64]), encoding="utf-8")
    args = [
        "eval",
        "--router",
        str(router),
        "--data",
        str(data),
        "--json",
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    ]
    whole = tmp_path / "whole"
    took = _timed([TELA, *args, "--output", str(whole), "--no-cache"], env)
    cache = tmp_path / "cache" / "scores"
    out = tmp_path / "killed"
    _kill_at([TELA, *args, "--output", str(out)], env, rng.uniform(0.5, took * 1.1))
    assert not cache.exists() or all(p.name.endswith(".npz") for p in cache.iterdir() if not p.name.startswith("."))
    # the reruns in this process (the command as `tela` runs it, without a second interpreter's start)
    monkeypatch.setenv("TELA_CACHE", env["TELA_CACHE"])
    for _ in range(2):  # the second from the cache, whatever the kill left
        r = run_cli(*args, "--output", out, "--force")
        assert r.exit_code == 0, r.output[-3000:]

    def comparable(folder: Path) -> dict[str, Any]:
        rep = json.loads((folder / "report.json").read_text())
        rep.pop("scoring", None)
        for key in ("router", "output"):
            rep.pop(key, None)
        return rep

    assert comparable(out) == comparable(whole)
    assert json.loads((out / "report.json").read_text())["scoring"]["cached"] is True
    assert _leftovers(tmp_path) == []


def test_an_eval_cleans_the_half_written_report_a_killed_eval_left(tmp_path: Path) -> None:
    """A kill while the plot was being written left `.quality.png.XXXX.tmp` in the output folder, and
    the rerun that wrote the report did not remove it (seen in test_kill_tela_eval_with_its_score_cache
    when the kill landed in savefig). Holding the output's lock, eval removes its files' stale temps."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(sample_path().read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".quality.png.k1ll3d.tmp", out / ".report.json.k1ll3d.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = out / ".notes.tmp"  # not one of the report's files: not eval's to remove
    keep.write_text("mine")
    args = ["eval", "--router", "random", "--data", data, "--weak-model", WEAK, "--strong-model", STRONG]
    r = run_cli(*args, "--output", out)
    assert r.exit_code == 0, r.output[-2000:]
    assert not any(p.exists() for p in stale) and keep.exists()


_EMBED = r"""
import sys, time
import numpy as np
from pathlib import Path
from tela_core.models.vector_cache import cached_vectors

def compute(texts, report):
    time.sleep(0.005 * len(texts))  # a slow encoder
    report(len(texts), len(texts))
    return np.array([[len(t), sum(map(ord, t)) % 997, t.count("e")] for t in texts], dtype=np.float32)

texts = [f"prompt {i} " + "e" * (i % 7) for i in range(400)]
v = cached_vectors(texts, Path(sys.argv[1]), "stand-in", compute, chunk_size=16, progress=lambda *_: None)
np.save(sys.argv[2], v)
"""


def test_kill_embedding_cache(tmp_path: Path, rng: random.Random) -> None:
    """The vector cache under a stand-in encoder (the real one takes seconds to load; the cache,
    its shards and their atomic writes are what is tested): killed while writing shards, rerun,
    the vectors equal an uninterrupted computation and no temporary shard is left."""
    env = _env(tmp_path)
    folder = tmp_path / "cache" / "embeddings" / "stand-in"
    took = _timed([sys.executable, "-c", _EMBED, str(tmp_path / "whole-cache"), str(tmp_path / "whole.npy")], env)
    _kill_at([sys.executable, "-c", _EMBED, str(folder), str(tmp_path / "v.npy")], env, rng.uniform(0.2, took * 0.9))
    shards_after_kill = len(list(folder.glob("shard-*.npz"))) if folder.exists() else 0
    _timed([sys.executable, "-c", _EMBED, str(folder), str(tmp_path / "v.npy")], env)
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.load(tmp_path / "whole.npy"))
    assert len(list(folder.glob("shard-*.npz"))) >= shards_after_kill  # finished chunks were kept
    assert list(folder.glob(".tmp-*")) == [] and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_kill_tela_run_score_token(
    tmp_path: Path, trained_router: TrainedRun, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    """score-token trained by DeepSpeed on a tiny LM, 12 steps, a checkpoint every 3: killed at a
    random moment (data prep, training, a checkpoint save, the final save, the held-out check),
    rerun, and the router equals an uninterrupted run's (the session's ``trained_router``, the same
    command): same manifest, same weights (to float tolerance), mode 0644 files."""
    from safetensors.numpy import load_file

    env = _env(tmp_path)
    whole = trained_router.path
    out = tmp_path / "killed"
    args = [a if a != str(whole) else str(out) for a in trained_router.args[1:]]
    assert "--save-steps" in args and args[args.index("--save-steps") + 1] == "3"
    # the session's run took trained_router.seconds in this process; a `tela` process starts first
    _kill_at([TELA, *args], env, rng.uniform(1.0, trained_router.seconds + 1.0))
    monkeypatch.setenv("TELA_CACHE", env["TELA_CACHE"])
    r = run_cli(*args)  # the rerun in this process: its ranks are launched as always
    assert r.exit_code == 0, r.output[-3000:]
    a, b = _manifest(whole), _manifest(out)
    for m in (a, b):
        m.pop("training", None)  # resumed_from and losses per attempt differ by design
        m.get("base_model", {}).pop("path", None)
    assert a == b
    wa, wb = load_file(str(whole / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-5, atol=1e-6, err_msg=k)
    mask = os.umask(0)
    os.umask(mask)
    for f in out.iterdir():
        if f.is_file():
            assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f
    assert _leftovers(tmp_path) == []
