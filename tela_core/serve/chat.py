"""What ``tela serve`` reads from a chat-completions request: the model asked for, and the text
to route on. Everything else in the request passes through to the upstream untouched.

Model names a client may send:

- ``router-NAME``: route with router NAME's saved policy (e.g. its calibrated threshold);
- ``router-NAME-THRESHOLD``: route with that threshold on w (RouteLLM's form,
  ``router-mf-0.11593``), in [0, 1];
- an upstream's name: no routing, the request goes to that upstream as is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestError", "Target", "parse_model", "routing_text", "message_text"]

ROUTER_PREFIX = "router-"

#: the VALUE of ``router-NAME-VALUE``: a plain decimal number (no nan, inf, hex or '_')
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class RequestError(Exception):
    """A request tela refuses, with the HTTP status and OpenAI error fields to answer with."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type

    def envelope(self) -> dict[str, Any]:
        """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Target:
    """Where a request goes: a router (with an optional threshold) or an upstream by name."""

    router: str | None
    threshold: float | None = None
    upstream: str | None = None


def parse_model(
    model: Any, routers: Collection[str], upstreams: Collection[str], knob_routers: Collection[str] = ()
) -> Target:
    """The :class:`Target` a ``model`` field names; :class:`RequestError` 400 if it names none. The
    value of ``router-NAME-VALUE`` is a threshold in [0, 1], or for the routers in ``knob_routers``
    (N-model policies; a mapping of them to their knob's name words the errors) their knob, any
    number >= 0 (the policy checks it further). VALUE is a plain decimal number, ``1e-05`` included."""
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' must be a non-empty string", param="model", code="invalid_model")
    if model in upstreams:
        return Target(router=None, upstream=model)
    if model.startswith(ROUTER_PREFIX):
        rest = model[len(ROUTER_PREFIX) :]
        if rest in routers:
            return Target(router=rest)
        # router-NAME-VALUE: the longest router name followed by '-' (a value may hold '-': 1e-05, -0.1)
        name = max((r for r in routers if rest.startswith(f"{r}-")), key=len, default=None)
        if name is not None:
            raw = rest[len(name) + 1 :]
            knob = knob_routers.get(name) if isinstance(knob_routers, Mapping) else None
            what = (
                f"router {name!r}'s {knob or 'policy knob'} (a number >= 0)"
                if name in knob_routers
                else "a threshold (a number in [0, 1])"
            )
            if not _NUMBER.fullmatch(raw):
                raise RequestError(
                    400, f"model {model!r}: {raw!r} is not {what}", param="model", code="invalid_threshold"
                )
            t = float(raw)
            if name in knob_routers and math.isfinite(t) and t >= 0.0:
                return Target(router=name, threshold=t)
            if name in knob_routers or not 0.0 <= t <= 1.0:
                raise RequestError(
                    400, f"model {model!r}: {raw} is not {what}", param="model", code="invalid_threshold"
                )
            return Target(router=name, threshold=t)
    known = (
        [f"router-{r}" for r in sorted(routers)]
        + [
            f"router-{r}-{str(knob_routers.get(r) or 'value').upper()}"
            if isinstance(knob_routers, Mapping) and r in knob_routers
            else f"router-{r}-THRESHOLD"
            for r in sorted(routers)
        ]
        + sorted(upstreams)
    )
    raise RequestError(
        400,
        f"unknown model {model!r}; this server serves: {', '.join(known) or '(nothing)'}",
        param="model",
        code="model_not_found",
    )


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the ``text`` of its content parts
    (images and other parts carry no text), joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                isinstance(part, Mapping)
                and part.get("type") in ("text", "input_text")
                and isinstance(part.get("text"), str)
            ):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def _check_messages(messages: Any) -> Sequence[Mapping[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            400, "'messages' must be a non-empty list of messages", param="messages", code="invalid_messages"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise RequestError(
                400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]", code="invalid_messages"
            )
    return messages


def routing_text(messages: Any, mode: str = "last-user", sticky: bool = False) -> str:
    """The text a router scores for this conversation.

    ``last-user``: the last *user* turn (not a trailing tool or assistant message), content
    parts included. ``conversation``: every turn's text, in order. ``sticky``: the *first* user
    turn, so that each turn of one conversation is routed alike.
    """
    msgs = _check_messages(messages)
    users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
    if not users:
        raise RequestError(
            400,
            "no user message to route on: 'messages' has no turn with role 'user'",
            param="messages",
            code="no_user_turn",
        )
    if sticky:
        text = message_text(msgs[users[0]].get("content"))
    elif mode == "conversation":
        text = "\n\n".join(t for t in (message_text(m.get("content")) for m in msgs) if t)
    else:
        text = message_text(msgs[users[-1]].get("content"))
    if not text.strip():
        raise RequestError(400, "the user turn to route on has no text", param="messages", code="no_user_text")
    return text
