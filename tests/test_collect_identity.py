"""One identity for a model across `tela serve`'s logs, `tela collect`, `tela judge`, records and
routers (issue 24, items 1 and 6): the model id.

The guide's shape names upstreams apart from their models (upstream `flash` sends the model
`gemini-2.0-flash-001`). Before, `tela collect` keyed answers by upstream name while the shadow log
keyed them by the router's names (model ids), so every logged answer was asked again, `tela judge`
rated four answers a prompt, records carried both names for each model, and a router trained on
them named upstreams that `tela eval` on data naming the models called "a pair it was not trained on".

STAND-INS: the two answering models and the judge model are remote APIs, played by
tela_core.testkit.replay_upstream.ReplayUpstream (a loopback server replaying what
`gemini-2.0-flash-001` and `claude-3-haiku-20240307` really answered to RouterArena's prompts; its
judge rates an answer from that answer's recorded score, it is not a model). `tela serve` is real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tela_core.testkit.helpers import needs_public_data, public_data, run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

sys.path.insert(0, str(Path(__file__).parent))
from serve_support import TelaServe, free_port  # noqa: E402

ARENA = public_data("routerarena-sub10")
FLASH, HAIKU, JUDGE = "gemini-2.0-flash-001", "claude-3-haiku-20240307", "gpt-4o"
TELA = str(Path(sys.executable).with_name("tela"))
ADMIN = "identity-admin-token"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _ok(*args: Any) -> Any:
    r = run_cli(*args)
    assert r.exit_code == 0, f"tela {' '.join(map(str, args))}\n{r.output}"
    return r


def _calls(up: ReplayUpstream, model: str) -> int:
    return sum(up.requests_for(model).values())


def _config(path: Path, url: str, extra: str = "") -> Path:
    """The guide's serve.yaml: upstream names that are not the model ids they send."""
    path.write_text(
        "upstreams:\n"
        f"  flash: {{base_url: '{url}', model: {FLASH}, price_input: 0.1, price_output: 0.4}}\n"
        f"  haiku: {{base_url: '{url}', model: {HAIKU}, price_input: 0.25, price_output: 1.25}}\n"
        f"  judge: {{base_url: '{url}', model: {JUDGE}, price_input: 2.5, price_output: 10}}\n" + extra,
        encoding="utf-8",
    )
    return path


def _post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}, e.read().decode()


@pytest.fixture
def replay() -> Iterator[ReplayUpstream]:
    assert ARENA is not None
    with ReplayUpstream.from_routerarena(ARENA, models=[FLASH, HAIKU], judges=[JUDGE]) as up:
        yield up


# -- the done-when test of issue 24: the guide's shape, end to end ---------------------------------------


@needs_public_data("routerarena-sub10")
def test_the_guides_shape_pays_once_and_names_each_model_once(tmp_path: Path, replay: ReplayUpstream) -> None:
    """Upstream names != model ids, shadow 1.0, a hot reload half-way through the traffic: collecting
    from the shadow log asks nothing, judging makes one call per answer rated, and the records, the
    router trained on them and `tela eval` on data naming the models agree on the pair, no note."""
    both = set(replay.prompts(HAIKU))
    questions = [q for q in replay.prompts(FLASH) if q in both]
    first, traffic = questions[:60], questions[60:100]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in first), encoding="utf-8")
    cfg = _config(tmp_path / "serve.yaml", replay.base_url)
    models = ["--config", cfg, "--model", "flash", "--model", "haiku"]
    pair = ["--set", f"source.models.weak={FLASH}", "--set", f"source.models.strong={HAIKU}"]

    # collect and judge the first prompts: answers and records name the model ids
    _ok("collect", "--prompts", tmp_path / "prompts.jsonl", *models, "-o", tmp_path / "answers")
    rows = _jsonl(tmp_path / "answers" / "answers.jsonl")
    assert all(list(r["answers"]) == [FLASH, HAIKU] for r in rows)
    assert {r["answers"][FLASH]["upstream"] for r in rows} == {"flash"}
    _ok(
        "judge",
        "--answers",
        tmp_path / "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        cfg,
        "--set",
        "judge.rate=all",
        "-o",
        tmp_path / "judged",
    )
    _ok("run", "--data", tmp_path / "judged" / "records.jsonl", "--family", "length", *pair, "-o", tmp_path / "v1")
    _ok(
        "run",
        "--data",
        tmp_path / "judged" / "records.jsonl",
        "--family",
        "length",
        *pair,
        "--sample",
        40,
        "-o",
        tmp_path / "v1b",
    )

    # serve v1 with shadow mode on every request; half the traffic, a hot reload to v1b, the other half
    os.symlink("v1", tmp_path / "live")
    with open(cfg, "a", encoding="utf-8") as fh:
        fh.write(
            f"routers:\n  mine: {{path: '{tmp_path / 'live'}', upstreams: [flash, haiku], shadow: 1.0}}\n"
            f"shadow_log: '{tmp_path / 'shadow.jsonl'}'\nlog_prompts: true\nadmin_token_env: TELA_ADMIN_TOKEN\n"
        )
    port = free_port()
    serve = TelaServe(["--config", str(cfg), "--log-level", "warning"], port, extra_env={"TELA_ADMIN_TOKEN": ADMIN})
    try:

        def ask(q: str) -> None:
            status, headers, body = _post(
                serve.url + "/v1/chat/completions",
                {"model": "router-mine", "messages": [{"role": "user", "content": q}]},
                {},
            )
            assert status == 200, body

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, traffic[:20]))
            os.symlink("v1b", tmp_path / "live.new")
            os.replace(tmp_path / "live.new", tmp_path / "live")
            status, _, body = _post(serve.url + "/admin/reload", {}, {"authorization": f"Bearer {ADMIN}"})
            assert status == 200 and body["routers"]["mine"]["ok"], body
            list(pool.map(ask, traffic[20:]))
        deadline = time.monotonic() + 60
        log = tmp_path / "shadow.jsonl"
        while time.monotonic() < deadline and not (log.exists() and len(_jsonl(log)) >= len(traffic)):
            time.sleep(0.2)
    finally:
        out = serve.stop()
    assert "Traceback" not in out, out
    shadow = _jsonl(tmp_path / "shadow.jsonl")
    assert len(shadow) == len(traffic)
    assert all(s["upstreams"] == {FLASH: "flash", HAIKU: "haiku"} for s in shadow)  # the log keys by the router's names

    # collect from the log: every answer is there, none is asked again
    calls = replay.stats()["requests"]
    r = _ok("collect", "--from-log", tmp_path / "shadow.jsonl", *models, "-o", tmp_path / "answers-live")
    assert replay.stats()["requests"] == calls
    n = 2 * len(traffic)
    summary = json.loads((tmp_path / "answers-live" / "summary.json").read_text())
    assert (summary["answers"], summary["from_log"], summary["asked"]) == (n, n, 0)
    assert f"{n} answers ({n} from the log, 0 asked by this run)" in r.output
    live = _jsonl(tmp_path / "answers-live" / "answers.jsonl")
    assert len(live) == len(traffic) and all(set(row["answers"]) == {FLASH, HAIKU} for row in live)
    for row in live:
        q = row["messages"][-1]["content"]
        assert row["answers"][FLASH]["text"] == replay.recorded[FLASH][q].text
        assert row["answers"][HAIKU]["text"] == replay.recorded[HAIKU][q].text

    # judge: one judge call per answer rated (2 a prompt), records with one outcome key per model
    judge_calls = _calls(replay, JUDGE)
    _ok(
        "judge",
        "--answers",
        tmp_path / "answers-live",
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--config",
        cfg,
        "--set",
        "judge.rate=all",
        "-o",
        tmp_path / "judged-live",
    )
    assert _calls(replay, JUDGE) - judge_calls == n
    records = _jsonl(tmp_path / "judged-live" / "records.jsonl")
    assert len(records) == len(traffic)
    assert all(set(rec["outcomes"]) == {FLASH, HAIKU} and set(rec["costs"]) == {FLASH, HAIKU} for rec in records)

    # the router trained on them names the models; eval on data naming the models: the same pair, no note
    _ok(
        "run",
        "--data",
        tmp_path / "judged" / "records.jsonl",
        "--data",
        tmp_path / "judged-live" / "records.jsonl",
        "--family",
        "length",
        *pair,
        "-o",
        tmp_path / "v2",
    )
    manifest = json.loads((tmp_path / "v2" / "tela.json").read_text())
    assert (manifest["weak"], manifest["strong"]) == (FLASH, HAIKU)
    for data in (tmp_path / "judged-live" / "records.jsonl", ARENA):
        r = _ok(
            "eval",
            "--router",
            tmp_path / "v2",
            "--data",
            data,
            "--weak-model",
            FLASH,
            "--strong-model",
            HAIKU,
            "-o",
            tmp_path / f"eval-{Path(data).stem}",
        )
        assert "not trained on" not in r.output, r.output
        report = json.loads((tmp_path / f"eval-{Path(data).stem}" / "report.json").read_text())
        assert "pair_note" not in json.dumps(report)


# -- each way names can differ ------------------------------------------------------------------------------


def _synthetic() -> dict[str, dict[str, Recorded]]:
    rec: dict[str, dict[str, Recorded]] = {"small-model-v1": {}, "big-model-v2": {}}
    for i in range(8):
        q = f"What is {i} + {i + 1}?"
        rec["big-model-v2"][q] = Recorded(f"{2 * i + 1}", 10 + i, 5, 1.0)
        rec["small-model-v1"][q] = Recorded(f"{2 * i + 1 + (i % 3 == 0)}", 10 + i, 4, float(i % 3 != 0))
    return rec


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream(_synthetic(), judges=["judge"]) as up:
        yield up


def _shadow_line(i: int, q: str, names: tuple[str, str], upstreams: tuple[str, str]) -> dict[str, Any]:
    ans = {"error": None, "usage": {"prompt_tokens": 10, "completion_tokens": 4}, "latency_s": 0.1}
    return {
        "time": "2026-01-01T00:00:00Z",
        "request_id": f"req-{i}",
        "router": "mine",
        "w": 0.3,
        "chosen": names[0],
        "models": list(names),
        "upstreams": dict(zip(names, upstreams)),
        "messages": [{"role": "user", "content": q}],
        "answers": {names[0]: {"text": f"small said {i}", **ans}, names[1]: {"text": f"big said {i}", **ans}},
    }


@pytest.mark.parametrize("router_names", ["model ids", "upstream names", "other names"])
def test_from_log_asks_nothing_whatever_the_router_calls_the_models(
    tmp_path: Path, upstream: ReplayUpstream, router_names: str
) -> None:
    """The router's names for its models (model ids, upstream names, or anything: a router trained
    on other data) and the upstream names differ; the log's `upstreams` map says who answered, so
    each logged answer is filed under its model id and none is asked again."""
    names = {
        "model ids": ("small-model-v1", "big-model-v2"),
        "upstream names": ("small", "big"),
        "other names": ("mixtral-8x7b", "gpt-4"),
    }[router_names]
    qs = upstream.prompts("big-model-v2")[:4]
    log = tmp_path / "shadow.jsonl"
    log.write_text(
        "".join(json.dumps(_shadow_line(i, q, names, ("small", "big"))) + "\n" for i, q in enumerate(qs)),
        encoding="utf-8",
    )
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "upstreams:\n"
        f"  small: {{base_url: '{upstream.base_url}', model: small-model-v1, price_input: 1, price_output: 2}}\n"
        f"  big: {{base_url: '{upstream.base_url}', model: big-model-v2, price_input: 10, price_output: 30}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = _ok("collect", "--from-log", log, "--config", cfg, "--model", "small", "--model", "big", "-o", out)
    assert upstream.stats()["requests"] == 0, r.output
    assert "8 answers already here, 0 to ask" in r.output and "8 of the answers from the log" in r.output
    rows = _jsonl(out / "answers.jsonl")
    assert [list(row["answers"]) for row in rows] == [["small-model-v1", "big-model-v2"]] * 4
    assert rows[0]["answers"]["small-model-v1"]["text"] == "small said 0"
    assert rows[0]["answers"]["big-model-v2"]["upstream"] == "big"
    # the logged usage is priced with the model's price, whatever the key
    assert rows[0]["answers"]["big-model-v2"]["cost"] == pytest.approx((10 * 10 + 4 * 30) / 1e6)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["from_log"], summary["asked"]) == (8, 0)


def test_from_log_answers_of_models_not_asked_are_left_out_and_said(tmp_path: Path, upstream: ReplayUpstream) -> None:
    q = upstream.prompts("big-model-v2")[0]
    log = tmp_path / "shadow.jsonl"
    line = _shadow_line(0, q, ("small-model-v1", "big-model-v2"), ("small", "big"))
    line["models"].append("third")
    line["upstreams"]["third"] = "third"
    line["answers"]["third"] = {"text": "a third model", "error": None}
    log.write_text(json.dumps(line) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = _ok(
        "collect",
        "--from-log",
        log,
        "--model",
        f"small={upstream.base_url}#small-model-v1",
        "--model",
        f"big={upstream.base_url}#big-model-v2",
        "-o",
        out,
    )
    assert upstream.stats()["requests"] == 0
    assert "1 logged answers of models not asked left out (third)" in r.output
    assert list(_jsonl(out / "answers.jsonl")[0]["answers"]) == ["small-model-v1", "big-model-v2"]


def test_an_earlier_output_keyed_by_upstream_names_is_reused_not_asked_again(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    """An answers file written before answers were kept by model id (keyed by the `--model` names)
    is read under the ids: a rerun into it asks nothing and rewrites it keyed by id."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(q + "\n" for q in upstream.prompts("big-model-v2")[:3]), encoding="utf-8")
    out = tmp_path / "out"
    models = [
        "--model",
        f"small={upstream.base_url}#small-model-v1",
        "--model",
        f"big={upstream.base_url}#big-model-v2",
    ]
    _ok("collect", "--prompts", prompts, *models, "-o", out)
    rows = _jsonl(out / "answers.jsonl")
    old = [
        {
            **row,
            "answers": {
                {"small-model-v1": "small", "big-model-v2": "big"}[k]: {
                    kk: vv for kk, vv in a.items() if kk != "upstream"
                }
                for k, a in row["answers"].items()
            },
        }
        for row in rows
    ]
    (out / "answers.jsonl").write_text("".join(json.dumps(o) + "\n" for o in old), encoding="utf-8")
    calls = upstream.stats()["requests"]
    r = _ok("collect", "--prompts", prompts, *models, "-o", out)
    assert upstream.stats()["requests"] == calls and "6 answers already here, 0 to ask" in r.output
    assert [list(row["answers"]) for row in _jsonl(out / "answers.jsonl")] == [["small-model-v1", "big-model-v2"]] * 3


def test_two_names_for_one_model_are_refused(tmp_path: Path, upstream: ReplayUpstream) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is 0 + 1?\n", encoding="utf-8")
    r = run_cli(
        "collect",
        "--prompts",
        prompts,
        "--model",
        f"a={upstream.base_url}#big-model-v2",
        "--model",
        f"b={upstream.base_url}#big-model-v2",
        "-o",
        tmp_path / "out",
    )
    assert r.exit_code == 2 and "the models a and b both ask the model 'big-model-v2'" in r.output, r.output
    assert upstream.stats()["requests"] == 0 and not (tmp_path / "out" / "answers.jsonl").exists()


def test_judge_takes_the_upstream_name_for_the_model_and_rates_each_answer_once(
    tmp_path: Path, upstream: ReplayUpstream
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(q + "\n" for q in upstream.prompts("big-model-v2")[:4]), encoding="utf-8")
    answers, judged = tmp_path / "answers", tmp_path / "judged"
    _ok(
        "collect",
        "--prompts",
        prompts,
        "--model",
        f"small={upstream.base_url}#small-model-v1",
        "--model",
        f"big={upstream.base_url}#big-model-v2",
        "-o",
        answers,
    )
    r = _ok(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "--weak-model",
        "small",
        "--strong-model",
        "big",
        "-o",
        judged,
    )
    assert "pair small-model-v1 < big-model-v2" in r.output
    assert sum(upstream.requests_for("judge").values()) == 8  # one call per answer rated
    assert all(set(rec["outcomes"]) == {"small-model-v1", "big-model-v2"} for rec in _jsonl(judged / "records.jsonl"))


# -- item 6: after a SIGKILL, at most the calls in flight are asked again -------------------------------------


def test_the_kill_promise_is_the_exact_one() -> None:
    """Help and guide promise what a kill costs: answers received are never asked again, and at most
    the calls in flight at the kill are (their answers never arrived). Not 'never asked twice'."""
    help_text = " ".join(run_cli("collect", "--help").output.split())
    assert "never asked for twice" not in help_text
    assert "at most the calls in flight at a kill are asked again" in help_text
    root = Path(__file__).resolve().parents[1]
    guide = " ".join((root / "docs" / "own-models.md").read_text(encoding="utf-8").split())
    assert (
        "never costs an answer twice" not in guide and "at most the calls in flight at a kill are asked again" in guide
    )


def test_kill_mid_collect_asks_again_at_most_the_calls_in_flight(tmp_path: Path, upstream: ReplayUpstream) -> None:
    """A real SIGKILL with calls hanging in flight (2 per model): the rerun makes exactly the calls
    missing, so over both runs the requests are the answers plus at most the 4 in flight."""
    prompts = tmp_path / "prompts.txt"
    qs = upstream.prompts("big-model-v2")
    prompts.write_text("".join(q + "\n" for q in qs), encoding="utf-8")
    out = tmp_path / "out"
    upstream.inject("hang", times=None, after=6)
    cmd = [
        TELA,
        "collect",
        "--prompts",
        str(prompts),
        "--model",
        f"small={upstream.base_url}#small-model-v1",
        "--model",
        f"big={upstream.base_url}#big-model-v2",
        "--concurrency",
        "2",
        "-o",
        str(out),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / ".journal.jsonl"

    def settled() -> bool:  # the 4 calls in flight (2 per model) hang, and every answer sent is journaled
        s = upstream.stats()
        lines = len(journal.read_text(encoding="utf-8").splitlines()) if journal.exists() else 0
        return s["requests"] - s["answered"] >= 4 and lines >= s["answered"]

    deadline = time.monotonic() + 60  # waited for, not slept: a loaded machine may journal the last answer late
    while time.monotonic() < deadline and not settled():
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    first = upstream.stats()
    journaled = len(journal.read_text(encoding="utf-8").splitlines())
    assert first["requests"] == first["answered"] + 4 and journaled == first["answered"] >= 6
    upstream.reset()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    answers = 2 * len(qs)
    assert upstream.stats()["requests"] == answers + 4  # the 4 calls in flight at the kill, asked again; nothing else
    assert upstream.stats()["asked_twice"] == 4
    assert all(a["text"] for row in _jsonl(out / "answers.jsonl") for a in row["answers"].values())
