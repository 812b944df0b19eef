"""Loose ends of issue 24's attack: a price so large every cost becomes ``inf`` is refused before any
call, and a command stopped by Ctrl-C exits 130 (not click's 1, which tela's table calls a bug), so
`tela collect ... && tela judge ...` stops. The models are a STAND-IN for remote APIs
(tela_core.testkit.replay_upstream, on loopback); nothing reaches a network."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tela_core.testkit.helpers import one_error_line, run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

TELA = str(Path(sys.executable).with_name("tela"))


@pytest.fixture
def upstream():
    rec = {"small": {"What is 1 + 2?": Recorded("3", 5, 1, 1.0)}, "big": {"What is 1 + 2?": Recorded("3", 5, 1, 1.0)}}
    with ReplayUpstream(rec) as up:
        yield up


def _prompts(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.jsonl"
    p.write_text(json.dumps({"prompt": "What is 1 + 2?"}) + "\n", encoding="utf-8")
    return p


def test_a_price_that_makes_costs_infinite_is_refused_before_any_call(tmp_path, upstream):
    out = tmp_path / "answers"
    r = run_cli(
        "collect",
        "--prompts",
        _prompts(tmp_path),
        "--model",
        f"small={upstream.base_url}#small",
        "--price",
        "small=1e308,1",
        "--max-cost",
        "1",
        "-o",
        out,
    )
    line = one_error_line(r)
    assert "--price" in line and "1e308" in line and "at most" in line
    assert not out.exists() and sum(upstream.counts.values()) == 0


def test_a_config_price_over_the_bound_names_the_file(tmp_path, upstream):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"upstreams:\n  small: {{base_url: '{upstream.base_url}', model: small, price_input: 1e9, price_output: 1}}\n",
        encoding="utf-8",
    )
    r = run_cli("collect", "--prompts", _prompts(tmp_path), "--config", cfg, "--model", "small", "-o", tmp_path / "a")
    line = one_error_line(r)
    assert "serve.yaml" in line and "price_input" in line


def test_ctrl_c_exits_130_and_says_so(tmp_path):
    """A model API that accepts the connection and never answers: the run waits; Ctrl-C ends it."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        port = srv.getsockname()[1]
        proc = subprocess.Popen(
            [
                TELA,
                "collect",
                "--prompts",
                str(_prompts(tmp_path)),
                "--model",
                f"small=http://127.0.0.1:{port}/v1#small",
                "--timeout",
                "600",
                "-o",
                str(tmp_path / "a"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        srv.settimeout(60)
        conn, _ = srv.accept()  # the run is under way: it asked
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            conn.close()
            proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted." in err and "Traceback" not in err
