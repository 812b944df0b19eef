"""A reload reads the config file's upstreams again, with the routers, in one step (issue 28 item 5):
add a model's upstream to `serve.yaml`, promote a version that routes to it, and a running `tela
serve` sends it requests without a restart and without failing one. A version whose model has no
upstream, or a file that removes an upstream the serving router routes to, changes nothing.

A real `tela serve` process on loopback serves an `embedding-knn` router (default embedder) from a
versions folder: v1 over three models, trained on 80 of the prompts in examples/many-models; v2
is v1 with a fourth model added by `tela run --add-to`. The upstreams are a STAND-IN for remote model
APIs (tela_core.testkit.replay_upstream, not a model): an OpenAI-compatible server on loopback that
replays what each of those four real models answered to each prompt.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_support import ClientLoad, TelaServe, free_port, get, metric, wait_until  # noqa: E402

from tela_core.testkit.helpers import run_cli  # noqa: E402
from tela_core.testkit.replay_upstream import ReplayUpstream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "examples" / "many-models" / "recorded"
PRICES = {"gemma-2-9b-it": 0.1, "qwen2.5-7b-instruct": 0.2, "llama-3.1-nemotron-51b-instruct": 0.9}
NEW = "llama-3.1-8b-instruct"
TOKEN = "admin-test-token"


def _rows(model: str) -> list[dict[str, Any]]:
    with gzip.open(RECORDED / f"{model}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()][:80]


def _write_json(path: Path, obj: Any) -> None:
    """Replace ``path`` in one rename, as an editor or a deploy tool does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")  # JSON is YAML
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """v1 (three models) and v2 (v1 plus NEW, from NEW's records alone), both choosing the best
    predicted quality (ties: the cheaper). NEW is right on every prompt in its records and the
    cheapest, so v2 sends every request to it."""
    from tela_core.routing.artifact import read_policy, write_policy

    d = tmp_path_factory.mktemp("reload-upstreams")
    rows = {m: _rows(m) for m in [*PRICES, NEW]}
    first = rows[NEW]
    train = [
        {
            "id": str(r["global_index"]),
            "prompt": r["question"],
            "messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": "[[5]]"}],
            "outcomes": {m: rows[m][i]["evaluation_result"]["score"] for m in PRICES},
            "costs": {m: p * 1e-3 for m, p in PRICES.items()},
        }
        for i, r in enumerate(first)
    ]
    new = [
        {
            "id": str(r["global_index"]),
            "prompt": r["question"],
            "messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": "[[5]]"}],
            "outcomes": {NEW: 1.0},
            "costs": {NEW: 1e-6},
        }
        for r in first
    ]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    (d / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new), encoding="utf-8")
    res = run_cli(
        "run", "--data", d / "train.jsonl", "--family", "embedding-knn", "--set", "family.k=10", "-o", d / "v1"
    )
    assert res.exit_code == 0, res.output
    res = run_cli("run", "--add-to", d / "v1", "--data", d / "new.jsonl", "-o", d / "v2")
    assert res.exit_code == 0, res.output
    for v in ("v1", "v2"):
        spec = read_policy(d / v)
        write_policy(d / v, "cost-aware", {"lam": 0.0, "costs": spec["options"]["costs"]}, spec["models"])
    assert NEW in read_policy(d / "v2")["models"] and NEW not in read_policy(d / "v1")["models"]
    return {"dir": d, "v1": d / "v1", "v2": d / "v2", "prompts": [r["question"] for r in first[:40]]}


@pytest.fixture(scope="module")
def replay() -> Iterator[dict[str, ReplayUpstream]]:
    """The stand-in, and a second one the new model moves to when its URL changes."""
    with (
        ReplayUpstream.from_routerarena(RECORDED) as up,
        ReplayUpstream.from_routerarena(RECORDED, models=[NEW]) as moved,
    ):
        yield {"up": up, "moved": moved}


class Load(ClientLoad):
    """Clients sending the recorded prompts back to back, on a thread of their own, until stopped;
    each answer kept as (start time, status, x-tela-version, x-tela-model)."""

    def __init__(self, url: str, prompts: list[str], clients: int = 4) -> None:
        super().__init__(url, clients)
        self.prompts = prompts
        self.results: list[tuple[float, int, str, str]] = []

    async def send(self, client: Any, c: int, i: int) -> None:
        body = {
            "model": "router-many",
            "messages": [{"role": "user", "content": self.prompts[(c + i * self.clients) % len(self.prompts)]}],
        }
        t0 = time.time()
        r = await client.post("/v1/chat/completions", json=body)
        h = r.headers
        self.results.append((t0, r.status_code, h.get("x-tela-version", ""), h.get("x-tela-model", "")))

    def after(self, t: float) -> list[tuple[float, int, str, str]]:
        return [r for r in list(self.results) if r[0] > t]


def _ask(url: str, prompt: str) -> httpx.Response:
    body = {"model": "router-many", "messages": [{"role": "user", "content": prompt}]}
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r


def _stop(proc: subprocess.Popen[str], workers: set[int]) -> None:
    """Stop a `tela serve --workers N` and, should its main process have died first, the workers it
    left (they hold the output pipe open: a reader of it would wait for ever)."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for pid in workers:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                ours = b"multiprocessing" in fh.read()
            if ours:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def _reloads(url: str, result: str) -> float:
    return metric(get(url + "/metrics")[1], "tela_router_reloads_total", router="many", result=result)


def test_an_added_upstream_and_the_version_routing_to_it_take_effect_together(built, replay, tmp_path):
    from tela_core.routing import versions as rv

    up, moved = replay["up"], replay["moved"]
    live = tmp_path / "live"
    rv.init(live)
    rv.set_current(live, rv.add_version(live, built["v1"]), "promote")
    decisions, shadow = tmp_path / "decisions.jsonl", tmp_path / "shadow.jsonl"
    three = {m: {"base_url": up.base_url, "price_input": p, "price_output": p} for m, p in PRICES.items()}
    settings: dict[str, Any] = {
        "routers": {"many": {"path": str(live)}},  # the router's models are upstream names: no list
        "upstreams": three,
        "decision_log": str(decisions),
        "shadow": 1.0,
        "shadow_log": str(shadow),
        "fallback_models": 3,
        "follow_versions_s": 0.2,
        "admin_token_env": "TELA_TEST_ADMIN",
    }
    cfg = tmp_path / "serve.yaml"
    _write_json(cfg, settings)
    server = TelaServe(["--config", str(cfg), "--log-level", "info"], free_port(), extra_env={"TELA_TEST_ADMIN": TOKEN})
    auth = {"authorization": f"Bearer {TOKEN}"}
    prompts = built["prompts"]
    try:
        assert _ask(server.url, prompts[0]).headers["x-tela-version"] == "v1"
        with Load(server.url, prompts) as load:
            wait_until(lambda: len(load.results) > 20)

            # 1. v2 promoted before its model is an upstream: refused, v1 keeps serving
            rv.set_current(live, rv.add_version(live, built["v2"]), "promote")
            wait_until(lambda: _reloads(server.url, "failed") >= 1)
            t_refused = time.time()
            wait_until(lambda: len(load.after(t_refused)) > 20)
            assert {v for _, _, v, _ in load.after(t_refused)} == {"v1"}

            # 2. the upstream added to the file: following loads v2 with it, no restart, no reload call
            settings["upstreams"] = {**three, NEW: {"base_url": up.base_url, "price_input": 0.2, "price_output": 0.2}}
            _write_json(cfg, settings)
            wait_until(lambda: _reloads(server.url, "ok") >= 1)
            t_added = time.time()
            wait_until(lambda: len(load.after(t_added)) > 20)
            after = load.after(t_added)
            assert {v for _, _, v, _ in after} == {"v2"} and {m for *_, m in after} == {NEW}
            assert sum(up.requests_for(NEW).values()) > 0

            # 3. a bad reload changes nothing: a file that does not parse, then one that removes the
            # upstream v2 routes to (SIGHUP, the admin endpoint: both refused, saying why)
            cfg.write_text("upstreams: [not, a, mapping\n", encoding="utf-8")
            server.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: _reloads(server.url, "failed") >= 2)
            _write_json(cfg, {**settings, "upstreams": three})
            r = httpx.post(server.url + "/admin/reload", headers=auth, timeout=60)
            assert r.status_code == 500, r.text
            assert NEW in r.json()["routers"]["many"]["error"] and "no longer an upstream" in r.text
            unset = {"base_url": up.base_url, "api_key_env": "TELA_TEST_NO_SUCH_KEY"}
            _write_json(cfg, {**settings, "upstreams": {**settings["upstreams"], "other": unset}})
            r = httpx.post(server.url + "/admin/reload", headers=auth, timeout=60)
            assert r.status_code == 500 and "TELA_TEST_NO_SUCH_KEY" in r.json()["routers"]["many"]["error"], r.text
            t_bad = time.time()
            wait_until(lambda: len(load.after(t_bad)) > 20)
            assert {(v, m) for _, _, v, m in load.after(t_bad)} == {("v2", NEW)}

            # 4. the new model's URL and price changed: the admin endpoint says which, requests move
            settings["upstreams"][NEW] = {"base_url": moved.base_url, "price_input": 50.0, "price_output": 50.0}
            _write_json(cfg, {**settings, "max_body_bytes": 4096})  # read at start only: named, not applied
            r = httpx.post(server.url + "/admin/reload", headers=auth, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["upstreams"] == {"added": [], "changed": [NEW], "removed": []}
            assert r.json()["restart_keys"] == ["max_body_bytes"]
            t_moved = time.time()
            wait_until(lambda: len(load.after(t_moved)) > 20)
            n_moved = sum(moved.requests_for(NEW).values())
            assert n_moved > 0

        # fallback sees the new model: it fails, the next by predicted quality answers
        up.reset()
        moved.inject("500", times=None, model=NEW)
        r = _ask(server.url, prompts[1])
        assert r.headers["x-tela-fallback"] == NEW and r.headers["x-tela-model"] in PRICES
        moved.reset()
        text = get(server.url + "/metrics")[1]
    finally:
        out = server.stop()
    assert "Traceback" not in out, out
    assert f"{NEW} is not an upstream" in out  # step 1: the log says why v2 did not load
    assert "not valid YAML" in out and "no longer an upstream" in out  # step 3
    assert "still serving the routers and upstreams loaded before" in out

    # not one request failed; every answer came from the version and model of its moment
    assert not load.errors, load.errors[:3]
    assert len(load.results) > 100 and {s for _, s, _, _ in load.results} == {200}
    assert {(v, m) for _, _, v, m in load.results if v == "v2"} == {("v2", NEW)}

    # metrics, the decision log and shadow mode see the new model, at its price of the moment
    assert metric(text, "tela_requests_total", router="many", model=NEW, status="200") > 0
    assert metric(text, "tela_fallbacks_total", router="many", from_model=NEW) >= 1
    rows = [json.loads(line) for line in decisions.read_text(encoding="utf-8").splitlines()]
    new_rows = [r for r in rows if r["upstream"] == NEW and r["status"] == 200]
    assert new_rows and all(r["version"] == "v2" and set(r["quality"]) == {*PRICES, NEW} for r in new_rows)
    per_token = {round(r["cost"] / (r["prompt_tokens"] + r["completion_tokens"]) * 1e6, 6) for r in new_rows}
    assert per_token == {0.2, 50.0}, per_token
    shadowed = [json.loads(line) for line in shadow.read_text(encoding="utf-8").splitlines()]
    asked = {m for s in shadowed if s["chosen"] == NEW for m in s["answers"]}
    assert NEW in asked and asked & set(PRICES), asked


@pytest.mark.slow
def test_workers_started_by_sighup_read_the_config_file_again(built, replay, tmp_path):
    """--workers 2: SIGHUP to the main process replaces the workers, and each new one takes the
    config file's upstreams as they are now with the router; a file that does not read leaves
    the workers before serving (uvicorn aborts the restart), and a worker that dies meanwhile is
    replaced by one serving as the others do (not one that fails to start, which would stop the
    server)."""
    up = replay["up"]
    link = tmp_path / "current"
    os.symlink(built["v1"], link)
    three = {m: {"base_url": up.base_url, "price_input": p, "price_output": p} for m, p in PRICES.items()}
    settings: dict[str, Any] = {"routers": {"many": {"path": str(link)}}, "upstreams": three, "workers": 2}
    cfg = tmp_path / "serve.yaml"
    _write_json(cfg, settings)
    server = TelaServe(["--config", str(cfg), "--log-level", "warning"], free_port())
    lines: list[str] = []  # the server's output, read as it comes
    reader = threading.Thread(target=lambda: lines.extend(iter(server.proc.stdout.readline, "")), daemon=True)
    reader.start()
    prompts = built["prompts"]

    def answered_by() -> set[str]:
        return {_ask(server.url, p).headers["x-tela-model"] for p in prompts[:6]}  # new connections: any worker

    seen: set[int] = set()

    def workers() -> set[int]:
        try:
            status, body = get(server.url + "/ready")
        except OSError:  # a connection an exiting worker closed
            return set()
        pids = set(json.loads(body)["workers"]["pids"]) if status == 200 else set()
        seen.update(pids)
        return pids

    try:
        assert NEW not in answered_by()
        before = workers()
        settings["upstreams"] = {**three, NEW: {"base_url": up.base_url}}
        _write_json(cfg, settings)
        tmp = tmp_path / "current.new"
        os.symlink(built["v2"], tmp)
        os.replace(tmp, link)
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(now := workers()) == 2 and not now & before, timeout=120)  # both replaced
        assert answered_by() == {NEW}
        cfg.write_text("upstreams: [not, a, mapping\n", encoding="utf-8")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any("aborting the restart" in line for line in list(lines)), timeout=120)
        assert answered_by() == {NEW}
        # a worker that dies while the file does not read is replaced, serving as the others do
        now = workers()
        os.kill(min(now), signal.SIGKILL)
        wait_until(lambda: server.proc.poll() is not None or (len(w := workers()) == 2 and w != now), timeout=120)
        assert server.proc.poll() is None, "the server stopped"  # uvicorn stops when a new worker cannot start
        assert answered_by() == {NEW}
    finally:
        _stop(server.proc, seen)
        reader.join(10)
    out = "".join(lines)
    assert "not valid YAML" in out and "this worker does not start" in out, out[-3000:]
    assert "replaces one that stopped and serves with the settings the others serve with" in out, out[-3000:]
