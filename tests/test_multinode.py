"""Multi-node training for real, on one machine: two "nodes" rendezvous on loopback (slow).

A scheduler (Slurm, a PyTorchJob, torchrun's elastic agent) starts one ``tela run`` per node. Here
two ``tela run`` processes play the two nodes, each with one CPU rank (gloo): node 0 is placed by
flags (``--nnodes 2 --node-rank 0 --master-addr 127.0.0.1``), node 1 by Slurm's variables
(``SLURM_NNODES``, ``SLURM_NODEID``, ``SLURM_JOB_NODELIST``, ``MASTER_PORT``), as ``srun`` would
start it. The router they train must equal, to a tolerance, the one that one node with two ranks
trains from the same data and seed. The ``--hostfile`` path (``deepspeed --hostfile``) needs what
DeepSpeed needs: passwordless ssh to every host (it checks even a one-host file) and pdsh for more
than one host; those tests skip, saying which is missing, where this machine has no ssh server
accepting a key for localhost.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from training_support import TrainedRun, clean_env, multi_rank_args

from tela_core.data import sample_path
from tela_core.train.launch import launcher_command
from tela_core.train.multinode import NodeLaunch, first_slurm_host, resolve_nodes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_args(model: Path, out: Path, processes: int) -> list[str]:
    return multi_rank_args(model, out, processes)


def weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def assert_same_weights(a: dict, b: dict, base: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    moved = 0.0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max().item())
        if k in base and base[k].shape == a[k].shape:
            moved = max(moved, (a[k] - base[k]).abs().max().item())
    assert moved > 1e-3  # training changed the weights: equality is not the untrained model's


# ------------------------------------------------------------------------------------------------
# Fast: where a node sits, from flags and from each scheduler's variables
# ------------------------------------------------------------------------------------------------


def test_single_node_by_default() -> None:
    n = resolve_nodes(env={})
    assert not n.multi and n.nnodes == 1
    # WORLD_SIZE alone is a launched job's process count, not a node count
    assert not resolve_nodes(env={"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "h"}).multi


def test_slurm_variables() -> None:
    n = resolve_nodes(env={"SLURM_NNODES": "4", "SLURM_NODEID": "2", "SLURM_JOB_NODELIST": "gpu[07-10]"})
    assert (n.nnodes, n.node_rank, n.master_addr, n.master_port) == (4, 2, "gpu07", 29500)
    assert dict(n.origin) == {
        "nnodes": "SLURM_NNODES",
        "node_rank": "SLURM_NODEID",
        "master_addr": "SLURM_JOB_NODELIST",
    }
    assert first_slurm_host("a1,a2") == "a1" and first_slurm_host("n[3,5-6],m1") == "n3"


def test_pytorchjob_and_torchrun_variables() -> None:
    # PyTorchJob with torchrun (elastic): PET_* variables
    n = resolve_nodes(
        env={"PET_NNODES": "2", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "job-master-0", "PET_MASTER_PORT": "23456"}
    )
    assert (n.nnodes, n.node_rank, n.master_addr, n.master_port) == (2, 1, "job-master-0", 23456)
    # PyTorchJob without torchrun: one process per pod, WORLD_SIZE pods, RANK = pod index
    n = resolve_nodes(env={"WORLD_SIZE": "3", "RANK": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"})
    assert (n.nnodes, n.node_rank) == (3, 2)
    # elastic rendezvous: no node rank needed; torchrun's MIN:MAX node count takes MAX
    n = resolve_nodes(env={"PET_NNODES": "1:2", "PET_RDZV_ENDPOINT": "h:29400", "SLURM_JOB_ID": "77"})
    assert (n.nnodes, n.rdzv_endpoint, n.rdzv_id) == (2, "h:29400", "77")
    # flags beat the environment
    n = resolve_nodes(nnodes=2, node_rank=0, master_addr="x", env={"SLURM_NNODES": "8", "SLURM_NODEID": "5"})
    assert (n.nnodes, n.node_rank, n.master_addr) == (2, 0, "x")


def test_launcher_commands(tmp_path: Path) -> None:
    static = launcher_command("m", tmp_path, 2, None, resolve_nodes(2, 1, "10.0.0.1", 29511, env={}))
    assert static[1:3] == ["-m", "torch.distributed.run"]
    joined = " ".join(static)
    assert "--nnodes 2 --nproc_per_node 2 --node_rank 1 --master_addr 10.0.0.1 --master_port 29511" in joined
    elastic = " ".join(launcher_command("m", tmp_path, 1, None, resolve_nodes(2, rdzv_endpoint="h:1", env={})))
    assert "--rdzv_backend c10d --rdzv_endpoint h:1 --rdzv_id tela" in elastic and "--node_rank" not in elastic
    hostfile = launcher_command("m", tmp_path, 2, tmp_path / "hosts", NodeLaunch(master_addr="h", master_port=5))
    assert Path(hostfile[0]).name == "deepspeed" and hostfile[1:5] == [
        "--hostfile",
        str(tmp_path / "hosts"),
        "--num_gpus",
        "2",
    ]
    assert "--master_addr h --master_port 5" in " ".join(hostfile)


def test_bad_placement_is_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("tela")
    base = [str(exe), "run", "--data", str(sample_path()), "--output", str(tmp_path / "o"), "--nnodes", "2"]
    res = subprocess.run(base, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 2 and "--master-addr" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(
        base + ["--node-rank", "2", "--master-addr", "h"], capture_output=True, text=True, env=clean_env(), timeout=120
    )
    assert res.returncode == 2 and "--node-rank must be in 0..1" in res.stderr
    assert not (tmp_path / "o" / "tela.json").exists()


# ------------------------------------------------------------------------------------------------
# Slow: real training across two launcher processes
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(two_rank_router: TrainedRun) -> Path:
    """One node, two ranks: the run the two-node one must reproduce (tests/conftest.py; read only)."""
    return two_rank_router.path


@pytest.mark.slow
def test_two_nodes_match_one_node_with_two_ranks(tiny_model: Path, reference: Path, tmp_path: Path) -> None:
    port = free_port()
    out0, out1 = tmp_path / "node0", tmp_path / "node1"
    node0 = subprocess.Popen(
        run_args(tiny_model, out0, 1)
        + ["--nnodes", "2", "--node-rank", "0", "--master-addr", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    # node 1 as srun starts it: placed by Slurm's variables alone
    node1 = subprocess.Popen(
        run_args(tiny_model, out1, 1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(SLURM_NNODES="2", SLURM_NODEID="1", SLURM_JOB_NODELIST="127.0.0.1", MASTER_PORT=str(port)),
    )
    try:
        err1 = node1.communicate(timeout=900)[1]
        err0 = node0.communicate(timeout=300)[1]
    finally:
        for p in (node0, node1):
            if p.poll() is None:
                p.kill()
    assert node0.returncode == 0, err0[-3000:]
    assert node1.returncode == 0, err1[-3000:]
    assert (
        "node 1 of 2" in err1
        and "SLURM_NODEID" in err1
        and "rank 0 (node 0) writes the router" in err1
        and "router written" not in err1
    )
    # node 0 holds global rank 0: the router is there, complete; node 1 keeps only its run state
    assert (out0 / "tela.json").is_file() and not (out1 / "tela.json").exists()
    attempt = json.loads((out0 / ".tela" / "attempts.jsonl").read_text().splitlines()[-1])
    assert attempt["world_size"] == 2
    # each node's rank trained on its own half of the data
    seen0 = json.loads((out0 / ".tela" / "seen" / "rank0.json").read_text())["ids"]
    seen1 = json.loads((out1 / ".tela" / "seen" / "rank1.json").read_text())["ids"]
    assert set(seen0).isdisjoint(seen1) and len(seen0) == len(seen1) > 0
    ref0 = json.loads((reference / ".tela" / "seen" / "rank0.json").read_text())["ids"]
    assert ref0 == seen0  # the same shard as rank 0 of the one-node run
    assert_same_weights(weights(out0), weights(reference), weights(tiny_model))


@pytest.fixture(scope="module")
def ssh_ready() -> None:
    """Skip (before the reference run is trained) where deepspeed cannot ssh to this machine."""
    why = _ssh_to_localhost()
    if why:
        pytest.skip(why)


@pytest.mark.slow
def test_hostfile_one_host(ssh_ready: None, tiny_model: Path, reference: Path, tmp_path: Path) -> None:
    """``--hostfile`` with one host: the ``deepspeed`` launcher starts both ranks here (it still
    checks that the host answers over ssh before it does)."""
    hosts = tmp_path / "hostfile"
    hosts.write_text("localhost slots=2\n")
    out = tmp_path / "router"
    res = subprocess.run(
        run_args(tiny_model, out, 2) + ["--hostfile", str(hosts)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "deepspeed" in (out / ".tela" / "train.log").read_text().split("\n$ ", 1)[1].splitlines()[0]
    assert_same_weights(weights(out), weights(reference), weights(tiny_model))


def _ssh_to_localhost() -> str | None:
    """Why the two-host hostfile test cannot run here, or None when it can."""
    if shutil.which("ssh") is None:
        return "no ssh client"
    res = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=3", "127.0.0.1", "true"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        return f"no ssh server accepting a key for 127.0.0.1 ({(res.stderr.strip() or 'exit ' + str(res.returncode))[:120]})"  # noqa: E501
    return None


@pytest.mark.slow
def test_hostfile_two_hosts_over_ssh(ssh_ready: None, tiny_model: Path, reference: Path, tmp_path: Path) -> None:
    """``--hostfile`` naming two hosts (localhost and 127.0.0.1, one slot each): deepspeed starts
    the second over pdsh/ssh. Needs an ssh server on this machine that accepts the user's key."""
    if shutil.which("pdsh") is None:
        pytest.skip("pdsh is not installed (deepspeed reaches other hosts through pdsh)")
    hosts = tmp_path / "hostfile"
    hosts.write_text("localhost slots=1\n127.0.0.1 slots=1\n")
    out = tmp_path / "router"
    res = subprocess.run(
        run_args(tiny_model, out, 1) + ["--hostfile", str(hosts)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_weights(weights(out), weights(reference), weights(tiny_model))
