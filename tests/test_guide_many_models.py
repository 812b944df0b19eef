"""docs/many-models.md, "Route among many models", run as written against stand-ins (issue 28).

STAND-INS, as the real things cannot run here: the model endpoints and the judge are played by
``python -m tela_core.testkit.replay_upstream`` (a loopback server, not a model), started by the
guide's own "Rehearse offline" command, replaying what LLMRouter recorded of four models on 300
questions (``examples/many-models/``: each answer's score, with a placeholder text); its judge model
rates an answer from that recorded score. Everything else is tela as a user runs it: every command
of the guide's ``bash`` blocks, in order, with the stand-in's URL for the endpoints and free ports
for ``tela serve``; the ``tela`` commands run in this process (the CLI a shell would start), ``tela
serve`` as its own process.

What a team relies on: every model's answers are collected and judged into records with one outcome
per model; ``tela run`` trains a router that predicts every model's quality and saves a budget
policy with each model's cost; ``tela serve`` routes among the models (more than one gets traffic),
says each model's predicted quality, and shadows requests to models not chosen; the shadow log
becomes records without asking again; a fourth model's answers are judged alone and joined with the
three judged before, paying no judge call twice; ``tela run --add-to`` adds it from its records,
leaving the first router as it was; ``tela promote`` compares the router with four models to the
versions folder's current one (refused on the rehearsal's data, as the guide says); the server,
restarted with the new model's upstream, routes among all four under the new router's own name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guide_support import spawn

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "many-models.md"
EXAMPLE = ROOT / "examples" / "many-models"
GUIDE_URLS = re.compile(r"https?://[a-z0-9.]+(?::\d+)?/v1")
STANDIN_PORT, SERVE_PORT = "8009", "8000"
FIRST = ["gemma-2-9b-it", "qwen2.5-7b-instruct", "llama-3.1-nemotron-51b-instruct"]
NEW = "llama-3.1-8b-instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each ``## `` section."""
    parts = re.split(r"^## (.*)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def _blocks(text: str, lang: str) -> list[str]:
    return [b for lg, b in re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.M | re.S) if lg == lang]


def _commands(body: str) -> list[str]:
    return [
        c.strip() for c in re.sub(r"\\\n\s*", " ", body).splitlines() if c.strip() and not c.strip().startswith("#")
    ]


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_example_serve_yaml_is_the_guides() -> None:
    """examples/many-models/serve.yaml is the guide's first serve.yaml with each URL the stand-in's."""
    first = _blocks(GUIDE.read_text(encoding="utf-8"), "yaml")[0]
    expected = GUIDE_URLS.sub(f"http://127.0.0.1:{STANDIN_PORT}/v1", first)
    got = (EXAMPLE / "serve.yaml").read_text(encoding="utf-8")
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("# serve.yaml")]  # noqa: E731
    assert strip(got) == strip(expected)


def _chat(port: int, model: str, prompt: str) -> tuple[dict[str, Any], Any]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read()), r.headers


class _Server:
    """``tela serve`` as the guide starts it, in its own process group."""

    def __init__(self, cmd: str, work: Path, env: dict[str, str], port: int) -> None:
        args = shlex.split(cmd.replace(f"--port {SERVE_PORT}", f"--port {port}"))
        self.port = port
        self.proc = spawn([str(Path(sys.executable).parent / "tela"), *args[1:]], work, env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tela serve exited: {self.stop()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"tela serve never answered: {self.stop()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.stdout.read() if self.proc.stdout else ""


@contextlib.contextmanager
def _standin(setup: str) -> Iterator[int]:
    """The rehearsal's stand-in, started by its command as written (a free port for 8009)."""
    (line,) = [c for c in _commands(setup) if "replay_upstream" in c]
    port = _free_port()
    cmd = line.rstrip(" &").replace("../../examples/", f"{ROOT}/examples/")
    cmd = cmd.replace(f"--port {STANDIN_PORT}", f"--port {port}").replace("python ", f"{sys.executable} ", 1)
    proc = spawn(shlex.split(cmd))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the stand-in never answered"
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_many_models_guide_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tela_cli: Any) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    sections = dict(_sections(guide))
    work = tmp_path / "many"
    work.mkdir()
    (setup,) = [b for b in _blocks(sections["Rehearse offline"], "sh") if "replay_upstream" in b]
    with _standin(setup) as standin_port:
        # the rehearsal's setup, as its block says: the example files, the variables, the stand-in
        assert "cp ../../examples/many-models/serve.yaml ../../examples/many-models/prompts.jsonl ." in setup
        for name in ("serve.yaml", "prompts.jsonl"):
            text = (EXAMPLE / name).read_text(encoding="utf-8")
            (work / name).write_text(text.replace(f":{STANDIN_PORT}/", f":{standin_port}/"), encoding="utf-8")
        (exports,) = [c for c in _commands(setup) if c.startswith("export ")]
        env = dict(os.environ)
        for kv in exports.split()[1:]:
            k, v = kv.split("=", 1)
            monkeypatch.setenv(k, v)
            env[k] = v
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        monkeypatch.chdir(work)
        serve_port = _free_port()
        server: _Server | None = None
        ran: list[str] = []
        outputs: dict[str, str] = {}

        def sh(cmd: str) -> None:
            nonlocal server
            if cmd.startswith("tela serve"):
                if server is not None:
                    server.stop()
                server = _Server(cmd, work, env, serve_port)
            elif cmd.startswith("tela "):
                before = _files(work / "runs" / "v1") if cmd.startswith("tela run --add-to runs/v1") else None
                r = tela_cli(*shlex.split(cmd)[1:])
                if cmd.startswith("tela promote") and "runs/v2" in cmd:  # the guide says it is refused here
                    assert r.exit_code == 1 and "refused: AIQ not better beyond the interval" in r.output, r.output
                    assert json.loads((work / "runs/live/versions.json").read_text())["current"] == "v1"
                    assert "not cheaper" in r.output, r.output
                else:
                    assert r.exit_code == 0, f"{cmd}\n{r.output}"
                assert "Traceback" not in r.output, r.output
                outputs[cmd] = r.output
                if before is not None:  # the router a model was added to is not changed
                    assert _files(work / "runs" / "v1") == before
                    _check_added(work)
            elif cmd.startswith("curl "):
                r = subprocess.run(
                    ["bash", "-c", cmd.replace(f"127.0.0.1:{SERVE_PORT}", f"127.0.0.1:{serve_port}")],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert r.returncode == 0 and json.loads(r.stdout)["choices"], r.stdout + r.stderr
            else:
                r = subprocess.run(["bash", "-c", cmd], cwd=work, capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
            ran.append(cmd)

        def add_yaml(block: str) -> None:
            cfg = (work / "serve.yaml").read_text(encoding="utf-8")
            block = GUIDE_URLS.sub(f"http://127.0.0.1:{standin_port}/v1", block)
            if "under upstreams:" in block.splitlines()[0]:
                cfg = cfg.replace("upstreams:\n", "upstreams:\n" + block, 1)
            elif "under routers:" in block.splitlines()[0]:
                cfg = cfg.replace("routers:\n", "routers:\n" + block, 1)
            else:
                cfg += block
            (work / "serve.yaml").write_text(cfg, encoding="utf-8")

        try:
            for heading, body in _sections(guide):
                if not heading[:1].isdigit():
                    continue
                step = int(heading[0])
                for block in re.findall(r"^```(\w+)\n(.*?)^```", body, flags=re.M | re.S):
                    lang, text = block
                    if lang == "yaml" and text.startswith("# serve.yaml (add"):
                        add_yaml(text)
                        continue
                    if lang != "bash":
                        continue
                    for cmd in _commands(text):
                        if step == 5 and cmd.startswith("tela collect --from-log"):
                            _play_users(serve_port)
                        sh(cmd)
                    if step == 4:
                        _check_trained(work)
                    if step == 5 and server is not None and "tela serve" in text:
                        _check_served(server.port, FIRST)
                    if step == 6 and server is not None and "tela serve" in text:
                        _check_served(server.port, [*FIRST, NEW], "router-many-next")
                        _check_served(server.port, FIRST)  # the versions folder's current version, v1
        finally:
            if server is not None:
                log = server.stop()
                assert "Traceback" not in log, log
    assert any(c.startswith("tela run --add-to") for c in ran), ran
    assert any(c.startswith("tela promote --router runs/live --candidate runs/v2") for c in ran), ran
    assert sum(c.startswith("tela serve") for c in ran) == 2, ran
    judged = [json.loads(line) for line in (work / "runs/judged/records.jsonl").read_text().splitlines()]
    assert len(judged) == 200 and all(set(r["outcomes"]) == set(FIRST) for r in judged)
    live = (work / "runs/judged-live/records.jsonl").read_text().splitlines()
    assert live, "the shadow log gave no records"
    # the model added later: only its answers were judged (one judge call each), and its records
    # carry the models judged before beside it (--join), so nothing was paid for twice
    judgements = [json.loads(line) for line in (work / "runs/judged-new/judgements.jsonl").read_text().splitlines()]
    assert judgements and all(set(j["outcomes"]) == {NEW} for j in judgements)
    assert json.loads((work / "runs/judged-new/summary.json").read_text())["this_run"]["calls"] == len(judgements)
    added = [json.loads(line) for line in (work / "runs/judged-new/records.jsonl").read_text().splitlines()]
    assert len(added) == 200 and all(set(r["outcomes"]) == {*FIRST, NEW} for r in added)


def _play_users(port: int) -> None:
    """The rehearsal's traffic line, as written (the users before tela collect --from-log)."""
    (line,) = [c for c in _commands(_blocks(GUIDE.read_text(encoding="utf-8"), "sh")[1]) if "traffic.py" in c]
    cmd = line.replace("../../examples/", f"{ROOT}/examples/").replace(f"--port {SERVE_PORT}", f"--port {port}")
    r = subprocess.run(shlex.split(cmd.replace("python ", f"{sys.executable} ", 1)), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = dict(re.findall(r"([\w.-]+) (\d+) \(", r.stdout))
    assert len([m for m in FIRST if int(counts.get(m, 0)) > 0]) >= 2, r.stdout  # it routes, not one model
    time.sleep(1.0)  # the shadow calls run after the answers


def _check_trained(work: Path) -> None:
    policy = json.loads((work / "runs/v1/policy.json").read_text())
    assert policy["name"] == "budget" and set(policy["models"]) == set(FIRST), policy
    costs = policy["options"]["costs"]
    assert set(costs) == set(FIRST) and costs["gemma-2-9b-it"] < costs["llama-3.1-nemotron-51b-instruct"]


def _check_served(port: int, models: list[str], name: str = "router-many") -> None:
    body, headers = _chat(port, name, "Which can view an ocean?")
    quality = json.loads(headers["x-tela-quality"])
    assert set(quality) == set(models), quality
    assert headers["x-tela-model"] in models


def _check_added(work: Path) -> None:
    manifest = json.loads((work / "runs/v2/tela.json").read_text())
    assert manifest["models"] == [*FIRST, NEW] or set(manifest["models"]) == {*FIRST, NEW}, manifest["models"]
    (step,) = manifest["added_models"]
    assert step["model"] == NEW and step["records"] == 160
    policy = json.loads((work / "runs/v2/policy.json").read_text())
    assert set(policy["models"]) == {*FIRST, NEW} and NEW in policy["options"]["costs"]
