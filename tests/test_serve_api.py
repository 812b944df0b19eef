"""`tela serve` end to end: the official `openai` client (sync, async, streaming) against a real
`tela serve` process on loopback, routing with a trained `length` router.

The two upstreams are STAND-INS for remote model APIs (examples/standin_upstream.py): small
OpenAI-compatible servers on loopback that answer with their own model name ("small", "big"), can
stream, and can be told to fail or stall. So each answer says which model tela picked.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from serve_support import TelaServe, control, free_port, get, metric, standin, stats, train_length_router  # noqa: E402

KEY = "sk-test-client-key"
THRESHOLD = 0.5


def _prompt(i: int) -> str:
    """Prompts from 20 to ~1,500 characters: the length router scores them from 0 to 1."""
    return f"Question {i}: " + "explain the reasons in detail " * (i % 50)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    from tela_core import Router
    from tela_core.routing.artifact import write_policy

    tmp = tmp_path_factory.mktemp("serve")
    router_dir = train_length_router(tmp / "len")
    models = Router.load(router_dir).models
    write_policy(router_dir, "threshold", {"threshold": THRESHOLD}, models)
    cfg = tmp / "serve.yaml"
    cfg.write_text(
        "keys_env: TELA_TEST_KEYS\nsticky_header: x-tela-session\nmax_body_bytes: 65536\ninline_below_ms: 0  # score on the worker thread, batched\n"  # noqa: E501
    )
    log = tmp / "decisions.jsonl"
    with standin("small") as small, standin("big") as big:
        server = TelaServe(
            [
                "--config",
                str(cfg),
                "--router",
                f"len={router_dir}",
                "--weak",
                f"{small}#small",
                "--strong",
                f"{big}#big",
                "--decision-log",
                str(log),
                "--upstream-timeout",
                "3",
            ],
            free_port(),
            extra_env={"TELA_TEST_KEYS": f"other-key,{KEY}"},
        )
        try:
            yield {
                "url": server.url,
                "small": small,
                "big": big,
                "router": Router.load(router_dir),
                "log": log,
                "server": server,
            }
        finally:
            out = server.stop()
            assert "Traceback" not in out, out


@pytest.fixture
def client(stack):
    return openai.OpenAI(base_url=stack["url"] + "/v1", api_key=KEY, max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def _upstreams_ok(request):
    yield
    if "stack" in request.fixturenames:
        s = request.getfixturevalue("stack")
        for u in (s["small"], s["big"]):
            control(u, mode="ok")


def _expected(stack, prompt: str) -> str:
    return {0: "small", 1: "big"}[stack["router"].models.index(stack["router"].route([prompt])[0])]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_routed_answer_and_headers(stack, client):
    short, long = _prompt(1), _prompt(49)
    for prompt, model in ((short, "small"), (long, "big")):
        assert _expected(stack, prompt) == model
        raw = client.chat.completions.with_raw_response.create(model="router-len", messages=_user(prompt))
        reply = raw.parse()
        assert reply.model == model and reply.choices[0].message.content == f"I am {model}."
        h = raw.headers
        assert h["x-tela-router"] == "len" and h["x-tela-model"] == model
        w = float(stack["router"].score([prompt])[0])
        assert float(h["x-tela-score"]) == pytest.approx(w, abs=1e-6)
        assert float(h["x-tela-threshold"]) == pytest.approx(THRESHOLD)
        assert 0 <= float(h["x-tela-routing-ms"]) < 5000


def test_threshold_in_model_name(stack, client):
    prompt = _prompt(10)
    w = float(stack["router"].score([prompt])[0])
    assert 0 < w < 1
    lo = client.chat.completions.with_raw_response.create(model=f"router-len-{w - 0.01:.4f}", messages=_user(prompt))
    hi = client.chat.completions.with_raw_response.create(
        model=f"router-len-{min(1.0, w + 0.01):.4f}", messages=_user(prompt)
    )
    assert lo.parse().model == "big" and hi.parse().model == "small"
    assert float(lo.headers["x-tela-threshold"]) == pytest.approx(w - 0.01, abs=1e-4)


def test_streaming_sync_client(stack, client):
    prompt = _prompt(45)
    chunks = list(client.chat.completions.create(model="router-len", messages=_user(prompt), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "I am big." and chunks[-1].model == "big"
    # the raw stream is server-sent events ending with data: [DONE]
    r = httpx.post(
        stack["url"] + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "router-len", "stream": True, "messages": _user(prompt)},
        timeout=20,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-tela-model"] == "big"
    assert r.text.rstrip().endswith("data: [DONE]")


def test_async_client_64_concurrent_each_answered_by_its_model(stack):
    prompts = [_prompt(i) for i in range(64)]
    expected = [_expected(stack, p) for p in prompts]
    assert {"small", "big"} <= set(expected)
    before = get(stack["url"] + "/metrics")[1]

    async def main():
        c = openai.AsyncOpenAI(base_url=stack["url"] + "/v1", api_key=KEY, max_retries=0, timeout=30)

        async def one(i):
            stream = i % 4 == 0
            if stream:
                s = await c.chat.completions.create(model="router-len", messages=_user(prompts[i]), stream=True)
                return "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
            r = await c.chat.completions.create(model="router-len", messages=_user(prompts[i]))
            return r.choices[0].message.content

        try:
            return await asyncio.gather(*(one(i) for i in range(64)))
        finally:
            await c.close()

    answers = asyncio.run(main())
    assert answers == [f"I am {m}." for m in expected]
    after = get(stack["url"] + "/metrics")[1]
    for model in ("small", "big"):
        sent = expected.count(model)
        got = metric(after, "tela_requests_total", router="len", model=model, status="200") - metric(
            before, "tela_requests_total", router="len", model=model, status="200"
        )
        assert got == sent, (model, got, sent)
    assert metric(after, "tela_batch_size_count", router="len") > metric(before, "tela_batch_size_count", router="len")


def test_pass_through_keeps_unknown_fields(stack, client):
    parts = [
        {"type": "text", "text": "Describe this picture."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    extra = {"custom_field": {"nested": [1, 2]}}
    raw = client.chat.completions.with_raw_response.create(
        model="small",
        messages=[{"role": "user", "content": parts}],
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
        n=1,
        logprobs=False,
        extra_body=extra,
    )
    assert raw.parse().model == "small" and "x-tela-router" not in raw.headers
    seen = stats(stack["small"])["last_body"]
    assert seen["model"] == "small" and seen["messages"][0]["content"] == parts and seen["tools"] == tools
    assert seen["tool_choice"] == "auto" and seen["response_format"] == {"type": "json_object"}
    assert seen["custom_field"] == extra["custom_field"] and seen["n"] == 1 and seen["logprobs"] is False


def test_routes_on_the_last_user_turn_with_content_parts(stack, client):
    long_q = _prompt(49)
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": long_q}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    assert _expected(stack, long_q) == "big"
    r = client.chat.completions.with_raw_response.create(model="router-len", messages=messages)
    assert r.headers["x-tela-model"] == "big"
    assert float(r.headers["x-tela-score"]) == pytest.approx(float(stack["router"].score([long_q])[0]), abs=1e-6)


def test_sticky_session_header_routes_on_the_first_user_turn(stack, client):
    convo = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": _prompt(49)},
    ]
    plain = client.chat.completions.with_raw_response.create(model="router-len", messages=convo)
    sticky = client.chat.completions.with_raw_response.create(
        model="router-len", messages=convo, extra_headers={"x-tela-session": "s1"}
    )
    assert plain.headers["x-tela-model"] == "big" and sticky.headers["x-tela-model"] == "small"


def test_models_health_ready_metrics(stack, client):
    for i in (1, 49):  # one answer from each model (run alone, no earlier test has routed any)
        client.chat.completions.create(model="router-len", messages=_user(_prompt(i)))
    ids = [m.id for m in client.models.list()]
    assert ids == ["router-len", "small", "big"]
    assert get(stack["url"] + "/health") == (200, '{"status":"ok"}')
    status, body = get(stack["url"] + "/ready")
    assert status == 200 and json.loads(body) == {"ready": True, "routers": {"len": True}}
    status, text = get(stack["url"] + "/metrics")
    assert status == 200
    for name in (
        "tela_requests_total",
        "tela_routing_seconds_bucket",
        "tela_upstream_seconds_bucket",
        "tela_strong_share",
        "tela_routed_total",
        "tela_tokens_total",
    ):
        assert name in text, name
    assert 0.0 < metric(text, "tela_strong_share", router="len") < 1.0


def test_errors_use_the_openai_envelope(stack, client):
    url = stack["url"] + "/v1/chat/completions"
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}

    def err(r, status, code):
        assert r.status_code == status, r.text
        e = r.json()["error"]
        assert set(e) == {"message", "type", "param", "code"} and e["code"] == code and "Traceback" not in r.text
        return e

    err(httpx.post(url, headers=auth, content=b"{not json"), 400, "invalid_json")
    err(
        httpx.post(url, headers=auth, json={"model": "router-len", "messages": [{"role": "system", "content": "x"}]}),
        400,
        "no_user_turn",
    )
    e = err(httpx.post(url, headers=auth, json={"model": "gpt-9", "messages": _user("q")}), 400, "model_not_found")
    assert "router-len" in e["message"] and e["param"] == "model"
    err(
        httpx.post(url, headers=auth, json={"model": "router-len-1.5", "messages": _user("q")}),
        400,
        "invalid_threshold",
    )
    err(
        httpx.post(url, headers=auth, json={"model": "router-len-abc", "messages": _user("q")}),
        400,
        "invalid_threshold",
    )
    err(
        httpx.post(url, headers=auth, json={"model": "router-len", "messages": _user("x" * 70000)}),
        413,
        "request_too_large",
    )
    err(httpx.post(url, json={"model": "router-len", "messages": _user("q")}), 401, "invalid_api_key")
    err(
        httpx.post(
            url, headers={"authorization": "Bearer wrong"}, json={"model": "router-len", "messages": _user("q")}
        ),
        401,
        "invalid_api_key",
    )
    assert httpx.get(stack["url"] + "/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=stack["url"] + "/v1", api_key="nope", max_retries=0).chat.completions.create(
            model="router-len", messages=_user("q")
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="router-nope", messages=_user("q"))


def test_fallback_on_upstream_error_then_502(stack, client):
    prompt = _prompt(1)  # routed to small
    before = get(stack["url"] + "/metrics")[1]
    control(stack["small"], mode="fail")
    raw = client.chat.completions.with_raw_response.create(model="router-len", messages=_user(prompt))
    assert (
        raw.parse().model == "big"
        and raw.headers["x-tela-fallback"] == "small"
        and raw.headers["x-tela-model"] == "big"
    )
    control(stack["big"], mode="fail")
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="router-len", messages=_user(prompt))
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_error"
    after = get(stack["url"] + "/metrics")[1]
    assert (
        metric(after, "tela_fallbacks_total", router="len", from_model="small", to_model="big")
        - metric(before, "tela_fallbacks_total", router="len", from_model="small", to_model="big")
        == 2
    )
    assert (
        metric(after, "tela_upstream_errors_total", model="small")
        - metric(before, "tela_upstream_errors_total", model="small")
        == 2
    )
    assert (
        metric(after, "tela_requests_total", router="len", status="502")
        - metric(before, "tela_requests_total", router="len", status="502")
        == 1
    )


def test_fallback_on_timeout(stack, client):
    control(stack["small"], mode="stall", stall_s=12)
    before = get(stack["url"] + "/metrics")[1]
    raw = client.chat.completions.with_raw_response.create(model="router-len", messages=_user(_prompt(1)))
    # big answered: the 3 s upstream timeout cut small off (after its 12 s stall small would answer);
    # told by what tela counted, not by a clock a loaded machine can miss
    assert raw.parse().model == "big" and raw.headers["x-tela-fallback"] == "small"
    after = get(stack["url"] + "/metrics")[1]
    timeouts = metric(after, "tela_upstream_errors_total", model="small", reason="timeout") - metric(
        before, "tela_upstream_errors_total", model="small", reason="timeout"
    )
    assert timeouts == 1


def _wait_cut_off(url: str, before: int) -> int:
    """The stand-in's count of requests cut off, once it exceeds ``before`` or after 20 s."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n = stats(url)["cut_off"]
        if n > before:
            return n
        time.sleep(0.05)
    return stats(url)["cut_off"]


def test_client_disconnect_cancels_the_upstream_call(stack):
    """The upstream call ends when the client hangs up, not at the 3 s upstream timeout. Told apart
    by what tela counted (a 499, no timeout), not by a clock: a loaded machine may take seconds."""
    big = stack["big"]
    headers = {"authorization": f"Bearer {KEY}"}
    metrics_before = get(stack["url"] + "/metrics")[1]
    # streaming: the upstream sends one chunk, then stalls; the client reads it and hangs up
    control(big, mode="stall-stream", stall_s=30)
    before = stats(big)["cut_off"]
    with httpx.stream(
        "POST",
        stack["url"] + "/v1/chat/completions",
        headers=headers,
        timeout=10,
        json={"model": "big", "stream": True, "messages": _user("q")},
    ) as r:
        assert r.status_code == 200
        next(r.iter_bytes())
    assert _wait_cut_off(big, before) == before + 1
    # not streaming: the upstream stalls before answering; the client gives up after 0.3 s
    control(big, mode="stall", stall_s=30)
    before = stats(big)["cut_off"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            stack["url"] + "/v1/chat/completions",
            headers=headers,
            timeout=0.3,
            json={"model": "big", "messages": _user("q")},
        )
    assert _wait_cut_off(big, before) == before + 1
    deadline = time.monotonic() + 20
    while True:
        text = get(stack["url"] + "/metrics")[1]
        hung_up = metric(text, "tela_requests_total", model="big", status="499") - metric(
            metrics_before, "tela_requests_total", model="big", status="499"
        )
        if hung_up >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert hung_up == 2
    assert metric(text, "tela_upstream_errors_total", model="big") == metric(
        metrics_before, "tela_upstream_errors_total", model="big"
    )  # cancelled at the hang-up: no upstream timeout (nor other error) behind the cut-off


def test_decision_log(stack, client):
    log: Path = stack["log"]
    n0 = len(log.read_text().splitlines())
    prompt = _prompt(30)
    client.chat.completions.create(model="router-len", messages=_user(prompt))
    client.chat.completions.create(model="small", messages=_user(prompt))
    # no wait: a request's line is written before its answer is sent
    lines = [json.loads(x) for x in log.read_text().splitlines()[n0:]]
    assert len(lines) == 2
    routed, passed = lines
    assert routed["router"] == "len" and routed["w"] == pytest.approx(
        float(stack["router"].score([prompt])[0]), abs=1e-6
    )
    assert routed["threshold"] == pytest.approx(THRESHOLD) and routed["upstream"] == _expected(stack, prompt)
    assert routed["chosen"] in stack["router"].models and routed["status"] == 200
    assert routed["prompt_tokens"] == len(prompt.split()) and routed["completion_tokens"] == 3
    assert routed["upstream_ms"] > 0 and routed["routing_ms"] >= 0
    assert "prompt" not in routed  # only with --log-prompts
    assert passed["router"] is None and passed["w"] is None and passed["upstream"] == "small"


def test_upstream_stalling_mid_stream_ends_the_stream_with_an_error_event(stack, client):
    control(stack["big"], mode="stall-stream", stall_s=30)  # first chunk, then nothing past the 3 s timeout
    # tela's error event, not the client's own 20 s timeout (no clock: a loaded machine may be slow)
    with pytest.raises(openai.APIError, match="upstream failed mid-stream"):
        for _chunk in client.chat.completions.create(model="big", messages=_user("q"), stream=True):
            pass
    text = get(stack["url"] + "/metrics")[1]
    assert metric(text, "tela_upstream_errors_total", model="big", reason="timeout") >= 1
