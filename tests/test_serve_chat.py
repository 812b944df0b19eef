"""What `tela serve` reads from a chat request: the model name and the text to route on."""

from __future__ import annotations

import pytest

from tela_core.serve.chat import RequestError, Target, message_text, parse_model, routing_text

ROUTERS = {"mf", "knn-v2"}
UPSTREAMS = {"gpt-4o", "router-like-name"}


@pytest.mark.parametrize(
    "model, target",
    [
        ("router-mf", Target("mf")),
        ("router-mf-0.11593", Target("mf", 0.11593)),
        ("router-knn-v2", Target("knn-v2")),
        ("router-knn-v2-1", Target("knn-v2", 1.0)),
        ("router-knn-v2-0", Target("knn-v2", 0.0)),
        ("gpt-4o", Target(None, upstream="gpt-4o")),
        ("router-like-name", Target(None, upstream="router-like-name")),
    ],
)
def test_model_names(model, target):
    assert parse_model(model, ROUTERS, UPSTREAMS) == target


@pytest.mark.parametrize(
    "model, code",
    [
        ("router-mf-1.5", "invalid_threshold"),
        ("router-mf--0.1", "invalid_threshold"),
        ("router-mf-nan", "invalid_threshold"),
        ("router-mf-abc", "invalid_threshold"),
        ("router-nope", "model_not_found"),
        ("router-nope-0.5", "model_not_found"),
        ("gpt-5", "model_not_found"),
        (None, "invalid_model"),
        ("", "invalid_model"),
    ],
)
def test_bad_model_names_are_400(model, code):
    with pytest.raises(RequestError) as ei:
        parse_model(model, ROUTERS, UPSTREAMS)
    e = ei.value
    assert e.status == 400 and e.code == code and e.param == "model"
    assert set(e.envelope()["error"]) == {"message", "type", "param", "code"}
    if code == "model_not_found":
        assert "router-mf" in e.message and "gpt-4o" in e.message


def test_routing_text_is_the_last_user_turn_with_content_parts():
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "this"},
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "tool output"},
    ]
    assert routing_text(msgs) == "look at\nthis"
    assert routing_text(msgs, sticky=True) == "first"
    assert routing_text(msgs, "conversation") == "be brief\n\nfirst\n\nok\n\nlook at\nthis\n\ntool output"
    assert message_text(None) == "" and message_text("plain") == "plain"


@pytest.mark.parametrize(
    "messages, code",
    [
        (None, "invalid_messages"),
        ([], "invalid_messages"),
        (["hi"], "invalid_messages"),
        ([{"content": "no role"}], "invalid_messages"),
        ([{"role": "system", "content": "x"}], "no_user_turn"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "no_user_text"),
        ([{"role": "user", "content": "   "}], "no_user_text"),
    ],
)
def test_no_user_text_is_400(messages, code):
    with pytest.raises(RequestError) as ei:
        routing_text(messages)
    assert ei.value.status == 400 and ei.value.code == code
