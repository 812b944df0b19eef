"""Helpers for the ``tela serve`` tests: stand-in upstreams and a `tela serve` process on loopback.

The upstreams are STAND-INS for remote model APIs (``examples/standin_upstream.py``): small
OpenAI-compatible servers that answer with their own model name, stream, and can be told to fail
or stall. Nothing here reaches a network.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "examples" / "standin_upstream.py"
SAMPLE = REPO / "tela_core" / "data" / "mmlu_sample.jsonl"


def env() -> dict[str, str]:
    from tela_core.testkit.helpers import OFFLINE_VARS

    e = dict(os.environ)
    e.update(OFFLINE_VARS)
    e.setdefault("TELA_CACHE", str(REPO / ".cache" / "tela"))
    e.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def standin(model: str) -> Iterator[str]:
    """A stand-in upstream answering as ``model``; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), "--model", model, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(),
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if " on http://" not in line:
            raise RuntimeError(f"stand-in {model} did not start: {line}")
        yield line.strip().rsplit(" on ", 1)[1]
    finally:
        proc.terminate()
        proc.wait(10)


def control(base_url: str, **cmd: Any) -> dict[str, Any]:
    """Tell a stand-in how to behave (``mode="fail"|"stall"|"stall-stream"|"ok"``, ``stall_s``, ``reset``)."""
    root = base_url.rsplit("/v1", 1)[0]
    req = urllib.request.Request(root + "/control", data=json.dumps(cmd).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stats(base_url: str) -> dict[str, Any]:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(root + "/stats", timeout=10) as r:
        return json.loads(r.read())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class TelaServe:
    """A running ``tela serve`` process."""

    def __init__(self, args: list[str], port: int, extra_env: dict[str, str] | None = None, ready_timeout: float = 90.0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = []
        e = env()
        e.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tela_core.cli.main import main; main()", "serve", "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"tela serve exited with {self.proc.returncode}:\n{out}")
            try:
                status, _ = get(self.url + "/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("tela serve did not become ready")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.stdout.read() if self.proc.stdout else ""


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        got = {}
        if "{" in head:
            for part in head[head.index("{") + 1 : head.rindex("}")].split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    got[k.strip()] = v.strip().strip('"')
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def train_length_router(out: Path) -> Path:
    """A ``length`` router trained on the bundled MMLU sample (well under a second)."""
    from tela_core.testkit.helpers import run_cli

    res = run_cli("run", "--family", "length", "--data", SAMPLE, "--output", out)
    assert res.exit_code == 0, res.output
    return out
