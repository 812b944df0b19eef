"""The loop of docs/improving.md end to end: serve -> shadow -> labels -> a candidate -> promote or
refuse -> reload -> rollback, through the real commands and the cron-able script
``examples/loop/loop_turn.py``.

STAND-INS, as the real things cannot run here: the two model APIs and the judge model are one
loopback server (tela_core.testkit.replay_upstream.ReplayUpstream) that is not a model. Asked for a
model and a prompt of the bundled MMLU samples, it answers a text unique to that pair, recorded as
right or wrong by a RULE, not by real outcomes: the stand-in cheap model is wrong on every question
of a STEM subject and right on the others, the stand-in strong model always right. (On real MMLU
outcomes routers barely beat random, and 150 labels cannot tell a good router from a bad one
beyond a bootstrap interval; the rule gives the loop a difference it must find.) Its judge model
rates an answer [[5]] or [[1]] from that record. Everything else is tela as a user runs it: ``tela
serve`` in a process of its own, HTTP requests as a client sends them, the loop script in a process
of its own (as cron starts it), and ``tela rollback``.

The story: v1, the first router served, is a bad one (trained on the base prompts with the cheap
model's outcomes inverted, so it sends the wrong prompts to the strong model). One turn of the loop
labels the shadowed traffic, trains a candidate on the base records, and ``tela promote`` promotes
it (v2) over v1 on the new labels; the server follows. A second turn, with more traffic, is handed
a bad candidate (v1's router again): refused, and the refusal says APGR failed. Then ``tela
rollback`` goes back to v1, and the server follows again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
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

from tela_core.testkit.helpers import OFFLINE_VARS
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "loop" / "loop_turn.py"
BASE = ROOT / "tela_core" / "data" / "mmlu_sample.jsonl"
TRAFFIC = ROOT / "tela_core" / "data" / "mmlu_heldout_sample.jsonl"
WEAK, STRONG, JUDGE = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview", "judge-model"
TELA = str(Path(sys.executable).with_name("tela"))
ADMIN = "loop-admin-token"
PER_TURN = 150
#: subjects the stand-in cheap model gets wrong (by name)
STEM = ("math", "physics", "chemistry", "computer", "algebra", "statistics", "engineering", "machine_learning",
        "astronomy", "econometrics", "electrical")  # fmt: skip


def _rule(row: dict[str, Any], inverted: bool = False) -> dict[str, float]:
    """The stand-in models' outcomes on a prompt (with ``inverted``, the cheap model's flipped)."""
    weak_right = not any(k in row["group"] for k in STEM)
    return {WEAK: float(weak_right != inverted), STRONG: 1.0}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_VARS)
    env.setdefault("TELA_CACHE", str(ROOT / ".cache" / "tela"))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TELA_ADMIN_TOKEN"] = ADMIN
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _tela(cwd: Path, *args: Any, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([TELA, *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode in ok, f"tela {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _recorded(rows: list[dict[str, Any]]) -> dict[str, dict[str, Recorded]]:
    """The stand-in's answers: unique per (model, prompt), right or wrong as :func:`_rule` says."""
    rec: dict[str, dict[str, Recorded]] = {WEAK: {}, STRONG: {}}
    for i, r in enumerate(rows):
        for model, tag in ((WEAK, "m"), (STRONG, "g")):
            right = _rule(r)[model] >= 0.5
            rec[model][r["prompt"]] = Recorded(
                f"The answer is ({'A' if right else 'B'}). [stand-in {tag}{i}]",
                prompt_tokens=len(r["prompt"]) // 4,
                completion_tokens=8,
                score=1.0 if right else 0.0,
            )
    return rec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    port = _free_port()
    log = open(folder / "serve.log", "w")
    proc = subprocess.Popen(
        [TELA, "serve", "--config", "serve.yaml", "--port", str(port)],
        cwd=folder,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, (folder / "serve.log").read_text()
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            assert time.time() < deadline, (folder / "serve.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ask(url: str, prompt: str) -> dict[str, str]:
    body = json.dumps({"model": "router-mine", "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return {k.lower(): v for k, v in r.headers.items()}


def _feedback(url: str, request_id: str, score: str) -> None:
    body = json.dumps({"id": request_id, "score": score}).encode()
    req = urllib.request.Request(url + "/v1/feedback", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, r.read()


def _shadow_settled(log: Path) -> int:
    """Wait until every request the decision log (beside ``log``) marks shadowed has its line in the
    shadow log ``log``; the shadow log's line count. Waited for, not slept: a loaded machine is slow."""
    decisions = log.parent / "decisions.jsonl"
    deadline = time.time() + 60
    while True:
        want = sum(1 for r in _rows(decisions) if r.get("shadow")) if decisions.exists() else 0
        have = len(_rows(log)) if log.exists() else 0
        if have >= want:
            return have
        assert time.time() < deadline, f"{have} of {want} shadow lines"
        time.sleep(0.2)


def _traffic(url: str, prompts: list[str], log: Path) -> list[dict[str, str]]:
    """Send the prompts as a client does; wait until shadow mode has logged each of them."""
    from concurrent.futures import ThreadPoolExecutor

    lines_before = _shadow_settled(log)  # the shadow lines of earlier requests (the version probes) are written
    with ThreadPoolExecutor(8) as pool:
        heads = list(pool.map(lambda p: _ask(url, p), prompts))
    deadline = time.time() + 60
    while len(_rows(log)) < lines_before + len(prompts):
        assert time.time() < deadline, f"{len(_rows(log))} shadow lines"
        time.sleep(0.2)
    return heads


def _version(url: str, probe: str) -> str:
    """The version a new request is served by, which tela serve reports in a header."""
    deadline = time.time() + 30
    while True:
        h = _ask(url, probe)
        if time.time() > deadline or h.get("x-tela-version"):
            return h.get("x-tela-version", "")
        time.sleep(0.2)


def _turn(work: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """One turn of the loop, as cron runs it: the script in a process of its own."""
    cmd = [
        sys.executable, str(SCRIPT), "--router", "live", "--config", "serve.yaml", "--work", "loop",
        "--shadow-log", "shadow.jsonl", "--model", "mixtral", "--model", "gpt4",
        "--judge-args", "--judge llm-judge --judge-model judge --set judge.rate=all",
        "--train-data", "base.jsonl", "--run-args", f"--family embedding-knn --set source.models.weak={WEAK} "
        f"--set source.models.strong={STRONG}", "--min-labels", "100",
        "--server", url, *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=600)


def _stub_turn(tmp_path: Path, stub: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One turn of the loop on the live router ``live`` (v1 current) with a stub script for `tela`:
    ``stub`` is the script's body after ``a = sys.argv[1:]``; ``args`` add to the turn's arguments."""
    tela = tmp_path / "tela-stub"
    tela.write_text("#!" + sys.executable + "\nimport json, os, sys\na = sys.argv[1:]\n" + stub, encoding="utf-8")
    tela.chmod(0o755)
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "versions.json").write_text('{"current": "v1"}', encoding="utf-8")
    cmd = [
        sys.executable, str(SCRIPT), "--router", "live", "--config", "serve.yaml", "--work", "loop",
        "--shadow-log", "shadow.jsonl", "--judge-args", "--judge llm-judge", *args,
        "--min-labels", "1", "--tela", str(tela),
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_loop_promotes_refuses_and_rolls_back(tmp_path: Path) -> None:
    base, traffic = _rows(BASE), _rows(TRAFFIC)
    prompts = [r["prompt"] for r in traffic]
    probe = prompts[-1]  # a held-out prompt past both turns' traffic: asks which version serves
    # the base records: the stand-in models' outcomes on the base prompts (labelled before serving)
    for name, inverted in (("base.jsonl", False), ("inverted.jsonl", True)):
        (tmp_path / name).write_text(
            "".join(json.dumps({**r, "outcomes": _rule(r, inverted)}) + "\n" for r in base), encoding="utf-8"
        )
    # v1: a bad router, trained on the cheap model's outcomes inverted
    pair = ["--set", f"source.models.weak={WEAK}", "--set", f"source.models.strong={STRONG}"]
    _tela(tmp_path, "run", "--data", "inverted.jsonl", "--family", "embedding-knn", *pair, "-o", "bad", "-q")
    _tela(tmp_path, "promote", "--router", "live", "--candidate", "bad")  # the first version needs no data

    with ReplayUpstream(_recorded(traffic + base), judges=[JUDGE]) as up:
        ups = "\n".join(
            f"  {n}: {{base_url: '{up.base_url}', model: '{m}', price_input: {pi}, price_output: {po}}}"
            for n, m, pi, po in (("mixtral", WEAK, 0.6, 0.6), ("gpt4", STRONG, 10, 30), ("judge", JUDGE, 0.15, 0.6))
        )
        (tmp_path / "serve.yaml").write_text(
            f"upstreams:\n{ups}\nrouters:\n  mine: {{path: live, upstreams: [mixtral, gpt4], shadow: 1.0}}\n"
            "shadow_log: shadow.jsonl\ndecision_log: decisions.jsonl\nlog_prompts: true\n"
            "feedback_log: feedback.jsonl\nadmin_token_env: TELA_ADMIN_TOKEN\n",
            encoding="utf-8",
        )
        log = tmp_path / "shadow.jsonl"
        with _serve(tmp_path) as url:
            assert _version(url, probe) == "v1"
            _traffic(url, prompts[:PER_TURN], log)
            n0 = len(_rows(log))

            # a turn while another one holds the lock: nothing done, exit 0 (cron runs them overlapping)
            (tmp_path / "loop").mkdir()
            with open(tmp_path / "loop" / ".loop.lock", "a+") as held:
                fcntl.flock(held.fileno(), fcntl.LOCK_EX)
                busy = _turn(tmp_path, url)
            assert busy.returncode == 0 and "another turn holds" in busy.stdout, busy.stdout + busy.stderr
            assert not (tmp_path / "loop" / "answers").exists()

            # turn 1: the labelled traffic -> a candidate on the base data -> promoted over the bad v1
            t1 = _turn(tmp_path, url)
            assert t1.returncode == 0, t1.stdout + t1.stderr
            state = json.loads((tmp_path / "loop" / "loop-state.json").read_text())
            assert state["turns"][-1]["decision"] == "promote", t1.stdout
            assert state["turns"][-1]["version"] == "v2" and state["turns"][-1]["recent"] >= n0 - 1
            versions = json.loads((tmp_path / "live" / "versions.json").read_text())
            assert versions["current"] == "v2"
            assert _version(url, probe) == "v2"  # the server reloaded

            # run again with nothing new: nothing decided, nothing changed (idempotent)
            again = _turn(tmp_path, url)
            assert again.returncode == 0 and "nothing decided" in again.stdout, again.stdout + again.stderr
            assert json.loads((tmp_path / "loop" / "loop-state.json").read_text()) == state

            # turn 2: more traffic; a bad candidate (v1's router) must be refused, v2 stays
            heads = _traffic(url, prompts[PER_TURN : 2 * PER_TURN], log)
            for h in heads[:5]:  # users' verdicts on five answers: the feedback path of the loop
                _feedback(url, h["x-request-id"], "down")
            t2 = _turn(
                tmp_path, url, "--candidate", str(tmp_path / "bad"), "--feedback-log", "feedback.jsonl",
                "--decision-log", "decisions.jsonl",
            )  # fmt: skip
            assert "$ tela feedback feedback.jsonl" in t2.stdout and "from feedback" in t2.stdout, t2.stdout
            assert t2.returncode == 0, t2.stdout + t2.stderr
            last = json.loads((tmp_path / "loop" / "loop-state.json").read_text())["turns"][-1]
            assert last["decision"] == "refuse" and "APGR" in last["why"], last
            # the new labels reached the comparison: the log's second half was collected and judged
            assert PER_TURN - 1 <= last["recent"] <= PER_TURN + 3 and last["labels"] >= 2 * PER_TURN - 2, last
            record = json.loads((tmp_path / "live" / last["record"]).read_text())
            assert record["decision"] == "refuse" and record["numbers"]["apgr"]["hi"] < 0.0, record
            assert json.loads((tmp_path / "live" / "versions.json").read_text())["current"] == "v2"
            assert _version(url, probe) == "v2"

            # rollback: back to v1, recorded, and the server follows
            rb = _tela(tmp_path, "rollback", "--router", "live", "--server", url, "--reason", "drill")
            assert "v2 -> v1" in rb.stdout, rb.stdout
            assert json.loads((tmp_path / "live" / "versions.json").read_text())["current"] == "v1"
            assert _version(url, probe) == "v1"


def test_the_guides_loop_command_is_the_scripts() -> None:
    """docs/improving.md's cron command parses with the script's own options (the guide cannot drift)."""
    import importlib.util
    import re
    import shlex

    guide = (ROOT / "docs" / "improving.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```bash\n(.*?)^```", guide, flags=re.M | re.S) if "loop_turn.py" in b]
    assert blocks, "docs/improving.md shows no loop_turn.py command"
    spec = importlib.util.spec_from_file_location("loop_turn", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = shlex.split(blocks[0].replace("\\\n", " "))
    assert argv[:2] == ["python", "examples/loop/loop_turn.py"]
    args = mod.parse_args(argv[2:])
    assert args.router == Path("runs/live") and args.min_labels == 200 and args.server == ["http://127.0.0.1:8000"]


def test_a_turn_on_labels_that_cannot_decide_waits_for_more(tmp_path: Path) -> None:
    """When tela promote says the new labels cannot tell routers apart (both models equal on them),
    the turn decides nothing, exits 0 and keeps the labels new; a `tela` that is a stub script here."""
    r = _stub_turn(
        tmp_path,
        "if a[0] == 'judge':\n"
        "    out = a[a.index('-o') + 1]\n"
        "    os.makedirs(out, exist_ok=True)\n"
        "    rows = [{'id': f'r{i}', 'prompt': f'q{i}', 'outcomes': {'w': 1.0, 's': 1.0}} for i in range(3)]\n"
        "    open(os.path.join(out, 'records.jsonl'), 'w').write(''.join(json.dumps(r) + '\\n' for r in rows))\n"
        "if a[0] == 'run':\n"
        "    os.makedirs(a[a.index('-o') + 1], exist_ok=True)\n"
        "if a[0] == 'promote':\n"
        "    print('Error: the weak and strong models score the same in total on these 3 prompts, so APGR is '\n"
        "          'undefined and cannot tell two routers apart', file=sys.stderr)\n"
        "    sys.exit(2)\n",
        "--train-data", "base.jsonl",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cannot tell two routers apart; nothing decided" in r.stdout, r.stdout
    assert not (tmp_path / "loop" / "loop-state.json").exists()  # the 3 labels are still new


def test_a_two_model_turn_leaves_out_verdict_only_records(tmp_path: Path) -> None:
    """Users' verdicts on requests nobody judged score one model only; with two models, tela run and
    tela promote refuse such records, so the turn leaves them out and says how many (a stub `tela`)."""
    r = _stub_turn(
        tmp_path,
        "out = a[a.index('-o') + 1] if '-o' in a else None\n"
        "both = [{'id': f'r{i}', 'prompt': f'q{i}', 'outcomes': {'w': 0.0, 's': 1.0}} for i in range(4)]\n"
        "if a[0] in ('judge', 'feedback'):\n"
        "    os.makedirs(out, exist_ok=True)\n"
        "    rows = both + ([{'id': 'f1', 'prompt': 'v', 'outcomes': {'s': 0.0}}] if a[0] == 'feedback' else [])\n"
        "    open(os.path.join(out, 'records.jsonl'), 'w').write(''.join(json.dumps(r) + '\\n' for r in rows))\n"
        "if a[0] == 'promote':\n"
        "    print(json.dumps({'decision': 'refuse', 'why': 'stub'}))\n"
        "    sys.exit(1)\n",
        "--candidate", "cand", "--feedback-log", "feedback.jsonl",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "left out 1 record(s) that carry one model's outcome only" in r.stdout, r.stdout
    recent = _rows(tmp_path / "loop" / "turn-0001" / "recent.jsonl")
    assert [x["id"] for x in recent] == ["r0", "r1", "r2", "r3"]
