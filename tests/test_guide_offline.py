"""A new user's path, as README.md and docs/own-models.md write it, from a fresh clone (issue 25).

STAND-INS, as the real things cannot run here: remote model APIs are played by loopback servers.
``tela_core.testkit.replay_upstream.ReplayUpstream`` replays answers real models gave (the bundled
``examples/rehearsal/`` sample of RouterArena's recorded answers of ``gemini-2.0-flash-001`` and
``claude-3-haiku-20240307``), and its *judge* models rate an answer from that answer's recorded
score (it is not a model); ``examples/standin_upstream.py`` answers with its own name. Everything
else is tela as a user runs it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_replay() -> Iterator[ReplayUpstream]:
    recorded = {"served-model": {"What is 2 + 2?": Recorded("4", 8, 1, 1.0)},
                "other-model": {"What is 2 + 2?": Recorded("5", 8, 1, 0.0)}}
    with ReplayUpstream(recorded, judges=["judge-model"]) as up:
        yield up


def _config(tmp_path: Path, url: str, **models: tuple[str, str]) -> Path:
    lines = ["upstreams:"]
    for name, (base, model) in models.items():
        lines.append(f"  {name}: {{base_url: '{base}', model: {model}, price_input: 1, price_output: 1}}")
    path = tmp_path / "serve.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- item 3: --dry-run checks each model, as the guide says ---------------------------------------------

def test_collect_dry_run_fails_on_a_bad_model_one_line_each(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    """An unserved model name and a dead port each get their line; exit 2; nothing asked, nothing written."""
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    cfg = _config(tmp_path, small_replay.base_url, good=(small_replay.base_url, "served-model"),
                  ghost=(small_replay.base_url, "not-served"), dead=(dead, "other-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--model", "good", "--model", "ghost",
                 "--model", "dead", "--dry-run", "-o", tmp_path / "answers")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert "2 models failed the check" in r.output, r.output
    ghost = [ln for ln in r.output.splitlines() if ln.strip().startswith("ghost:")]
    dead_lines = [ln for ln in r.output.splitlines() if ln.strip().startswith("dead:")]
    assert len(ghost) == 1 and "'not-served' is not among this upstream's models" in ghost[0], r.output
    assert len(dead_lines) == 1 and "Connect" in dead_lines[0], r.output
    assert not any(line.strip().startswith("good:") for line in r.output.splitlines())
    assert small_replay.stats()["requests"] == 0  # the check is GET /models: no chat call, nothing paid
    assert not (tmp_path / "answers" / "answers.jsonl").exists()


def test_collect_dry_run_passes_when_every_model_is_there(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    cfg = _config(tmp_path, small_replay.base_url, good=(small_replay.base_url, "served-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--dry-run", "-o", tmp_path / "answers")
    assert r.exit_code == 0, r.output
    assert "estimated cost" in r.output and small_replay.stats()["requests"] == 0


def test_judge_dry_run_checks_the_judge_model(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    url = small_replay.base_url
    cfg = _config(tmp_path, url, good=(url, "served-model"), other=(url, "other-model"), judge=(url, "judge-model"),
                  nojudge=(url, "no-such-judge"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--model", "good", "--model", "other",
                 "-o", tmp_path / "answers")
    assert r.exit_code == 0, r.output
    r = tela_cli("judge", "--answers", tmp_path / "answers", "--judge", "llm-judge", "--judge-model", "nojudge",
                 "--config", cfg, "--dry-run", "-o", tmp_path / "judged")
    assert r.exit_code == 2, r.output
    assert "nojudge:" in r.output and "'no-such-judge' is not among" in r.output, r.output
    r = tela_cli("judge", "--answers", tmp_path / "answers", "--judge", "llm-judge", "--judge-model", "judge",
                 "--config", cfg, "--dry-run", "-o", tmp_path / "judged")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "judged" / "records.jsonl").exists()


def test_dry_run_help_says_it_checks_the_models(tela_cli: Any) -> None:
    for cmd in ("collect", "judge"):
        out = " ".join(tela_cli(cmd, "--help").output.split())
        assert "Check each model once (reachable, key accepted, model listed" in out, out


# -- item 4 and "Done when": docs/own-models.md rehearsed offline, as written ----------------------------

import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

GUIDE = ROOT / "docs" / "own-models.md"
REHEARSAL = ROOT / "examples" / "rehearsal"
GUIDE_URLS = ("https://generativelanguage.googleapis.com/v1beta/openai", "https://api.anthropic.com/v1", "https://api.openai.com/v1")
STANDIN_PORT, SERVE_PORT = "8009", "8000"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    nxt = re.search(r"^## ", text[start + len(heading) + 2:], flags=re.M)
    return text[start: start + len(heading) + 2 + nxt.start()] if nxt else text[start:]


def _blocks(text: str, lang: str | None = None) -> list[tuple[str, str]]:
    return [(lg, body) for lg, body in re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.M | re.S) if lang in (None, lg)]


def _commands(body: str) -> list[str]:
    return [c.strip() for c in re.sub(r"\\\n\s*", " ", body).splitlines() if c.strip() and not c.strip().startswith("#")]


def _guide_env(clone: Path) -> dict[str, str]:
    """A user's shell: offline, no test data, this python's venv; tela's own cache (make install's)."""
    from tela_core.testkit.helpers import OFFLINE_VARS

    env = {k: v for k, v in os.environ.items() if not k.startswith("TELA_TEST")}
    env.update(OFFLINE_VARS)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 180) -> None:
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


def _stop(proc: subprocess.Popen[str] | None) -> str:
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


def test_the_rehearsal_serve_yaml_is_the_guides() -> None:
    """examples/rehearsal/serve.yaml is the guide's serve.yaml with each URL the stand-in's: nothing else."""
    (first_yaml,) = [b for _lg, b in _blocks(GUIDE.read_text(encoding="utf-8"), "yaml")][:1]
    expected = first_yaml
    for u in GUIDE_URLS:
        expected = expected.replace(u, f"http://127.0.0.1:{STANDIN_PORT}/v1")
    got = (REHEARSAL / "serve.yaml").read_text(encoding="utf-8")
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("# serve.yaml")]  # noqa: E731
    assert strip(got) == strip(expected)


def test_the_replay_standin_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tela_core.testkit.replay_upstream", "--routerarena", str(REHEARSAL / "recorded"),
                            "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot listen on" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_own_models_guide_rehearsed_offline(tmp_path: Path) -> None:
    """docs/own-models.md's "Rehearse offline" commands, then every command of the guide as written,
    from a folder laid out as a fresh clone, with no test data: ports are the only change (free ones
    for 8009 and 8000). What a user relies on: the dry run checks the models (and fails on a model
    the upstream does not serve), the judge step yields records, and the served router sends each
    model a share of the traffic near the operating point its training stated."""
    guide = GUIDE.read_text(encoding="utf-8")
    rehearse = _section(guide, "## Rehearse offline")
    setup_block, traffic_block = [b for _lg, b in _blocks(rehearse, "sh")]
    assert not _blocks(rehearse, "bash"), "the rehearsal's blocks are sh: tests/test_flywheel.py runs the bash ones"
    standin_port, serve_port = str(_free_port()), str(_free_port())

    def ports(text: str) -> str:
        return text.replace(STANDIN_PORT, standin_port).replace(f"127.0.0.1:{SERVE_PORT}", f"127.0.0.1:{serve_port}") \
                   .replace(f"--port {SERVE_PORT}", f"--port {serve_port}")

    clone = tmp_path / "clone"  # a fresh clone's layout: examples/ and the venv
    clone.mkdir()
    os.symlink(ROOT / "examples", clone / "examples")
    venv = Path(sys.executable).parent.parent
    if (venv / "bin" / "activate").exists():
        os.symlink(venv, clone / ".venv")
    else:  # a python without a venv: activation is a no-op
        (clone / ".venv" / "bin").mkdir(parents=True)
        (clone / ".venv" / "bin" / "activate").write_text("", encoding="utf-8")
    env = _guide_env(clone)
    # the setup block runs as the user's shell runs it; the stand-in stays in the background
    setup = ports(setup_block).replace("cp ../../examples/rehearsal/serve.yaml", "cp ../../examples/rehearsal/serve.yaml")
    script = f"set -e\n{setup}\nsed -i 's/:{STANDIN_PORT}/:{standin_port}/' serve.yaml\nenv -0 > {tmp_path}/env.out\npwd > {tmp_path}/pwd.out\nwait\n"
    standin = subprocess.Popen(["bash", "-c", script], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    serve: subprocess.Popen[str] | None = None
    outputs: dict[str, str] = {}
    try:
        _wait_http(f"http://127.0.0.1:{standin_port}/v1/models", standin, 60)
        deadline = time.monotonic() + 30
        while not (tmp_path / "pwd.out").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        work = Path((tmp_path / "pwd.out").read_text().strip())
        assert work == clone / "runs" / "rehearsal"
        shell_env = dict(kv.split("=", 1) for kv in (tmp_path / "env.out").read_text().split("\0") if "=" in kv)
        assert shell_env["OPENAI_API_KEY"] == "stand-in"

        def sh(cmd: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=work, env=shell_env, capture_output=True, text=True,
                               timeout=900)
            assert (r.returncode == 0) == ok, f"{cmd}\n{r.stdout}\n{r.stderr}"
            assert "Traceback" not in r.stderr, r.stderr
            return r

        first_yaml = True
        for lang, body in _blocks(guide[guide.index("\n## 1."):]):
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
            for cmd in _commands(body):
                cmd = ports(cmd)
                if cmd.startswith("tela serve"):
                    serve = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=work, env=shell_env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
                    _wait_http(f"http://127.0.0.1:{serve_port}/ready", serve)
                    continue
                if "--from-log" in cmd and "collect" in cmd:  # the rehearsal's users come before the log is read
                    (traffic_cmd,) = _commands(traffic_block)
                    outputs["traffic"] = sh(ports(traffic_cmd)).stdout
                    time.sleep(2)  # shadow calls finish off the response path
                r = sh(cmd)
                outputs[cmd] = r.stdout + r.stderr
                if "--dry-run" in cmd:  # the same dry run, one model the upstream does not serve: it fails, naming it
                    bad = cmd.replace("--model haiku", f"--model haiku=http://127.0.0.1:{standin_port}/v1#claude-3-opus")
                    r = sh(bad, ok=False)
                    assert r.returncode == 2, r.stderr
                    assert "haiku:" in r.stderr and "'claude-3-opus' is not among" in r.stderr, r.stderr
                    assert not (work / "runs/answers/answers.jsonl").exists()

        # the judge step yields records: one per prompt, each with its label and both models' outcomes
        records = [json.loads(x) for x in (work / "runs/judged/records.jsonl").read_text().splitlines() if x.strip()]
        assert len(records) == 150
        assert all(r["messages"][-1]["content"] in {f"[[{k}]]" for k in range(1, 6)} for r in records)
        assert all(set(r["outcomes"]) >= {"flash", "haiku"} or len(r["outcomes"]) == 2 for r in records)
        agreement = json.loads((work / "runs/agreement/agreement.json").read_text())
        assert agreement["label"]["n"] == 50
        # the served router: the traffic's split is near the operating point `tela run` chose and stated
        m = re.search(r"^(\d+) requests to router-mine: (.*)$", outputs["traffic"], flags=re.M)
        assert m, outputs["traffic"]
        went = {name: int(k) for name, k in re.findall(r"(\S+) (\d+) \(\d+%\)", m.group(2))}
        assert set(went) == {"flash", "haiku"} and sum(went.values()) == int(m.group(1)) == 300, went
        policy = json.loads((work / "runs/v1/policy.json").read_text())
        stated = policy.get("operating_point", {}).get("strong_share")
        assert stated is not None, policy
        served = went["haiku"] / 300
        assert abs(served - stated) <= 0.15, (served, stated, policy)
    finally:
        log = _stop(serve)
        _stop(standin)
    assert "Traceback" not in log, log


# -- item 5: the README tour outside make: one cache, and a console that is never silent for minutes ---------

class _FakeLauncher:
    """Stands for the launcher process: done once ``finish`` is called."""

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def test_training_progress_reaches_a_console_that_is_no_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """While DeepSpeed compiles an op (minutes, only in train.log) and while it trains (loss only in
    progress.jsonl), a console that is a pipe or a file gets lines: the phase, then steps with the loss."""
    import threading

    from tela_core.train import launch

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    log, progress = tmp_path / "train.log", tmp_path / "progress.jsonl"
    log.write_text("$ torchrun ...\n", encoding="utf-8")
    proc = _FakeLauncher()

    def workers() -> None:
        time.sleep(0.3)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write("Using /x as PyTorch extensions root...\nBuilding extension module cpu_adam...\n")
        time.sleep(1.2)
        with open(progress, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": "begin", "step": 0, "max_steps": 8}) + "\n")
            fh.write(json.dumps({"event": "log", "step": 4, "max_steps": 8, "epoch": 0.5, "loss": 1.25}) + "\n")
            fh.write(json.dumps({"event": "log", "step": 8, "max_steps": 8, "epoch": 1.0, "loss": 0.75}) + "\n")
        time.sleep(1.2)
        proc.returncode = 0

    t = threading.Thread(target=workers)
    t.start()
    launch._stream(proc, progress, 0, quiet=False, log_path=log)  # type: ignore[arg-type]
    t.join()
    err = capsys.readouterr().err
    assert "training: building DeepSpeed's cpu_adam op (once: it is kept in TORCH_EXTENSIONS_DIR" in err, err
    assert str(tmp_path / "ext") in err
    assert "training: step 0/8" in err and "training: step 8/8, loss 0.7500" in err, err
