"""docs/own-models.md run once per session, as a user rehearses it (issues 18 and 25): the "Rehearse
offline" commands, then every command of the guide as written, in a folder laid out as a fresh
clone, with no test data; ports are the only change (free ones for 8009 and 8000). Two tests read
the one run (it takes half a minute): tests/test_guide_offline.py (the rehearsal as a user runs
it) and tests/test_flywheel.py (what each step of the flywheel leaves).

STAND-INS, as the real things cannot run here: the guide's rehearsal starts
``tela_core.testkit.replay_upstream`` (a loopback server replaying the answers
``gemini-2.0-flash-001`` and ``claude-3-haiku-20240307`` really gave, whose judge models rate an
answer from its recorded score; it is not a model). The users' traffic goes through a loopback
relay of this module (:class:`_Relay`) that passes each request and answer through unchanged and
keeps what the client received, so the answers can be checked against the recorded ones.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "own-models.md"
REHEARSAL = ROOT / "examples" / "rehearsal"
#: the real endpoints the guide shows (examples/rehearsal/serve.yaml has the stand-in's for each)
GUIDE_URLS = (
    "https://generativelanguage.googleapis.com/v1beta/openai",
    "https://api.anthropic.com/v1",
    "https://api.openai.com/v1",
)
STANDIN_PORT, SERVE_PORT = "8009", "8000"
FLASH, HAIKU = "gemini-2.0-flash-001", "claude-3-haiku-20240307"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    nxt = re.search(r"^## ", text[start + len(heading) + 2 :], flags=re.M)
    return text[start : start + len(heading) + 2 + nxt.start()] if nxt else text[start:]


def blocks(text: str, lang: str | None = None) -> list[tuple[str, str]]:
    return [
        (lg, body) for lg, body in re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.M | re.S) if lang in (None, lg)
    ]


def commands(body: str) -> list[str]:
    return [
        c.strip() for c in re.sub(r"\\\n\s*", " ", body).splitlines() if c.strip() and not c.strip().startswith("#")
    ]


def guide_env() -> dict[str, str]:
    """A user's shell: offline, no test data, this python's venv; tela's own cache (make install's)."""
    from tela_core.testkit.helpers import OFFLINE_VARS

    env = {k: v for k, v in os.environ.items() if not k.startswith("TELA_TEST")}
    env.update(OFFLINE_VARS)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def spawn(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, stderr: int = subprocess.STDOUT
) -> subprocess.Popen[str]:
    """Start ``args`` in a process group of its own (``stop`` ends it with its children), its output
    read as text from ``stdout`` (``stderr`` goes there too unless told)."""
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
    )


def stop(proc: subprocess.Popen[str] | None) -> str:
    if proc is None:
        return ""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@dataclass
class Answered:
    """One user's request as the client saw it: the prompt, the HTTP status, the model that answered
    (``x-tela-model``) and the answer's text."""

    prompt: str
    status: int
    model: str | None
    content: str | None


class _Relay:
    """A loopback relay between the users (examples/rehearsal/traffic.py) and ``tela serve``: each
    POST goes on unchanged and its answer comes back unchanged (status, ``x-tela-*`` headers, body);
    what each client received is kept in ``answered``."""

    def __init__(self, target_port: int) -> None:
        self.answered: list[Answered] = []
        lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=120)
                try:
                    conn.request("POST", self.path, body, {"content-type": "application/json"})
                    resp = conn.getresponse()
                    raw = resp.read()
                    headers = [(k, v) for k, v in resp.getheaders() if k.lower().startswith(("x-", "content-type"))]
                    status = resp.status
                finally:
                    conn.close()
                try:
                    content = json.loads(raw)["choices"][0]["message"]["content"]
                except (ValueError, KeyError, IndexError, TypeError):
                    content = None
                prompt = json.loads(body)["messages"][-1]["content"]
                with lock:
                    model = {k.lower(): v for k, v in headers}.get("x-tela-model")
                    relay.answered.append(Answered(prompt, status, model, content))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64  # every user's connection is taken at once (traffic.py sends 8 at a time)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class GuideRun:
    """What one run of the guide left, for the tests to check."""

    clone: Path  #: the fresh clone's layout the rehearsal ran in
    work: Path  #: the folder the rehearsal's setup block left the shell in
    shell_env: dict[str, str]  #: the variables the setup block exported
    ran: list[str] = field(default_factory=list)  #: every command of the guide run, as written
    outputs: dict[str, str] = field(default_factory=dict)  #: stdout + stderr of each (with ports changed)
    traffic: str = ""  #: what examples/rehearsal/traffic.py printed
    answered: list[Answered] = field(default_factory=list)  #: what each of its users received
    bad_dry_run: subprocess.CompletedProcess[str] | None = None  #: the dry run naming a model not served
    answers_after_bad_dry_run: bool = False  #: whether runs/answers/answers.jsonl existed after it
    budget_summary: dict[str, Any] | None = None  #: summary.json right after the `--max-cost 0.02` collect
    requests_around_from_log: tuple[int, int] = (0, 0)  #: the stand-in's request count before and after
    standin_stats: dict[str, Any] = field(default_factory=dict)  #: the stand-in's GET /stats at the end
    serve_log: str = ""  #: tela serve's output


def run_own_models_guide(tmp_path: Path, env_overrides: dict[str, str | None]) -> GuideRun:
    """Run the rehearsal and the guide (see the module doc) under ``tmp_path``. Every command must
    succeed with no traceback, except the one dry run made to fail on purpose."""
    guide = GUIDE.read_text(encoding="utf-8")
    rehearse = section(guide, "## Rehearse offline")
    setup_block, traffic_block = [b for _lg, b in blocks(rehearse, "sh")]
    standin_port, serve_port = str(free_port()), str(free_port())

    def ports(text: str) -> str:
        return (
            text.replace(STANDIN_PORT, standin_port)
            .replace(f"127.0.0.1:{SERVE_PORT}", f"127.0.0.1:{serve_port}")
            .replace(f"--port {SERVE_PORT}", f"--port {serve_port}")
        )

    clone = tmp_path / "clone"  # a fresh clone's layout: examples/ and the venv
    clone.mkdir()
    os.symlink(ROOT / "examples", clone / "examples")
    venv = Path(sys.executable).parent.parent
    if (venv / "bin" / "activate").exists():
        os.symlink(venv, clone / ".venv")
    else:  # a python without a venv: activation is a no-op
        (clone / ".venv" / "bin").mkdir(parents=True)
        (clone / ".venv" / "bin" / "activate").write_text("", encoding="utf-8")
    env = guide_env()
    for k, v in env_overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    # the setup block runs as the user's shell runs it; the stand-in stays in the background
    script = f"set -e\n{ports(setup_block)}\nsed -i 's/:{STANDIN_PORT}/:{standin_port}/' serve.yaml\nenv -0 > {tmp_path}/env.out\npwd > {tmp_path}/pwd.out\nwait\n"  # noqa: E501
    standin = spawn(["bash", "-c", script], clone, env)
    standin_url = f"http://127.0.0.1:{standin_port}"
    serve: subprocess.Popen[str] | None = None
    relay: _Relay | None = None
    try:
        wait_http(f"{standin_url}/v1/models", standin, 60)
        deadline = time.monotonic() + 30
        while not (tmp_path / "pwd.out").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        work = Path((tmp_path / "pwd.out").read_text().strip())
        shell_env = dict(kv.split("=", 1) for kv in (tmp_path / "env.out").read_text().split("\0") if "=" in kv)
        run = GuideRun(clone=clone, work=work, shell_env=shell_env)

        def sh(cmd: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            r = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", cmd],
                cwd=work,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert (r.returncode == 0) == ok, f"{cmd}\n{r.stdout}\n{r.stderr}"
            assert "Traceback" not in r.stderr, r.stderr
            return r

        first_yaml = True
        for lang, body in blocks(guide[guide.index("\n## 1.") :]):
            if lang == "yaml":
                head, _, rest = body.partition("\n")
                if first_yaml:  # serve.yaml came from examples/rehearsal (test_the_rehearsal_serve_yaml_is_the_guides)
                    first_yaml = False
                    continue
                name = re.fullmatch(r"# (\S+) \(add\)", head.strip())
                assert name, head
                with open(work / name.group(1), "a", encoding="utf-8") as fh:
                    fh.write(rest)
                continue
            if lang != "bash":
                continue
            for written in commands(body):
                run.ran.append(written)
                cmd = ports(written)
                if cmd.startswith("tela serve"):
                    serve = spawn(["bash", "-c", f"exec {cmd}"], work, shell_env)
                    wait_http(f"http://127.0.0.1:{serve_port}/ready", serve)
                    continue
                if "--from-log" in cmd and "collect" in cmd:  # the rehearsal's users come before the log is read
                    (traffic_cmd,) = commands(traffic_block)
                    relay = _Relay(int(serve_port))
                    run.traffic = sh(traffic_cmd.replace(f"--port {SERVE_PORT}", f"--port {relay.port}")).stdout
                    relay.close()
                    run.answered, relay = relay.answered, None
                    time.sleep(2)  # shadow calls finish off the response path
                before = _get_json(f"{standin_url}/stats")["requests"]
                r = sh(cmd)
                run.outputs[cmd] = r.stdout + r.stderr
                if "--from-log" in cmd and "collect" in cmd:
                    run.requests_around_from_log = (before, _get_json(f"{standin_url}/stats")["requests"])
                if "--max-cost 0.02" in cmd:
                    run.budget_summary = json.loads((work / "runs/answers/summary.json").read_text())
                if "--dry-run" in cmd:  # the same dry run, one model the upstream does not serve: it fails
                    bad = cmd.replace(
                        "--model haiku", f"--model haiku=http://127.0.0.1:{standin_port}/v1#claude-3-opus"
                    )
                    run.bad_dry_run = sh(bad, ok=False)
                    run.answers_after_bad_dry_run = (work / "runs/answers/answers.jsonl").exists()
        run.standin_stats = _get_json(f"{standin_url}/stats")
    finally:
        if relay is not None:
            relay.close()
        log = stop(serve)
        stop(standin)
    run.serve_log = log
    return run
