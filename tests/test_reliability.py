"""What tela promises a user when things go wrong (docs/reliability.md), one test per promise:
locks, validation before any write, replaced-whole outputs, damaged files and caches, pitfalls
worth a warning. Fast: fast families (length, embedding-knn on the bundled sample) and stand-in
compute functions where the test is about the cache, not the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tela_core.data import sample_path
from tela_core.testkit.helpers import TelaCli, one_error_line, run_cli


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) with its bytes, and the dirs: a snapshot."""
    if not root.exists():
        return {}
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


pytestmark = pytest.mark.usefixtures("isolated_cache")  # every test writes to a cache of its own


# ------------------------------------------------------------------------------------------------
# Locks
# ------------------------------------------------------------------------------------------------

_HOLD = """
import sys, time
from tela_core.infra.locks import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(target: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_second_writer_of_an_output_is_refused_with_the_holders_pid(tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "router"
    holder = _holder(out)
    try:
        res = tela_cli("run", "--family", "length", "--data", str(sample_path()), "--output", str(out))
        line = one_error_line(res)
        assert f"in use by pid {holder.pid}" in line and str(out) in line
        assert not out.exists()
        res = tela_cli("zoo", "--data", str(sample_path()), "--families", "length", "--output", str(out))
        assert f"in use by pid {holder.pid}" in one_error_line(res)
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the lock: the next writer goes ahead, and no lock file is left behind
    res = tela_cli("run", "--family", "length", "--data", str(sample_path()), "--output", str(out))
    assert res.exit_code == 0, res.output
    assert (out / "tela.json").is_file()
    assert not list(tmp_path.glob(".router.lock"))


def test_two_concurrent_runs_never_mix_configs(tmp_path: Path) -> None:
    """Two `tela run` into one dir (one with --force and another config) as real processes: one
    wins, the other is refused or waits its turn, and the router left is whole, of one config."""
    out = tmp_path / "router"
    tela = str(Path(sys.executable).with_name("tela"))
    a = [tela, "run", "--family", "length", "--data", str(sample_path()), "--output", str(out)]
    b = [*a, "--set", "family.unit=words", "--force"]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in (a, b)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for rc, err in results:
        assert rc in (0, 2), err
        assert "Traceback" not in err
        if rc == 2:
            assert "in use by pid" in err or "different config" in err, err
    manifest = json.loads((out / "tela.json").read_text())
    run = json.loads((out / ".tela" / "run.json").read_text())
    assert manifest["config"] == run["config"]
    assert manifest["scorer_options"]["unit"] == run["config"]["family_options"].get("unit", "chars")


def test_cache_lock_waits_for_the_other_writer(tmp_path: Path) -> None:
    from tela_core.infra.locks import cache_lock

    target = tmp_path / "cache" / "entry"
    script = (
        "import sys, time\nfrom tela_core.infra.locks import cache_lock\n"
        "with cache_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(1.0)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    waited: list[str] = []
    t0 = time.monotonic()
    with cache_lock(target, on_wait=waited.append) as held:
        assert held is not None
    assert time.monotonic() - t0 > 0.3 and waited and f"pid {p.pid}" in waited[0]
    p.wait()


# ------------------------------------------------------------------------------------------------
# Validation before any write; a failed run never blocks the corrected one
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "nan"], "--epochs: must be a positive finite number"),
        (["--learning-rate", "inf"], "--learning-rate: must be a positive finite number"),
        (["--max-steps", "0"], "--max-steps: must be at least 1"),
        (["--sample", "0"], "--sample: must be at least 1"),
        (["--seed", "-1"], "--seed: must be in [0, 2**32)"),
        (["--save-steps", "-1"], "--save-steps: must be 0 or more"),
        (["--set", "source.typo=1"], "bad options for source 'jsonl': typo"),
        (["--backend", "lora", "--set", "backend.r=0"], "bad options for backend 'lora': r"),
        (["--set", "family.device=cpu", "--set", "family.nope=1"], "bad options for family 'score-token': nope"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str, tela_cli: TelaCli
) -> None:
    out = tmp_path / "out"
    res = tela_cli("run", "--data", str(sample_path()), "--output", str(out), *args)
    assert message in one_error_line(res)
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "family.unit=furlongs"], "unit: Input should be 'chars' or 'words'"),
        (["--model", "smollm2-135m"], "would ignore --model"),
        (["--backend", "lora", "--processes", "2"], "would ignore --backend, --processes"),
        (["--epochs", "2"], "would ignore --epochs"),
    ],
)
def test_a_family_refuses_settings_it_would_ignore(
    tmp_path: Path, args: list[str], message: str, tela_cli: TelaCli
) -> None:
    out = tmp_path / "out"
    res = tela_cli("run", "--family", "length", "--data", str(sample_path()), "--output", str(out), *args)
    assert message in one_error_line(res)
    assert not out.exists()


def _strip_outcomes(src: Path, dst: Path) -> Path:
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            obj = json.loads(line)
            obj.pop("outcomes", None)
            fout.write(json.dumps(obj) + "\n")
    return dst


def test_a_failed_run_leaves_nothing_and_the_corrected_rerun_works(tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "out"
    labels_only = _strip_outcomes(sample_path(), tmp_path / "labels.jsonl")
    # matrix-factorization needs per-model outcomes: fails inside fit, after the data was read
    res = tela_cli("run", "--family", "matrix-factorization", "--data", str(labels_only), "--output", str(out))
    assert "no per-model outcomes" in one_error_line(res)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    res = tela_cli("run", "--family", "length", "--data", str(sample_path()), "--output", str(out), "--sample", "0")
    one_error_line(res)
    assert not out.exists()
    res = tela_cli("run", "--family", "length", "--data", str(sample_path()), "--output", str(out), "--sample", "50")
    assert res.exit_code == 0, res.output
    assert (
        json.loads((out / "tela.json").read_text())["data"]["train"] == 50
    )  # a self-training family holds nothing out


def test_output_paths_that_cannot_be_written(tmp_path: Path, tela_cli: TelaCli) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, message in (
        (a_file, "exists and is not a directory"),
        (a_file / "sub", "is a file, not a directory"),
        (Path("/sys/tela-test/out"), "cannot write there"),  # refused even to root (sysfs)
    ):
        for cmd in (["run", "--family", "length"], ["zoo", "--families", "length"]):
            res = tela_cli(*cmd, "--data", str(sample_path()), "--output", str(out))
            assert message in one_error_line(res), (cmd, out)
    assert a_file.read_text() == "x"


def test_data_outputs_that_cannot_be_written(tmp_path: Path, tela_cli: TelaCli) -> None:
    a_dir = tmp_path / "dir"
    a_dir.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, message in (
        (a_dir, "is a directory"),
        (a_file / "o.jsonl", "is a file, not a directory"),
        (Path("/sys/tela-test.jsonl"), "cannot write there"),
    ):
        for cmd in (["data", "sample", "--n", "3"], ["data", "convert"]):
            res = tela_cli(*cmd, str(sample_path()), str(out), "--force")
            assert message in one_error_line(res), (cmd, out)
    assert a_file.read_text() == "x" and list(a_dir.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# tela zoo replaces its output whole
# ------------------------------------------------------------------------------------------------


def test_zoo_force_replaces_the_whole_output_and_cleans_stale_stages(tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "zoo"
    res = tela_cli("zoo", "--data", str(sample_path()), "--families", "length,random", "--output", str(out))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "routers").iterdir()) == ["length", "random"]
    stale = tmp_path / ".zoo.partial-deadbeef"  # what a SIGKILLed zoo leaves
    (stale / "routers").mkdir(parents=True)
    res = tela_cli("zoo", "--data", str(sample_path()), "--families", "length", "--output", str(out), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "routers").iterdir()) == ["length"]
    assert [f["family"] for f in json.loads((out / "results.json").read_text())["families"]] == ["length"]
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_zoo_refuses_to_replace_a_dir_that_is_not_a_zoo(tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    res = tela_cli("zoo", "--data", str(sample_path()), "--families", "length", "--output", str(out), "--force")
    assert "is not a zoo report" in one_error_line(res)
    assert (out / "thesis.tex").read_text() == "years of work"


# ------------------------------------------------------------------------------------------------
# Damaged artifacts and caches
# ------------------------------------------------------------------------------------------------


PAIR = ("--set", "family.weak=mistralai/Mixtral-8x7B-Instruct-v0.1", "--set", "family.strong=gpt-4-1106-preview")


def _train(family: str, out: Path, *extra: str) -> Path:
    res = run_cli("run", "--family", family, "--data", str(sample_path()), "--output", str(out), *PAIR, *extra)
    assert res.exit_code == 0, res.output
    return out


def test_damaged_length_router_gives_one_line(tmp_path: Path, tela_cli: TelaCli) -> None:
    router = _train("length", tmp_path / "len")
    for content, message in (
        ('{"lengths": [1, 2]}', "no 'sorted_lengths' field"),
        ('{"sorted_lengths": "abc", "sign": 1}', "'sorted_lengths' has the wrong type"),
        ('{"sorted_lengths": [1, 2]}', "no 'sign' field"),
        ("[" * 100_000, "damaged router file"),
        ("{bad json", "damaged router file"),
    ):
        (router / "length.json").write_text(content)
        res = tela_cli("route", "--router", str(router), "what is 2 + 2?")
        line = one_error_line(res)
        assert str(router / "length.json") in line and message in line, line


class _FakeEncoder:
    """Stands in for all-MiniLM-L6-v2 (seconds to load on a shared 2-core machine): these tests are
    about the artifact's files and the vector cache around the encoder, not about the encoder."""

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        v = np.array([[len(t), t.count(" "), sum(map(ord, t)) % 101, 1.0] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def fake_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import tela_core.models.vector_cache as emb

    monkeypatch.setattr(emb, "_load_model", lambda path, device: _FakeEncoder())


def test_damaged_knn_router_gives_one_line(tmp_path: Path, fake_encoder: None, tela_cli: TelaCli) -> None:
    router = _train("embedding-knn", tmp_path / "knn", "--sample", "40")
    npz = router / "knn.npz"
    whole = npz.read_bytes()
    for content in (whole[: len(whole) // 2], b"garbage" * 10, b""):
        npz.write_bytes(content)
        line = one_error_line(tela_cli("route", "--router", str(router), "what is 2 + 2?"))
        assert str(npz) in line and "damaged router file" in line, line
    np.savez(npz, emb=np.zeros((3, 4)), y=np.zeros(2), outcomes=np.zeros((3, 2)))
    line = one_error_line(tela_cli("route", "--router", str(router), "what is 2 + 2?"))
    assert "shapes disagree" in line


def _fake_compute(texts: list[str], report: Any) -> np.ndarray:
    report(len(texts), len(texts))
    return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)


def test_damaged_cache_shard_is_dropped_and_recomputed_with_a_warning(tmp_path: Path, capsys: Any) -> None:
    from tela_core.models.vector_cache import cached_vectors

    texts = [f"prompt number {i}" for i in range(10)]
    folder = tmp_path / "vec"
    first = cached_vectors(texts, folder, "m", _fake_compute, chunk_size=4, progress=lambda *_: None)
    shards = sorted(folder.glob("shard-*.npz"))
    assert len(shards) == 3
    shards[0].write_bytes(shards[0].read_bytes()[:50])  # cut short, as a full disk leaves it
    again = cached_vectors(texts, folder, "m", _fake_compute, chunk_size=4, progress=lambda *_: None)
    np.testing.assert_array_equal(first, again)
    assert "damaged cache shard" in capsys.readouterr().err
    assert not shards[0].exists() and len(list(folder.glob("shard-*.npz"))) == 3
    cached_vectors(texts, folder, "m", _fake_compute, chunk_size=4, progress=lambda *_: None)
    assert "damaged" not in capsys.readouterr().err  # healed: no warning the next time


def test_a_later_call_in_a_process_reads_only_the_shards_written_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zoo or an eval embeds the same texts for every family: each call read every shard again
    (21,093 vectors, 0.05-0.09 s a call, 142 calls for an ensemble). A deleted shard is never
    served from memory."""
    from tela_core.models.vector_cache import cached_vectors

    texts = [f"prompt number {i}" for i in range(10)]
    folder = tmp_path / "vec"
    quiet = {"chunk_size": 4, "progress": lambda *_: None}
    cached_vectors(texts[:8], folder, "m", _fake_compute, **quiet)  # two shards written
    first = cached_vectors(texts[:8], folder, "m", _fake_compute, **quiet)  # and read
    loads: list[Any] = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    again = cached_vectors(texts, folder, "m", _fake_compute, **quiet)  # two new texts, one new shard
    assert loads == [] and len(list(folder.glob("shard-*.npz"))) == 3
    np.testing.assert_array_equal(again[:8], first)
    np.testing.assert_array_equal(cached_vectors(texts, folder, "m", _fake_compute, **quiet), again)
    assert len(loads) == 1  # the new shard only
    for shard in folder.glob("shard-*.npz"):
        shard.unlink()  # the cache cleared by hand
    computed: list[str] = []

    def counting(new: list[str], report: Any) -> np.ndarray:
        computed.extend(new)
        return _fake_compute(new, report)

    np.testing.assert_array_equal(cached_vectors(texts, folder, "m", counting, **quiet), again)
    assert sorted(computed) == sorted(texts)  # computed again, none served from memory


def test_unwritable_cache_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_encoder: None, tela_cli: TelaCli
) -> None:
    router = _train("embedding-knn", tmp_path / "knn", "--sample", "40")
    monkeypatch.setenv("TELA_CACHE", "/sys/tela-cache")  # refused even to root
    res = tela_cli("route", "--router", router, "--json", "a question never seen before")
    assert res.exit_code == 0, res.output
    assert "cannot write the vector cache" in res.output
    data = tmp_path / "d.jsonl"
    data.write_text("".join(line for line in sample_path().read_text().splitlines(keepends=True)[:30]))
    res = tela_cli("eval", "--router", str(router), "--data", str(data), "--output", str(tmp_path / "ev"))
    assert res.exit_code == 0, res.output
    assert "cannot write the score cache" in res.output


# ------------------------------------------------------------------------------------------------
# Pitfalls a user is told about
# ------------------------------------------------------------------------------------------------


def test_duplicate_prompts_with_conflicting_outcomes_are_counted(tmp_path: Path, tela_cli: TelaCli) -> None:
    lines = sample_path().read_text().splitlines()[:40]
    objs = [json.loads(x) for x in lines]
    flipped = [dict(o, outcomes={m: 1.0 - v for m, v in o["outcomes"].items()}) for o in objs[:3]]
    same = [dict(o) for o in objs[3:5]]
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps(o) + "\n" for o in objs + flipped + same))
    res = tela_cli("run", "--family", "length", "--data", str(data), "--output", str(tmp_path / "r"), *PAIR)
    assert res.exit_code == 0, res.output
    assert (
        "warning: 3 prompt(s) occur more than once with conflicting labels or outcomes (5 duplicated prompts in 10 records)"  # noqa: E501
        in res.output
    )
    res = tela_cli(
        "zoo",
        "--data",
        str(data),
        "--families",
        "length",
        "--output",
        str(tmp_path / "z"),
        "--weak-model",
        PAIR[1].split("=")[1],
        "--strong-model",
        PAIR[3].split("=")[1],
    )
    assert res.exit_code == 0, res.output
    assert "3 prompt(s) occur more than once" in res.output
    res = tela_cli("data", "check", str(data))
    assert "3 prompt(s) occur more than once" in res.output


def test_calibration_picks_the_closest_share_the_ties_allow() -> None:
    from tela_plugins.policies.policies import calibrate_threshold, strong_share

    w = np.array([0.1] * 10 + [0.5] * 80 + [0.9] * 10)
    t = calibrate_threshold(w, 0.3)  # the 0.7 quantile is 0.5, which sends 90% to strong
    assert strong_share(w, t) == pytest.approx(0.1)
    assert 0.5 < t <= 0.9
    assert strong_share(w, calibrate_threshold(w, 0.6)) == pytest.approx(0.9)
    assert strong_share(w, calibrate_threshold(w, 0.5)) == pytest.approx(0.1)  # equally far: the cheaper


def test_training_prompt_sketch_estimates_overlap() -> None:
    from tela_core.data.fingerprint import overlap, overlap_warning, prompt_sketch

    train = [f"training prompt {i}" for i in range(5000)]
    fresh = [f"new prompt {i}" for i in range(5000)]
    sk = prompt_sketch(train)
    assert len(sk["hashes"]) == 256 and sk["n"] == 5000
    sampled, hits = overlap(sk, train[:3000] + fresh[:1000])
    assert sampled > 20 and 0.55 < hits / sampled < 0.95
    assert overlap(sk, fresh)[1] == 0  # type: ignore[index]
    assert overlap_warning({"train_prompts": sk}, fresh) is None
    assert "training prompts" in (overlap_warning({"train_prompts": sk}, train) or "")
    small = prompt_sketch(train[:10])
    assert overlap(small, train[:5] + fresh[:5]) == (10, 5)  # exact below k prompts


def test_data_preview_with_a_bad_tokenizer_path(tmp_path: Path, tela_cli: TelaCli) -> None:
    for tok, message in (
        (tmp_path / "missing", "not found"),
        (sample_path(), "a file"),
        (tmp_path, "cannot load a tokenizer"),
    ):
        res = tela_cli("data", "preview", "--formatter", "role-prefix", str(sample_path()), "--tokenizer", str(tok))
        assert message in one_error_line(res)


def test_artifact_files_get_a_normal_mode(tmp_path: Path) -> None:
    from tela_core.train.runner import normal_file_modes

    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    os.chmod(f, 0o600)  # what safetensors' temporary-file save leaves
    normal_file_modes(tmp_path)
    mask = os.umask(0)
    os.umask(mask)
    assert (f.stat().st_mode & 0o777) == 0o666 & ~mask


def test_eval_and_calibrate_warn_on_training_prompts(tmp_path: Path, tela_cli: TelaCli) -> None:
    """The manifest's sketch of the training prompts: evaluating or calibrating on the training file
    warns with the share; the held-out sample does not."""
    router = _train("length", tmp_path / "len", "--sample", "100")  # 100 training prompts (a self-training
    assert json.loads((router / "tela.json").read_text())["train_prompts"]["n"] == 100  # family holds none out)
    heldout = sample_path().with_name("mmlu_heldout_sample.jsonl")
    pair = ["--weak-model", PAIR[1].split("=")[1], "--strong-model", PAIR[3].split("=")[1]]
    res = tela_cli(
        "eval", "--router", str(router), "--data", str(sample_path()), "--output", str(tmp_path / "e1"), *pair
    )
    assert res.exit_code == 0, res.output
    assert "warning: 25% of the evaluation prompts are the router's own training prompts" in res.output
    res = tela_cli("eval", "--router", str(router), "--data", str(heldout), "--output", str(tmp_path / "e2"), *pair)
    assert res.exit_code == 0, res.output
    assert "training prompts" not in res.output
    res = tela_cli("calibrate", "--router", str(router), "--data", str(sample_path()), "--strong-share", "0.3")
    assert res.exit_code == 0, res.output
    assert "of the calibration prompts are the router's own training prompts" in res.output


def test_zoo_routers_record_their_training_prompts(tmp_path: Path, tela_cli: TelaCli) -> None:
    out = tmp_path / "zoo"
    res = tela_cli(
        "zoo",
        "--data",
        str(sample_path()),
        "--families",
        "length",
        "--output",
        str(out),
        "--weak-model",
        PAIR[1].split("=")[1],
        "--strong-model",
        PAIR[3].split("=")[1],
    )
    assert res.exit_code == 0, res.output
    sketch = json.loads((out / "routers" / "length" / "tela.json").read_text())["train_prompts"]
    assert sketch["n"] == json.loads((out / "results.json").read_text())["n_train"]


def test_eval_and_calibrate_take_the_same_lock(tmp_path: Path, tela_cli: TelaCli) -> None:
    router = _train("length", tmp_path / "len")
    report = tmp_path / "report"
    for target, argv in (
        (
            report,
            [
                "eval",
                "--router",
                str(router),
                "--data",
                str(sample_path()),
                "--output",
                str(report),
                "--weak-model",
                PAIR[1].split("=")[1],
                "--strong-model",
                PAIR[3].split("=")[1],
            ],
        ),
        (router, ["calibrate", "--router", str(router), "--data", str(sample_path()), "--strong-share", "0.3"]),
    ):
        before = (_tree(router), _tree(report))
        holder = _holder(target)
        try:
            assert f"in use by pid {holder.pid}" in one_error_line(tela_cli(*argv))
        finally:
            holder.kill()
            holder.wait()
        assert (_tree(router), _tree(report)) == before
        assert tela_cli(*argv).exit_code == 0


def test_route_refuses_a_question_that_is_not_utf8(tmp_path: Path, tela_cli: TelaCli) -> None:
    """Bytes that are not UTF-8 on the command line reach Python as lone surrogates."""
    router = _train("length", tmp_path / "len")
    line = one_error_line(tela_cli("route", "--router", str(router), "--json", "caf\udce9 au lait"))
    assert "question 1 is not valid UTF-8" in line
