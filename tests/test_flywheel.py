"""The flywheel of issue 18, end to end through the real CLI: prompts -> `tela collect` -> `tela judge`
-> `tela run` -> `tela eval` -> `tela serve` with shadow mode -> `tela collect --from-log` of the
shadow log -> `tela judge` -> `tela run` again on more records -> hot reload.

STAND-INS, as the real things cannot run here: the two answering models and the judge models are
remote APIs, played by tela_core.testkit.replay_upstream.ReplayUpstream, a loopback server that
answers each prompt with what `gemini-2.0-flash-001` and `claude-3-haiku-20240307` really answered
to it when RouterArena recorded them (the public RouterArena data), and whose *judge* models rate an
answer from that answer's recorded score (it is not a model). Everything else is tela as a user runs
it: `tela` processes for every command, `tela serve` on loopback, HTTP requests as a client sends.

``test_own_models_guide_runs`` checks what every command block of docs/own-models.md, run in order,
leaves. The commands run once per session for it and tests/test_guide_offline.py
(tests/guide_support.py), as the guide's "Rehearse offline" section has a user run them: its
``serve.yaml`` is the guide's with the stand-in's address for each real provider's URL, the API
keys are dummies, and free ports stand for 8009 and 8000. Nothing else in the commands is changed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from guide_support import REHEARSAL, GuideRun

from tela_core.testkit.helpers import OFFLINE_VARS, needs_public_data, public_data
from tela_core.testkit.replay_upstream import ReplayUpstream

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "own-models.md"
ARENA = public_data("routerarena-sub10")
FLASH, HAIKU = "gemini-2.0-flash-001", "claude-3-haiku-20240307"
BIN = str(Path(sys.executable).parent)
#: the real endpoints the guide shows, each swapped for the stand-in's address
GUIDE_URLS = (
    "https://generativelanguage.googleapis.com/v1beta/openai",
    "https://api.anthropic.com/v1",
    "https://api.openai.com/v1",
)
ADMIN_TOKEN = "flywheel-admin-token"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_VARS)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.setdefault("TELA_CACHE", str(ROOT / ".cache" / "tela"))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # the guide's api_key_env variables: the stand-in takes any key
    env.update(
        {
            "GEMINI_API_KEY": "stand-in",
            "ANTHROPIC_API_KEY": "stand-in",
            "OPENAI_API_KEY": "stand-in",
            "TELA_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    return env


def _tela(cwd: Path, *args: Any, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["tela", *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"tela {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        headers={"content-type": "application/json", **(headers or {})},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            return (
                r.status,
                {k.lower(): v for k, v in r.headers.items()},
                json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode(),
            )
    except urllib.error.HTTPError as e:
        return e.code, {}, e.read().decode()


class _Serve:
    """A `tela serve` process started from a shell command line, ready when /ready says 200."""

    def __init__(self, command: str, cwd: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tela serve exited with {self.proc.returncode}:\n{self.stop()}")
            try:
                if _http(self.url + "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"tela serve did not become ready:\n{self.stop()}")

    def chat(self, prompt: str) -> tuple[int, dict[str, str], Any]:
        return _http(
            self.url + "/v1/chat/completions",
            {"model": "router-mine", "messages": [{"role": "user", "content": prompt}]},
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture
def replay() -> Iterator[ReplayUpstream]:
    assert ARENA is not None
    with ReplayUpstream.from_routerarena(ARENA, models=[FLASH, HAIKU], judges=["gpt-4o", "gpt-4o-mini"]) as up:
        yield up


def _questions(up: ReplayUpstream) -> list[str]:
    """RouterArena's prompts both models answered, in the data's order."""
    both = set(up.prompts(HAIKU))
    return [q for q in up.prompts(FLASH) if q in both]


def _send_traffic(serve: _Serve, prompts: list[str], up: ReplayUpstream) -> None:
    """Clients asking the router, 8 at a time; every answer is the chosen model's recorded one."""

    def one(p: str) -> None:
        status, headers, body = serve.chat(p)
        assert status == 200, body
        model = {"flash": FLASH, "haiku": HAIKU}[headers["x-tela-model"]]
        assert body["choices"][0]["message"]["content"] == up.recorded[model][p].text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, prompts))


def _wait_for_lines(path: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (path.exists() and len(path.read_text().splitlines()) >= n):
        time.sleep(0.2)


# -- the whole loop, step by step, with what a user relies on at each step ---------------------------


@needs_public_data("routerarena-sub10")
def test_the_flywheel_end_to_end(tmp_path: Path, replay: ReplayUpstream) -> None:
    questions = _questions(replay)
    first, live = questions[:120], questions[120:180]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in first), encoding="utf-8")
    url = replay.base_url
    (tmp_path / "serve.yaml").write_text(
        "upstreams:\n"
        f"  flash: {{base_url: '{url}', model: {FLASH}, price_input: 0.1, price_output: 0.4}}\n"
        f"  haiku: {{base_url: '{url}', model: {HAIKU}, price_input: 0.25, price_output: 1.25}}\n"
        f"  judge: {{base_url: '{url}', model: gpt-4o, price_input: 2.5, price_output: 10}}\n",
        encoding="utf-8",
    )
    models = ["--config", "serve.yaml", "--model", "flash", "--model", "haiku"]
    pair = ["--set", f"source.models.weak={FLASH}", "--set", f"source.models.strong={HAIKU}"]  # models are named by id

    # collect: every prompt, each model once, with the recorded answers and their costs
    _tela(tmp_path, "collect", "--prompts", "prompts.jsonl", *models, "--max-cost", 1, "-o", "answers")
    rows = _jsonl(tmp_path / "answers" / "answers.jsonl")
    assert len(rows) == 120
    for q, row in zip(first, rows):
        for name, model in (("flash", FLASH), ("haiku", HAIKU)):
            a = row["answers"][model]
            assert (
                a["error"] is None
                and a["text"] == replay.recorded[model][q].text
                and a["cost"] > 0
                and a["upstream"] == name
            )
    assert max(replay.requests_for(FLASH).values()) == 1 and max(replay.requests_for(HAIKU).values()) == 1

    # judge: every answer rated by the (stand-in) judge model; the labels are the weak model's rating
    _tela(
        tmp_path,
        "judge",
        "--answers",
        "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        "serve.yaml",
        "--set",
        "judge.rate=all",
        "-o",
        "judged",
    )
    records = _jsonl(tmp_path / "judged" / "records.jsonl")
    assert len(records) == 120
    for q, rec in zip(first, records):
        k = 1 + round(4 * (replay.recorded[FLASH][q].score or 0.0))
        assert rec["prompt"] == q and rec["messages"][-1]["content"] == f"[[{k}]]"
        assert rec["outcomes"][FLASH] == (k - 1) / 4 and set(rec["costs"]) == {FLASH, HAIKU}

    # run and eval: a router on the records, judged on the first 100 / last 20 split
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:100]), encoding="utf-8")
    (tmp_path / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[100:]), encoding="utf-8")
    _tela(tmp_path, "run", "--data", "train.jsonl", "--family", "length", *pair, "-o", "v1")
    manifest = json.loads((tmp_path / "v1" / "tela.json").read_text())
    assert (manifest["weak"], manifest["strong"], manifest["train_records"]) == (FLASH, HAIKU, 100)
    _tela(tmp_path, "eval", "--router", "v1", "--data", "heldout.jsonl", "-o", "v1-eval")
    assert json.loads((tmp_path / "v1-eval" / "report.json").read_text())

    # serve with shadow mode on every request, through a link a new version can replace
    os.symlink("v1", tmp_path / "live")
    with open(tmp_path / "serve.yaml", "a", encoding="utf-8") as fh:
        fh.write(
            "routers:\n  mine: {path: live, upstreams: [flash, haiku], shadow: 1.0}\nshadow_log: shadow.jsonl\nlog_prompts: true\n"  # noqa: E501
            "admin_token_env: TELA_ADMIN_TOKEN\n"
        )
    calls_before = replay.stats()["requests"]
    port = _free_port()
    serve = _Serve(f"tela serve --config serve.yaml --port {port} --log-level warning", tmp_path, port)
    try:
        _send_traffic(serve, live, replay)
        _wait_for_lines(tmp_path / "shadow.jsonl", len(live))
        shadow = _jsonl(tmp_path / "shadow.jsonl")
        assert len(shadow) == len(live)
        assert replay.stats()["requests"] - calls_before == 2 * len(live)  # the user's call and one shadow call each
        for row in shadow:
            assert set(row["answers"]) == {FLASH, HAIKU} and all(a["error"] is None for a in row["answers"].values())

        # collect --from-log asks nothing: both answers of every logged request are in the log
        calls_before = replay.stats()["requests"]
        _tela(tmp_path, "collect", "--from-log", "shadow.jsonl", *models, "-o", "answers-live")
        assert replay.stats()["requests"] == calls_before
        live_rows = _jsonl(tmp_path / "answers-live" / "answers.jsonl")
        assert {r["messages"][-1]["content"] for r in live_rows} == set(live)
        for r in live_rows:
            q = r["messages"][-1]["content"]
            assert r["answers"][FLASH]["text"] == replay.recorded[FLASH][q].text
            assert r["answers"][HAIKU]["text"] == replay.recorded[HAIKU][q].text

        _tela(
            tmp_path,
            "judge",
            "--answers",
            "answers-live",
            "--judge",
            "llm-judge",
            "--judge-model",
            "judge",
            "--config",
            "serve.yaml",
            "--set",
            "judge.rate=all",
            "-o",
            "judged-live",
        )
        assert len(_jsonl(tmp_path / "judged-live" / "records.jsonl")) == len(live)

        # run again on more records; swap the link; reload: the server now routes with v2
        _tela(
            tmp_path,
            "run",
            "--data",
            "train.jsonl",
            "--data",
            "judged-live/records.jsonl",
            "--family",
            "length",
            *pair,
            "-o",
            "v2",
        )
        assert json.loads((tmp_path / "v2" / "tela.json").read_text())["train_records"] == 100 + len(live)
        os.symlink("v2", tmp_path / "live.new")
        os.replace(tmp_path / "live.new", tmp_path / "live")
        status, _, body = _http(serve.url + "/admin/reload", {}, {"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert status == 200 and body["routers"]["mine"]["ok"], body
        assert body["routers"]["mine"]["path"] == str(tmp_path / "live")
        from tela_core import Router

        v1, v2 = Router.load(tmp_path / "v1"), Router.load(tmp_path / "v2")
        probe = next(q for q in questions[180:] if abs(v1.score([q])[0] - v2.score([q])[0]) > 1e-3)
        _, headers, _ = serve.chat(probe)
        assert float(headers["x-tela-score"]) == pytest.approx(v2.score([probe])[0], abs=1e-3)
    finally:
        out = serve.stop()
    assert "Traceback" not in out, out


def test_a_router_path_in_the_config_file_keeps_its_symbolic_link(tmp_path: Path) -> None:
    """A hot reload reads the router folder where the link points *then*: the config file's relative
    router path must stay the link, not the folder it pointed to when the server started."""
    from tela_core.upstreams.config import read_config_file

    (tmp_path / "v1").mkdir()
    os.symlink("v1", tmp_path / "live")
    (tmp_path / "serve.yaml").write_text("routers:\n  mine: {path: live}\n", encoding="utf-8")
    assert read_config_file(tmp_path / "serve.yaml")["routers"]["mine"]["path"] == str(tmp_path / "live")


# -- the guide, docs/own-models.md, command by command -------------------------------------------------


def _guide_steps() -> list[tuple[str, str]]:
    """("file", "NAME\\nTEXT") / ("append", ...) for the YAML blocks headed ``# NAME`` / ``# NAME (add)``,
    ("run", COMMAND) for each command of a bash block (continuation lines joined), in order."""
    steps: list[tuple[str, str]] = []
    for lang, body in re.findall(r"^```(\w+)\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), flags=re.M | re.S):
        if lang == "yaml":
            head, _, rest = body.partition("\n")
            m = re.fullmatch(r"# (\S+)( \(add\))?", head.strip())
            assert m, f"a YAML block of the guide must start with '# FILE' or '# FILE (add)': {head!r}"
            steps.append(("append" if m.group(2) else "file", f"{m.group(1)}\n{rest}"))
        elif lang == "bash":
            for cmd in re.sub(r"\\\n\s*", " ", body).splitlines():
                if cmd.strip() and not cmd.strip().startswith("#"):
                    steps.append(("run", cmd.strip()))
    return steps


def test_the_guide_shows_the_whole_loop() -> None:
    """What the guide promises is in its commands (so the run below covers it)."""
    cmds = [c for kind, c in _guide_steps() if kind == "run"]
    text = "\n".join(cmds)
    for must in (
        "tela collect --prompts",
        "--dry-run",
        "--max-cost",
        "tela judge",
        "--agreement",
        "tela run",
        "tela eval",
        "tela serve",
        "tela collect --from-log",
        "/admin/reload",
        "tela zoo",
    ):
        assert must in text, must
    assert [c.split()[1] for c in cmds if c.startswith("tela ")].count("run") == 2  # trained twice: v1, then v2
    guide = GUIDE.read_text(encoding="utf-8")
    assert "log_prompts" in guide and "llm-judge" in guide and "reference" in guide and "pairwise" in guide
    for u in GUIDE_URLS:
        assert u in guide


@pytest.mark.slow
def test_own_models_guide_runs(own_models_guide: GuideRun) -> None:
    """Every command of docs/own-models.md, run in order by the rehearsal (tests/guide_support.py,
    one run shared with tests/test_guide_offline.py): what each step says it leaves, is there."""
    run, work = own_models_guide, own_models_guide.work
    # the run ran every command of the guide's bash blocks, as written, in order
    steps = _guide_steps()
    assert run.ran == [c for kind, c in steps if kind == "run"]
    # the guide's one whole file is serve.yaml, which the rehearsal copies (with the stand-in's URLs)
    assert [text.partition("\n")[0] for kind, text in steps if kind == "file"] == ["serve.yaml"]
    assert run.budget_summary is not None and run.budget_summary["stopped"] == "budget"  # --max-cost 0.02
    # the users: each answer is the chosen model's recorded one, unchanged
    recorded = ReplayUpstream.from_routerarena(REHEARSAL / "recorded").recorded
    traffic = [json.loads(x)["prompt"] for x in (REHEARSAL / "traffic.jsonl").read_text().splitlines() if x.strip()]
    assert sorted(a.prompt for a in run.answered) == sorted(traffic) and len(traffic) == 300
    for a in run.answered:
        assert a.status == 200, a
        model = {"flash": FLASH, "haiku": HAIKU}[str(a.model)]
        assert a.content == recorded[model][a.prompt].text
    before, after = run.requests_around_from_log
    assert after == before  # --from-log: every logged answer reused, none asked again
    # what the guide said would be there, is
    answers = _jsonl(work / "runs/answers/answers.jsonl")
    assert len(answers) == 150 and all(a["error"] is None for row in answers for a in row["answers"].values())
    # the traffic's prompts are not the collected ones: no model was ever asked one prompt twice
    stats = run.standin_stats
    assert stats["by_model"][FLASH] > 0 and stats["by_model"][HAIKU] > 0
    assert stats["asked_twice_by_model"].get(FLASH, 0) == 0 and stats["asked_twice_by_model"].get(HAIKU, 0) == 0
    assert "kappa" in json.loads((work / "runs/agreement/agreement.json").read_text())["label"]
    assert len(_jsonl(work / "runs/judged/records.jsonl")) == 150
    shadowed = _jsonl(work / "shadow.jsonl")
    assert 0 < len(shadowed) < len(traffic)  # shadow: 0.1 samples a share of the requests
    assert all("messages" in row for row in shadowed)  # log_prompts: true
    assert len(_jsonl(work / "runs/judged-live/records.jsonl")) == len(shadowed)
    v2 = json.loads((work / "runs/v2/tela.json").read_text())
    assert v2["train_records"] == 120 + len(shadowed)
    reload = json.loads(list(run.outputs.values())[-1].strip().splitlines()[-1])
    assert reload["routers"]["mine"]["ok"] and reload["routers"]["mine"]["path"] == str(work / "runs/live")
    assert os.readlink(work / "runs/live") == "v2"
    assert "Traceback" not in run.serve_log, run.serve_log
