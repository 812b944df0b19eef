"""`POST /v1/feedback`, the guard and `tela feedback` under hostile or careless input: every bad
request is a 4xx (never a 500) with nothing written, a damaged log is one line naming the file and
line with exit 2, and the guard neither fires on rounding nor runs with settings that contradict
each other.

The server is real (the app in this process, called through Starlette's TestClient); its upstreams
are STAND-INS for remote model APIs (serve_support.EchoStandIn, loopback).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from serve_support import EchoStandIn, echo_pair, metric, train_length_router  # noqa: E402

KEY = "client-key-a1"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_length_router(tmp_path_factory.mktemp("attack") / "r")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoStandIn]]:
    with echo_pair() as ups:
        yield ups


def _yaml(router: Path, ups: dict[str, Any], tmp: Path, extra: str = "", feedback_log: str | None = None) -> Path:
    cfg = tmp / "serve.yaml"
    cfg.write_text(
        f"routers:\n  len: {{path: {router}, upstreams: [small, big]}}\n"
        f"upstreams:\n  small: {{base_url: '{ups['small'].url}', model: small}}\n"
        f"  big: {{base_url: '{ups['big'].url}', model: big}}\n"
        f"keys: [{KEY}]\nfeedback_log: {feedback_log or tmp / 'feedback.jsonl'}\n" + extra
    )
    return cfg


def _client(cfg: Path) -> Any:
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app
    from tela_core.serve.config import build_config

    return TestClient(create_app(build_config(cfg)), raise_server_exceptions=False)


def test_hostile_feedback_is_a_4xx_with_nothing_written(router, upstreams, tmp_path):
    from tela_core.serve.feedback import sign_id

    log = tmp_path / "feedback.jsonl"
    with _client(_yaml(router, upstreams, tmp_path)) as client:
        rid = sign_id("1-abc-1")  # an id of this process (the app drew its key): taken, "known": false

        def post(raw: bytes) -> Any:
            return client.post("/v1/feedback", content=raw, headers={**AUTH, "content-type": "application/json"})

        hostile = {
            # float(10**400) overflows: it was a 500
            "a 400-digit score": (b'{"id": "%s", "score": 1%s}' % (rid.encode(), b"0" * 400), 400, "invalid_score"),
            "NaN": (b'{"id": "%s", "score": NaN}' % rid.encode(), 400, "invalid_score"),
            "-Infinity": (b'{"id": "%s", "score": -Infinity}' % rid.encode(), 400, "invalid_score"),
            # a lone surrogate in an id of the right shape cannot be encoded: it was a 500
            "a surrogate in the id": (b'{"id": "1-abc-1-\\ud800-0123456789abcdef", "score": 1}', 404, None),
            "nested 8,000 deep": (b"[" * 8000 + b"]" * 8000, 400, "invalid_json"),
            "an id that is a number": (b'{"id": 12, "score": 1}', 400, "missing_id"),
            "a source that is a list": (
                b'{"id": "%s", "score": 1, "source": ["x"]}' % rid.encode(),
                400,
                "invalid_source",
            ),
        }
        for what, (raw, status, code) in hostile.items():
            r = post(raw)
            assert r.status_code == status, (what, r.text)
            assert code is None or r.json()["error"]["code"] == code, (what, r.text)
        assert not log.exists() or log.read_text() == ""

        # -0.0 is a score of 0, written as 0.0
        r = post(b'{"id": "%s", "score": -0.0}' % rid.encode())
        assert r.status_code == 200 and r.json()["score"] == 0.0 and '"score":-0.0' not in r.text
        assert [json.loads(line)["score"] for line in log.read_text().splitlines()] == [0.0]
        assert "-0.0" not in log.read_text()

        # the log moved away (logrotate): the next verdict goes to a new file at the path
        log.rename(tmp_path / "feedback.jsonl.1")
        assert post(b'{"id": "%s", "score": "up"}' % rid.encode()).status_code == 200
        assert [json.loads(line)["score"] for line in log.read_text().splitlines()] == [1.0]
        metrics = client.get("/metrics").text
    assert metric(metrics, "tela_feedback_total", result="invalid_score") == 3
    assert metric(metrics, "tela_feedback_total", result="accepted") == 2
    # no client text becomes a label value: routers are configured names, results a fixed set
    labels = [line.split("{", 1)[1].split("}")[0] for line in metrics.splitlines() if line.startswith("tela_feedback")]
    assert labels and all('router="len"' in x or 'router="none"' in x or 'router="unknown"' in x for x in labels)
    results = {x.split('result="')[1].split('"')[0] for x in labels if 'result="' in x}
    assert results == {
        "accepted",
        "invalid_score",
        "invalid_json",
        "missing_id",
        "invalid_source",
        "unknown_request_id",
    }


def test_one_id_stores_at_most_feedback_per_id_verdicts(router, upstreams, tmp_path):
    """A client key holder rating its own request over and over: the first feedback_per_id verdicts
    are stored, the rest a 429 counted and not written; on an id of this process and of another."""
    from tela_core.serve.feedback import sign_id

    log = tmp_path / "feedback.jsonl"
    with _client(_yaml(router, upstreams, tmp_path, extra="feedback_per_id: 3\n")) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "router-len", "messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
        )
        assert chat.status_code == 200, chat.text
        mine, another = chat.headers["x-request-id"], sign_id("ffff-0123456789ab-9")
        for rid in (mine, another):
            got = [client.post("/v1/feedback", json={"id": rid, "score": i % 2}, headers=AUTH) for i in range(5)]
            assert [r.status_code for r in got] == [200, 200, 200, 429, 429], [r.text for r in got]
            assert got[3].json()["error"]["code"] == "too_many_verdicts" and "feedback_per_id" in got[3].text
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert [r["id"] for r in rows] == [mine] * 3 + [another] * 3
        metrics = client.get("/metrics").text
    assert metric(metrics, "tela_feedback_total", result="too_many_verdicts") == 4
    assert metric(metrics, "tela_feedback_total", result="accepted") == 6


def test_a_full_disk_is_a_503_and_counted(router, upstreams, tmp_path):
    """As docs/deployment.md says: the verdict could not be stored, so the client is told to try again."""
    if not os.path.exists("/dev/full"):  # pragma: no cover - Linux has it
        pytest.skip("no /dev/full")
    from tela_core.serve.feedback import sign_id

    with _client(_yaml(router, upstreams, tmp_path, feedback_log="/dev/full")) as client:
        r = client.post("/v1/feedback", json={"id": sign_id("1-abc-2"), "score": 1}, headers=AUTH)
        metrics = client.get("/metrics").text
    assert (r.status_code, r.json()["error"]["code"]) == (503, "not_stored")
    assert metric(metrics, "tela_log_lines_lost_total", log="feedback") == 1


def test_guard_margin_zero_does_not_fire_on_the_same_scores():
    """Two versions given the very same scores are equal: with guard_margin 0 the means' rounding
    (1e-16) fired the guard, and with guard_rollback rolled back a version as good as the last."""
    from tela_core.serve.guard import compare_windows

    for score in (0.1, 0.3, 0.7, 0.9):
        for n_cur, n_prev in ((50, 20), (20, 50), (3, 7), (10, 3)):
            c = compare_windows("v2", [score] * n_cur, "v1", [score] * n_prev, margin=0.0, minimum=2)
            assert c is not None and not c.fired, (score, n_cur, n_prev, c)
    lower = compare_windows("v2", [0.4] * 3, "v1", [0.5] * 3, margin=0.0, minimum=2)
    assert lower is not None and lower.fired  # a real drop still fires


@pytest.mark.parametrize(
    "extra, message",
    [
        ("guard_rollback: true\n", "guard_rollback: rolls back when the guard fires; set guard: true"),
        ("guard: true\nguard_min: 500\nguard_window: 10\n", "guard_min: 500 scores can never be in a window"),
    ],
)
def test_guard_settings_that_contradict_are_a_config_error(tmp_path, extra, message):
    from tela_core.serve.config import ConfigError, build_config

    (tmp_path / "r").mkdir()
    ups = {
        "small": type("U", (), {"url": "http://127.0.0.1:9/v1"}),
        "big": type("U", (), {"url": "http://127.0.0.1:9/v1"}),
    }
    with pytest.raises(ConfigError, match=message):
        build_config(_yaml(tmp_path / "r", ups, tmp_path, extra))
    # guard_window alone below the default guard_min still works (the minimum is the window)
    assert build_config(_yaml(tmp_path / "r", ups, tmp_path, "guard: true\nguard_window: 10\n")).guard_window == 10


@pytest.mark.parametrize(
    "which, line, why",
    [
        ("feedback", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            "decisions",
            '{"id": "r1", "router": "len", "chosen": "m1", "fallback_from": "m2", "upstreams": [1]}',
            "upstreams",
        ),
    ],
)
def test_tela_feedback_names_the_damaged_line(tmp_path, which, line, why):
    """A damaged line (nested past the parser's depth; a shadow-log map that is not one) was a
    traceback: now one line naming the file and line, exit 2, nothing written."""
    from tela_core.testkit.helpers import run_cli

    files = {
        "feedback": ['{"time": "2026-01-01T00:00:00.000Z", "id": "r1", "score": 0.5}'],
        "decisions": ['{"id": "r1", "router": "len", "chosen": "m1", "upstream": "small", "prompt": "hello"}'],
    }
    files[which].append(line)
    for name, lines in files.items():
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines + [files[name][0]]) + "\n")
    out = tmp_path / "out"
    res = run_cli("feedback", tmp_path / "feedback.jsonl", "--from-log", tmp_path / "decisions.jsonl", "-o", out)
    assert res.exit_code == 2, res.output
    assert f"{tmp_path / (which + '.jsonl')}:2:" in res.output and why in res.output, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not out.exists()


def test_a_guard_rollback_whose_reload_fails_is_counted_failed(tmp_path, upstreams, monkeypatch, caplog):
    """The guard rolled the versions folder back but the version it went back to no longer loads
    (damaged on disk): the server still serves the bad version, so the rollback is `failed` (it
    was counted `ok`) and the log says what is served."""
    import time

    from tela_core.routing import versions

    folder = tmp_path / "versions"
    versions.init(folder)
    for i in (1, 2):
        name = versions.add_version(folder, train_length_router(tmp_path / f"train{i}"))
        versions.set_current(folder, name, "promote")
    versions.set_current(folder, "v1", "rollback")
    extra = "guard: true\nguard_min: 2\nguard_window: 2\nguard_rollback: true\nadmin_token_env: A1_ADMIN\n"
    monkeypatch.setenv("A1_ADMIN", "admin-a1")
    caplog.set_level(logging.INFO, logger="tela.serve")
    with _client(_yaml(folder, upstreams, tmp_path, extra)) as client:

        def rate(score: float) -> None:
            chat = {"model": "router-len", "messages": [{"role": "user", "content": f"q {time.time()}"}]}
            rid = client.post("/v1/chat/completions", json=chat, headers=AUTH).headers["x-request-id"]
            assert client.post("/v1/feedback", json={"id": rid, "score": score}, headers=AUTH).status_code == 200

        rate(1.0), rate(1.0)
        versions.set_current(folder, "v2", "promote")
        assert client.post("/admin/reload", headers={"authorization": "Bearer admin-a1"}).status_code == 200
        (folder / "v1" / "tela.json").unlink()  # v1 damaged: it cannot be loaded again
        rate(0.0), rate(0.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = client.get("/metrics").text
            if metric(metrics, "tela_guard_rollback_total", router="len"):
                break
            time.sleep(0.05)
        served = client.post(
            "/v1/chat/completions",
            json={"model": "router-len", "messages": [{"role": "user", "content": "x"}]},
            headers=AUTH,
        )
    assert versions.read_state(folder).current == "v1"
    assert served.headers.get("x-tela-version") == "v2"
    assert metric(metrics, "tela_guard_rollback_total", router="len", result="failed") == 1
    assert metric(metrics, "tela_guard_rollback_total", router="len", result="ok") == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= 40 and r.getMessage().startswith("guard:")]
    assert errors and "still serving v2" in errors[-1], errors


def test_tela_feedback_skips_verdicts_on_requests_that_got_no_answer(tmp_path):
    """A user's thumbs-down on an error (502) or on a stream cut off reached a worker that did not
    issue the id, which took it (it cannot know); the decision log knows: it was made a training
    outcome of 0 for the model routing chose, blaming the model for an outage. Now skipped, counted."""
    from tela_core.testkit.helpers import run_cli

    def line(rid: str, status: int, outcome: str | None) -> str:
        d = {"id": rid, "router": "len", "chosen": "m1", "upstream": "small", "fallback_from": None}
        return json.dumps({**d, "status": status, "outcome": outcome, "prompt": f"question {rid}"})

    (tmp_path / "decisions.jsonl").write_text(
        "\n".join([line("ok", 200, None), line("err", 502, "upstream_error"), line("cut", 200, "stall")]) + "\n"
    )
    (tmp_path / "feedback.jsonl").write_text(
        "".join(
            json.dumps({"time": "2026-01-01T00:00:00.000Z", "id": i, "score": 0}) + "\n" for i in ("ok", "err", "cut")
        )
    )
    out = tmp_path / "out"
    res = run_cli(
        "feedback", tmp_path / "feedback.jsonl", "--from-log", tmp_path / "decisions.jsonl", "-o", out, "--json"
    )
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output)
    assert (counts["records"], counts["feedback"], counts["skipped_no_answer"]) == (1, 1, 2), counts
    assert [json.loads(x)["id"] for x in (out / "records.jsonl").read_text().splitlines()] == ["ok"]


class _CutStandIn(EchoStandIn):
    """A STAND-IN for a remote model API whose streams stop half-way: the connection closes after
    the first event (an upstream that crashed mid-answer)."""

    async def _handle(self, reader: Any, writer: Any) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(
            next(
                (ln.split(":", 1)[1] for ln in head.decode().split("\r\n") if ln.lower().startswith("content-length")),
                0,
            )
        )
        body = json.loads(await reader.readexactly(n))
        whole = self._reply(body)
        writer.write(whole[: whole.index(b"\n\n\r\n", whole.index(b"data: ")) + 4])  # headers and the first event
        await writer.drain()
        writer.close()


def test_a_stream_cut_off_cannot_be_rated(router, tmp_path):
    """A stream that ended early (the user saw an error event) was taken as a verdict on the
    model and counted by the guard against the version; now a 409 like an error status."""
    ups = {"small": _CutStandIn("small"), "big": _CutStandIn("big")}
    try:
        with _client(_yaml(router, ups, tmp_path, "guard: true\n")) as client:
            chat = {"model": "router-len", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with client.stream("POST", "/v1/chat/completions", json=chat, headers=AUTH) as r:
                rid, text = r.headers["x-request-id"], r.read().decode()
            assert r.status_code == 200 and "upstream failed mid-stream" in text, text
            answer = client.post("/v1/feedback", json={"id": rid, "score": "down"}, headers=AUTH)
            metrics = client.get("/metrics").text
    finally:
        for up in ups.values():
            up.close()
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "no_answer"), answer.text
    assert "ended early" in answer.json()["error"]["message"]
    assert not (tmp_path / "feedback.jsonl").exists() or not (tmp_path / "feedback.jsonl").read_text()
    assert metric(metrics, "tela_guard_window") == 0
