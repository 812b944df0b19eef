"""Data-parallel scoring (issue 19): `tela eval/zoo/calibrate/route --processes N` shard the prompts
over ranks that the training launcher starts (torchrun, gloo, CPU, loopback here).

What a user relies on: the scores of N ranks are exactly those of one process (a cheap family and
a score-token LM router); a rank that dies makes the command fail with one line naming it, and a
rerun scores only the chunks that are missing; bad launch options are one line, exit 2.
The launched tests start real ranks (each one a Python with torch): they take seconds each.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import parallel_support
import pytest

from tela_core.eval.parallel import shard_chunks
from tela_core.testkit.helpers import one_error_line, run_cli

WEAK, STRONG = "weak-llm", "strong-llm"
PAIR = ("--weak-model", WEAK, "--strong-model", STRONG)
TESTS = Path(__file__).resolve().parent


def outcomes(folder: Path, n: int) -> Path:
    """RouteLLM-style per-subject CSVs, ``n`` prompts in all, of varied lengths."""
    folder.mkdir()
    for subject, hard in (("algebra", True), ("geography", False)):
        with open(folder / f"mmlu_{subject}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["prompt", WEAK, STRONG])
            for i in range(n // 2):
                q = (
                    (f"Solve {i}x + 3 = {2 * i + 7} for x." + " Show the steps." * (i % 9))
                    if hard
                    else f"Which country is city {i} in?"
                )
                w.writerow([f"{q}\nA. one\nB. two\nAnswer:", (not hard) or i % 5 == 0, hard or i % 4 != 0])
    return folder


def entry(cache: Path) -> dict[str, np.ndarray]:
    """The one score-cache entry in ``cache`` (its arrays)."""
    found = sorted((cache / "scores").glob("*.npz"))
    assert len(found) == 1, found
    with np.load(found[0]) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def ranks_import_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranks import the test plugin (``parallel_support``) from this folder, as the test does."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def counting_router(tmp_path: Path, register_plugin, ranks_import_tests) -> Path:
    """A trained ``counting-length`` router (the length family, logging its score calls)."""
    from tela_core.data.detect import read_records

    reg = register_plugin(parallel_support, "parallel-support")
    records, _src, _info = read_records(outcomes(tmp_path / "train", 200), "detect", WEAK, STRONG, None)
    out = tmp_path / "counting"
    reg.create("family", "counting-length", {"weak": WEAK, "strong": STRONG}).fit(records, out, {})
    return out


def test_shards_are_contiguous_blocks_of_the_cache_chunk_grid() -> None:
    for n in (0, 1, 127, 128, 129, 700, 1000):
        for world in (1, 2, 3, 5):
            shards = [shard_chunks(n, 128, world, r) for r in range(world)]
            flat = [c for s in shards for c in s]
            assert flat == [(s, min(s + 128, n)) for s in range(0, n, 128)]  # in order, each chunk once
            assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    assert shard_chunks(700, 128, 2, 1) == [(384, 512), (512, 640), (640, 700)]


def test_two_ranks_score_exactly_as_one_process(
    counting_router: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = outcomes(tmp_path / "eval", 700)
    reports, entries = [], []
    for processes in (None, 2):
        cache = tmp_path / f"cache-{processes}"
        monkeypatch.setenv("TELA_CACHE", str(cache))
        monkeypatch.setenv("TELA_TEST_SCORE_CALLS", str(tmp_path / f"calls-{processes}"))
        extra = ["--processes", str(processes)] if processes else []
        r = run_cli(
            "eval",
            "--router",
            counting_router,
            "--data",
            data,
            "-o",
            tmp_path / f"out-{processes}",
            *PAIR,
            "--json",
            *extra,
        )
        assert r.exit_code == 0, r.output
        reports.append(json.loads(r.stdout))
        entries.append(entry(cache))
        assert not list((cache / "scores").glob("*.job")) and not list(
            (cache / "scores").glob("*.chunks")
        )  # cleaned up
    one, two = entries
    assert np.array_equal(one["w"], two["w"]) and len(one["w"]) == 700
    assert reports[0]["routers"][0]["apgr"] == reports[1]["routers"][0]["apgr"]
    assert reports[1]["scoring"]["processes"] == 2
    calls = [ln.split() for ln in (tmp_path / "calls-2").read_text().splitlines()]
    assert sorted(rank for rank, _n in calls) == ["0", "0", "0", "1", "1", "1"]  # 6 chunks, 3 a rank
    assert sum(int(n) for _r, n in calls) == 700


def test_a_killed_rank_is_named_and_a_rerun_scores_only_its_missing_chunks(
    counting_router: Path, tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = outcomes(tmp_path / "eval", 700)  # 6 chunks: rank 0 scores 0-2, rank 1 scores 3-5
    kill = tmp_path / "kill"
    kill.write_text("1 1")  # rank 1 dies at its second chunk, once rank 0's three and its first are written
    chunks = str(isolated_cache / "scores" / "*.chunks" / "*.npz")
    monkeypatch.setenv("TELA_TEST_KILL", str(kill))
    monkeypatch.setenv("TELA_TEST_CHUNKS", chunks)
    monkeypatch.setenv("TELA_TEST_KILL_AFTER", "4")
    calls = tmp_path / "calls"
    monkeypatch.setenv("TELA_TEST_SCORE_CALLS", str(calls))
    argv = [
        "eval",
        "--router",
        counting_router,
        "--data",
        data,
        "-o",
        tmp_path / "out",
        *PAIR,
        "--json",
        "--processes",
        "2",
    ]

    line = one_error_line(run_cli(*argv))
    assert "rank 1" in line and "SIGKILL" in line and "rerun" in line, line
    assert not (tmp_path / "out" / "report.json").exists()
    kept = sorted(Path(p).name for p in __import__("glob").glob(chunks))
    assert kept == [
        "000000000-000000128.npz",
        "000000128-000000256.npz",
        "000000256-000000384.npz",
        "000000384-000000512.npz",
    ]
    calls.unlink()

    r = run_cli(*argv)
    assert r.exit_code == 0, r.output
    rescored = [ln.split() for ln in calls.read_text().splitlines()]
    assert rescored == [["1", "128"], ["1", "60"]]  # only the dead rank's two missing chunks
    report = json.loads(r.stdout)
    assert report["scoring"]["resumed"] == 512
    monkeypatch.setenv("TELA_CACHE", str(tmp_path / "one-process"))
    calls.unlink()
    assert run_cli("eval", "--router", counting_router, "--data", data, "-o", tmp_path / "one", *PAIR).exit_code == 0
    assert np.array_equal(entry(isolated_cache)["w"], entry(tmp_path / "one-process")["w"])


@pytest.mark.slow
def test_a_score_token_router_scores_the_same_on_two_ranks(
    tiny_router: Path,
    tmp_path: Path,
    ranks_import_tests,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The LM path: calibrate (1 process, then 2 ranks) on the same prompts: identical w and 1..5
    distributions, the same threshold; route --file on 2 ranks prints one process's w."""
    import torch

    router = Path(shutil.copytree(tiny_router, tmp_path / "router"))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "".join(f"Question {i}: what is {i} times {i % 13}?{' Explain.' * (i % 5)}\n" for i in range(200))
    )
    # The same threads per process on both sides (docs/index.md): a matmul over 2 threads sums in
    # another order than over 1, so w would differ in the 8th digit whatever the ranks do. The ranks
    # get OMP_NUM_THREADS; this process (it scores the one-process run itself) gets set_num_threads.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    said = []
    for processes in (None, 2):
        monkeypatch.setenv("TELA_CACHE", str(tmp_path / f"cache-{processes}"))
        extra = ["--processes", str(processes)] if processes else []
        r = run_cli("calibrate", "--router", router, "--data", prompts, "--strong-share", "0.3", *extra)
        assert r.exit_code == 0, r.output
        assert " (replacing its " in r.output, r.output  # the policy it replaced differs between the two runs
        said.append(r.output.split(" (replacing")[0])
    one, two = entry(tmp_path / "cache-None"), entry(tmp_path / "cache-2")
    assert np.array_equal(one["w"], two["w"]) and np.array_equal(one["probs"], two["probs"]) and len(one["w"]) == 200
    assert said[0] == said[1]  # the same threshold and share

    monkeypatch.setenv("TELA_CACHE", str(tmp_path / "cache-route"))
    r = run_cli("route", "--router", router, "--file", prompts, "--json", "--processes", "2")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["w"] for row in rows] == [round(float(w), 6) for w in one["w"]]  # what one process routes


def test_zoo_scores_each_router_on_the_ranks(tmp_path: Path, isolated_cache: Path, ranks_import_tests) -> None:
    data = outcomes(tmp_path / "data", 400)
    results = []
    for processes in (None, 2):
        extra = ["--processes", str(processes)] if processes else []
        r = run_cli("zoo", "--data", data, "--families", "length", "-o", tmp_path / f"zoo-{processes}", *PAIR, *extra)
        assert r.exit_code == 0, r.output
        results.append(json.loads((tmp_path / f"zoo-{processes}" / "results.json").read_text())["families"][0])
    assert results[0]["curve"] == results[1]["curve"] and results[0]["apgr"] == results[1]["apgr"]


BAD = {
    "eval": ["eval", "--router", "ROUTER", "--data", "DATA", "-o", "OUT", *PAIR],
    "zoo": ["zoo", "--data", "DATA", "--families", "length", "-o", "OUT", *PAIR],
    "calibrate": ["calibrate", "--router", "ROUTER", "--data", "DATA", "--strong-share", "0.3"],
    "route": ["route", "--router", "ROUTER", "a prompt"],
}


@pytest.mark.parametrize("command", sorted(BAD))
@pytest.mark.parametrize("flag", [("--processes", "0"), ("--processes", "-2"), ("--hostfile", "no-such-hostfile")])
def test_bad_launch_options_are_one_line(
    command: str, flag: tuple[str, str], tmp_path: Path, tiny_router: Path
) -> None:
    data = outcomes(tmp_path / "data", 40)
    router = Path(shutil.copytree(tiny_router, tmp_path / "router"))
    argv = [
        str(a).replace("ROUTER", str(router)).replace("DATA", str(data)).replace("OUT", str(tmp_path / "out"))
        for a in BAD[command]
    ]
    line = one_error_line(run_cli(*argv, *flag))
    expect = "--processes must be at least 1" if flag[0] == "--processes" else "no-such-hostfile: hostfile not found"
    assert expect in line, line
    assert not (tmp_path / "out").exists() and not (router / "policy.json").read_text().count("calibrated")


def test_launch_flags_a_mode_cannot_use_are_refused(tmp_path: Path) -> None:
    data = outcomes(tmp_path / "data", 40)
    line = one_error_line(
        run_cli("eval", "--router", "random", "--data", data, "-o", tmp_path / "o", "--processes", "2")
    )
    assert "baseline" in line and "does not take --processes" in line
    line = one_error_line(
        run_cli(
            "zoo",
            "--data",
            data,
            "--families",
            "length",
            "-o",
            tmp_path / "z",
            *PAIR,
            "--nnodes",
            "2",
            "--master-addr",
            "127.0.0.1",
        )
    )
    assert "tela zoo trains every family on the node it runs on" in line


def test_the_launch_options_are_tela_runs() -> None:
    """One vocabulary: the scoring commands' launch options are tela run's, spelled and explained alike."""
    from tela_core.cli.main import get_cli

    cli = get_cli()
    shape = {}
    for name in ("run", "eval", "zoo", "calibrate", "route"):
        opts = {
            o.opts[0]: (o.help, str(o.type))
            for o in cli.commands[name].params
            if o.name in ("processes", "hostfile", "nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint")
        }
        assert len(opts) == 7, name
        shape[name] = opts
    assert all(s == shape["run"] for s in shape.values())
    assert sys.executable  # the ranks run this Python (torchrun is started with it)


@pytest.mark.slow
def test_two_nodes_under_a_scheduler_each_with_its_own_cache(
    counting_router: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler form on loopback: two `tela eval` processes play two nodes (one rank each),
    node 0 placed by flags, node 1 by Slurm's variables, each with a node-local score cache and its
    own output. Node 0 writes the report, with one process's scores; node 1 says its part is done.
    Run again, both meet again (node 0 from its cache entry, node 1 from its chunks): nothing is rescored."""
    import socket
    import subprocess

    data = outcomes(tmp_path / "eval", 700)
    for var in (
        "SLURM_NNODES",
        "SLURM_NODEID",
        "SLURM_JOB_NODELIST",
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "PET_NNODES",
        "PET_NODE_RANK",
        "NNODES",
        "NODE_RANK",
    ):
        monkeypatch.delenv(var, raising=False)
    calls = tmp_path / "calls"
    monkeypatch.setenv("TELA_TEST_SCORE_CALLS", str(calls))
    # each node is a fresh `tela` that adds the test plugin in-process first, as a program embedding tela would
    tela = [
        sys.executable,
        "-c",
        "import sys, parallel_support; from tela_core.plugins import add_plugin; "
        "add_plugin(parallel_support, 'parallel-support'); from tela_core.cli.main import main; main(sys.argv[1:])",
    ]
    argv = ["eval", "--router", str(counting_router), "--data", str(data), *PAIR, "--json", "--processes", "1"]

    def both() -> tuple[str, str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        node0 = subprocess.Popen(
            [
                *tela,
                *argv,
                "-o",
                str(tmp_path / "out0"),
                "--force",
                "--nnodes",
                "2",
                "--node-rank",
                "0",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
            ],
            env={**os.environ, "TELA_CACHE": str(tmp_path / "node0")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        node1 = subprocess.Popen(
            [*tela, *argv, "-o", str(tmp_path / "out1")],
            env={
                **os.environ,
                "TELA_CACHE": str(tmp_path / "node1"),
                "SLURM_NNODES": "2",
                "SLURM_NODEID": "1",
                "SLURM_JOB_NODELIST": "127.0.0.1",
                "MASTER_PORT": port,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out0, err0 = node0.communicate(timeout=600)
        _out1, err1 = node1.communicate(timeout=600)
        assert node0.returncode == 0, err0
        assert node1.returncode == 0 and "this node's part of the scoring is done" in err1, err1
        assert not (tmp_path / "out1" / "report.json").exists()
        return out0, err1

    report = json.loads(both()[0])
    assert report["scoring"]["processes"] == 2
    scored = sorted(ln.split()[0] for ln in calls.read_text().splitlines())
    assert scored == ["0", "0", "0", "1", "1", "1"]  # each node's rank scored its half
    calls.unlink()
    again = json.loads(both()[0])
    assert not calls.exists() and again["routers"][0] == report["routers"][0]

    monkeypatch.setenv("TELA_CACHE", str(tmp_path / "one"))
    r = run_cli("eval", "--router", counting_router, "--data", data, "-o", tmp_path / "one-out", *PAIR, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["routers"][0] == report["routers"][0]
    assert np.array_equal(entry(tmp_path / "node0")["w"], entry(tmp_path / "one")["w"])


def test_a_router_among_n_models_scores_on_ranks_and_reuses_the_cache(
    tmp_path: Path, isolated_cache: Path, ranks_import_tests
) -> None:
    """An N-model kNN router: `tela eval --processes 2` keeps each model's predicted quality (the same
    report as one process), and `tela route`/`tela calibrate --budget` with --processes route from
    the cache entry the ranks wrote, each model's quality included."""
    from tela_core.data.records import seed_record
    from tela_core.plugins.discovery import get_registry

    models, costs = ("small", "mid", "big"), {"small": 1e-5, "mid": 5e-5, "big": 3e-4}
    recs = []
    for i in range(160):
        hard = i % 2 == 0
        q = f"Prove lemma {i}: every bounded monotone sequence converges." if hard else f"Say hello to guest {i}."
        outcomes = {"small": float(not hard), "mid": float(not hard or i % 4 == 0), "big": 1.0}
        recs.append(seed_record(q, None, outcomes=outcomes, costs=costs, id=str(i)))
    router = tmp_path / "knn"
    get_registry().create("family", "embedding-knn", {"k": 5}).fit(recs[:120], router, {})
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in recs[120:]))

    reports = []
    for extra in (["--no-cache"], ["--processes", "2"]):  # one process; two ranks, through the cache
        out = tmp_path / f"ev{len(reports)}"
        r = run_cli("eval", "--router", router, "--data", data, "-o", out, "--json", *extra)
        assert r.exit_code == 0, r.output
        reports.append(json.loads((out / "nmodel.json").read_text()))
    one, two = reports
    assert two["aiq_router"] == one["aiq_router"] and two["router_hull"] == one["router_hull"]
    assert two["extra"]["policy"] == one["extra"]["policy"] and two["scoring"]["processes"] == 2
    found = entry(isolated_cache)  # TELA_CACHE: the one entry, every model's quality in it
    assert list(found["models"]) == list(models) and found["quality"].shape == (40, 3)

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(r.prompt + "\n" for r in recs[120:]))
    r = run_cli("route", "--router", router, "--file", prompts, "--json", "--processes", "2")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 40 and set(rows[0]["quality"]) == set(models)
    alone = run_cli("route", "--router", router, "--file", prompts, "--json").stdout.splitlines()
    assert [x["model"] for x in rows] == [json.loads(x)["model"] for x in alone]  # as in one process
    r = run_cli("calibrate", "--router", router, "--data", data, "--budget", "0.1", "--processes", "2")
    assert r.exit_code == 0 and "λ" in r.output, r.output
    assert entry(isolated_cache)["quality"].shape == (40, 3)  # still the one entry: nothing scored again
