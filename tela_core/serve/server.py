"""What one ``tela serve`` process holds (:class:`Server`) and the checks every endpoint shares.

The app (:mod:`.app`), the chat endpoint (:mod:`.proxy`), shadow mode (:mod:`.shadow`) and hot
reload (:mod:`.reload`) all read this one object; it lives here so that none of them imports
another to reach it (``app`` and ``proxy`` once imported each other).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .chat import RequestError
from .config import ServeConfig
from .responses import RawResponse, error_response

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Upstream

    from .config import UpstreamConfig
    from .decisions import DecisionLog
    from .feedback import Feedback
    from .guard import Guard
    from .metrics import ServeMetrics
    from .served_routers import ServedRouter
    from .shadow import Shadow

__all__ = ["Server", "make_upstreams", "check_auth", "check_admin"]


@dataclass
class Server:
    """The routers, upstream clients, metrics and logs of one server process.

    ``routers`` is replaced router by router on a hot reload (:mod:`.reload`): a request looks its
    router up once, so one in flight finishes on the router it started with.
    """

    config: ServeConfig
    upstreams: dict[str, tuple[UpstreamConfig, Upstream]]
    metrics: ServeMetrics
    decision_log: DecisionLog | None
    keys: list[bytes]
    routers: dict[str, ServedRouter] = field(default_factory=dict)
    ready: bool = False
    shadow: Shadow | None = None
    admin_token: bytes | None = None
    feedback: Feedback | None = None
    guard: Guard | None = None

    @property
    def router_names(self) -> list[str]:
        return list(self.config.routers)


def make_upstreams(config: ServeConfig) -> dict[str, tuple[UpstreamConfig, Upstream]]:
    """One client per configured upstream (the ``upstream`` plugin its ``type`` names)."""
    from tela_core.plugins.discovery import get_registry

    reg = get_registry()
    return {name: (uc, reg.create("upstream", uc.type, uc.client_options())) for name, uc in config.upstreams.items()}


def _bearer(request: Any) -> bytes | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" and token.strip() else None


def check_auth(server: Server, request: Any) -> RawResponse | None:
    """None when the request may proceed (no client keys configured, or it carries one), else the
    401 to answer with."""
    if not server.keys:
        return None
    given = _bearer(request)
    if given is not None and any(hmac.compare_digest(given, k) for k in server.keys):
        return None
    return error_response(
        RequestError(
            401,
            "missing or invalid API key: send 'Authorization: Bearer KEY'",
            type="invalid_request_error",
            code="invalid_api_key",
        )
    )


def check_admin(server: Server, request: Any) -> RawResponse | None:
    """None when the request carries the admin token; 403 when no admin token is configured (the
    admin endpoints are off), 401 when the token is missing or wrong. Client keys never qualify."""
    if server.admin_token is None:
        return error_response(
            RequestError(
                403,
                "the admin endpoints are off: set admin_token_env in the serve config",
                type="invalid_request_error",
                code="admin_disabled",
            )
        )
    given = _bearer(request)
    if given is not None and hmac.compare_digest(given, server.admin_token):
        return None
    return error_response(
        RequestError(
            401,
            "missing or invalid admin token: send 'Authorization: Bearer TOKEN'",
            type="invalid_request_error",
            code="invalid_admin_token",
        )
    )
