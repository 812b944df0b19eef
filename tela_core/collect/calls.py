"""The paid-call engine: many chat calls to upstream models, within limits, budget and retries.

``tela collect`` (each model's answer to each prompt) and ``tela judge`` (a judge model's verdict
on them) run their calls through one :class:`Engine`:

- each upstream (:class:`Endpoint`) has its own :class:`~tela_core.collect.limits.Limits`
  (calls in flight, requests and tokens per minute, a pause after a 429);
- a failed call is retried by the :class:`~tela_core.collect.retry.RetryPolicy` (backoff with
  jitter, ``Retry-After`` honoured) and, after the last try, becomes an answer with an ``error``;
- a call that waits longer than ``timeout_s`` for its answer is abandoned and retried;
- an answer longer than ``max_answer_chars`` is not kept: the call becomes an error (its cost counts);
- an authentication failure (401/403) raises :class:`AuthFailed` at once, and :meth:`Engine.run`
  cancels every other call: nothing is retried a thousand times with a wrong key;
- every call reserves its estimated cost in the :class:`~tela_core.collect.budget.Budget` first:
  when the budget would be passed, no further work starts and the run ends with what finished.

Everything runs on one asyncio loop; the upstream clients are the ``upstream`` plugins
``tela serve`` uses (``tela plugins list --kind upstream``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tela_core.infra.errors import TelaError, UpstreamError
from tela_core.upstreams.usage import token_count

from .budget import Budget, Prices, estimate_prompt_tokens, estimate_tokens
from .limits import Limits, LimitSettings
from .retry import RetryPolicy, classify_status, retry_after_seconds

if TYPE_CHECKING:  # pragma: no cover
    from tela_core.components import Upstream

__all__ = ["Endpoint", "Call", "Reply", "Engine", "AuthFailed", "answer_text", "error_message"]

J = TypeVar("J")
R = TypeVar("R")


class AuthFailed(TelaError):
    """An upstream refused the key (401/403): every later call would fail alike, so all stop."""


@dataclass
class Endpoint:
    """One upstream model as the engine calls it: its client plugin, model id, prices and limits."""

    name: str
    model: str
    client: Upstream
    prices: Prices = field(default_factory=Prices)
    limit_settings: LimitSettings = field(default_factory=LimitSettings)
    where: str = ""
    """Where it was configured (a flag or the config file), for messages."""
    _limits: Limits | None = field(default=None, repr=False)

    @property
    def limits(self) -> Limits:
        """The limits, made in the running loop (an asyncio semaphore belongs to one loop)."""
        if self._limits is None:
            self._limits = Limits(self.limit_settings)
        return self._limits


@dataclass
class Call:
    """One chat request to one endpoint."""

    endpoint: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    """Other request fields (``temperature``, ...)."""
    expected_output_tokens: int = 256
    """The answer length assumed for estimates when ``max_tokens`` is not set."""

    @property
    def prompt_tokens_estimate(self) -> int:
        return estimate_prompt_tokens(self.messages)

    @property
    def output_allowance(self) -> int:
        """Output tokens reserved while the call is in flight: ``max_tokens`` when set."""
        return self.max_tokens if self.max_tokens is not None else self.expected_output_tokens

    def body(self, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": self.messages, **dict(self.params)}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body


@dataclass
class Reply:
    """What one call came to: the answer text or an error, with usage, latency, cost and tries."""

    text: str | None
    error: str | None
    usage: dict[str, int] | None = None
    usage_estimated: bool = False
    latency_s: float | None = None
    cost: float | None = None
    tries: int = 0
    status: int | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The answer object of the answers file (docs/index.md: the answers file)."""
        out: dict[str, Any] = {
            "text": self.text,
            "error": self.error,
            "usage": self.usage,
            "latency_s": None if self.latency_s is None else round(self.latency_s, 4),
            "cost": self.cost,
            "model": self.model,
            "tries": self.tries,
        }
        if self.usage_estimated:
            out["usage_estimated"] = True
        return out


def _one_line(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def error_message(body: Any) -> str:
    """The error message of an upstream's error body (OpenAI shape or not)."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping) and err.get("message"):
            return _one_line(err["message"])
        if isinstance(err, str):
            return _one_line(err)
        if body.get("message"):
            return _one_line(body["message"])
    return _one_line(body) if body not in (None, "") else "no message"


def answer_text(body: Any) -> str:
    """``choices[0].message.content`` of a chat completion; ValueError when it has none."""
    try:
        msg = body["choices"][0]["message"]
        content = msg.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("not a chat completion (no choices[0].message)") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    if not isinstance(content, str):
        reason = body["choices"][0].get("finish_reason") if isinstance(body["choices"][0], Mapping) else None
        raise ValueError(f"the answer has no text (finish_reason {reason!r})")
    return content


def _usage(body: Any) -> dict[str, int] | None:
    u = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(u, Mapping):
        return None

    pt, ct = token_count(u.get("prompt_tokens")), token_count(u.get("completion_tokens"))
    if pt is not None and ct is not None:  # a negative or absurd count would lift the budget, or overflow it
        return {"prompt_tokens": pt, "completion_tokens": ct}
    return None


class Engine:
    """Runs calls against endpoints with limits, retries, timeouts and a budget."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        retry: RetryPolicy | None = None,
        timeout_s: float = 120.0,
        budget: Budget | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_answer_chars: int | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        #: the longest answer kept (characters); a longer one becomes an error answer (None: no cap)
        self.max_answer_chars = max_answer_chars
        self.retry = retry or RetryPolicy()
        self.timeout_s = float(timeout_s)
        self.budget = budget or Budget()
        self.clock = clock
        #: calls sent (every try), and tries that failed and were retried, by endpoint
        self.sent: dict[str, int] = {n: 0 for n in self.endpoints}
        self.retried: dict[str, int] = {n: 0 for n in self.endpoints}
        #: set by the first authentication failure; every call after it raises it instead of sending
        self.halted: AuthFailed | None = None

    # -- cost -----------------------------------------------------------------------------------

    def reservation(self, call: Call) -> float:
        """The dollars ``call`` reserves while in flight (its estimate, output at its allowance)."""
        ep = self.endpoints[call.endpoint]
        return ep.prices.cost(call.prompt_tokens_estimate, call.output_allowance) if ep.prices.known else 0.0

    def estimate(self, call: Call) -> float:
        """The dollars ``call`` is expected to cost (output at the assumed length)."""
        ep = self.endpoints[call.endpoint]
        out = (
            min(call.expected_output_tokens, call.max_tokens)
            if call.max_tokens is not None
            else call.expected_output_tokens
        )
        return ep.prices.cost(call.prompt_tokens_estimate, out) if ep.prices.known else 0.0

    # -- one call -------------------------------------------------------------------------------

    async def ask(self, call: Call) -> Reply:
        """Send ``call`` (retrying as the policy says) and return its :class:`Reply`. Raises
        :class:`AuthFailed` on a 401/403. Does not touch the budget (see :meth:`ask_all`)."""
        ep = self.endpoints[call.endpoint]
        body = call.body(ep.model)
        tokens = call.prompt_tokens_estimate + call.output_allowance
        tries = 0
        while True:
            tries += 1
            retry_after: float | None = None
            status: int | None = None
            async with ep.limits.slot(tokens) as settle:
                if self.halted is not None:  # another call's 401/403 stopped the run: send nothing more
                    raise self.halted
                started = self.clock()
                self.sent[ep.name] = self.sent.get(ep.name, 0) + 1
                try:
                    reply = await asyncio.wait_for(ep.client.chat(body, stream=False), self.timeout_s)
                except asyncio.TimeoutError:
                    kind, problem = "retry", f"no answer within {self.timeout_s:g} s"
                except UpstreamError as e:
                    kind, problem, status = "retry", _one_line(e), e.status
                else:
                    latency = self.clock() - started
                    status = reply.status
                    kind = classify_status(status)
                    if kind == "ok":
                        try:
                            text = answer_text(reply.body)
                        except ValueError as e:
                            kind, problem = "retry", f"unusable answer: {e}"
                        else:
                            return self._answered(ep, call, text, reply.body, latency, tries, status, settle)
                    else:
                        problem = f"HTTP {status}: {error_message(reply.body)}"
                        retry_after = retry_after_seconds((reply.headers or {}).get("retry-after"))
                    if kind == "auth":
                        self.halted = AuthFailed(
                            f"model {ep.name}: the upstream refused the key (HTTP {status}"
                            f"{', ' + ep.where if ep.where else ''}): {error_message(reply.body)}"
                        )
                        raise self.halted
            if kind == "fail" or tries >= self.retry.tries:
                after = f" after {tries} tries" if tries > 1 else ""
                return Reply(text=None, error=f"{problem}{after}", tries=tries, status=status, model=ep.model)
            wait = self.retry.wait(tries, retry_after)
            if wait is None:
                return Reply(
                    text=None,
                    error=f"{problem}; the upstream asked to wait {retry_after:g} s, longer than "
                    f"{self.retry.max_retry_after_s:g} s",
                    tries=tries,
                    status=status,
                    model=ep.model,
                )
            if status == 429 and retry_after is not None:
                ep.limits.pause(retry_after)
            self.retried[ep.name] = self.retried.get(ep.name, 0) + 1
            await asyncio.sleep(wait)

    def _answered(
        self,
        ep: Endpoint,
        call: Call,
        text: str,
        body: Any,
        latency: float,
        tries: int,
        status: int,
        settle: Callable[[float], None],
    ) -> Reply:
        usage = _usage(body)
        estimated = usage is None
        if usage is None:
            usage = {"prompt_tokens": call.prompt_tokens_estimate, "completion_tokens": estimate_tokens(text)}
        settle(usage["prompt_tokens"] + usage["completion_tokens"])
        cost = ep.prices.cost(usage["prompt_tokens"], usage["completion_tokens"]) if ep.prices.known else None
        cap = self.max_answer_chars
        if cap is not None and len(text) > cap:  # paid for (its cost counts), not stored, not asked again in this run
            return Reply(
                text=None,
                error=f"an answer of {len(text):,} characters, over the cap of {cap:,} (--max-answer-chars): "
                f"not stored",
                usage=usage,
                usage_estimated=estimated,
                latency_s=latency,
                cost=cost,
                tries=tries,
                status=status,
                model=ep.model,
            )
        return Reply(
            text=text,
            error=None,
            usage=usage,
            usage_estimated=estimated,
            latency_s=latency,
            cost=cost,
            tries=tries,
            status=status,
            model=ep.model,
        )

    async def ask_all(self, calls: Sequence[Call]) -> list[Reply] | None:
        """Reserve the budget for ``calls`` together, then send them concurrently. None (nothing
        sent) when the budget cannot cover them."""
        amount = sum(self.reservation(c) for c in calls)
        if not self.budget.reserve(amount):
            return None
        replies: list[Reply] = []
        try:
            replies = list(await asyncio.gather(*(self.ask(c) for c in calls)))
        finally:
            self.budget.settle(amount, sum(r.cost or 0.0 for r in replies))
        return replies

    # -- many -----------------------------------------------------------------------------------

    async def run(
        self,
        jobs: Iterable[J],
        work: Callable[[J], Awaitable[R | None]],
        done: Callable[[J, R], None],
        window: int = 16,
    ) -> str:
        """``work(job)`` for every job, at most ``window`` at a time, in order; ``done(job, result)``
        as each finishes. ``work`` returns None when the budget refused it: then no further job
        starts, the running ones finish, and the result is ``"budget"`` (else ``"done"``). An
        :class:`AuthFailed` (or any other exception) cancels every running job and propagates."""
        pending: set[asyncio.Future[tuple[J, R | None]]] = set()
        source = iter(jobs)
        stopped: str | None = None

        async def one(job: J) -> tuple[J, R | None]:
            return job, await work(job)

        try:
            while True:
                while stopped is None and len(pending) < window:
                    try:
                        job = next(source)
                    except StopIteration:
                        break
                    pending.add(asyncio.ensure_future(one(job)))
                if not pending:
                    break
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failure: BaseException | None = None
                for task in finished:  # keep every finished job's result before raising a failure
                    if task.exception() is not None:
                        failure = failure or task.exception()
                        continue
                    job, result = task.result()
                    if result is None:
                        stopped = "budget"
                    else:
                        done(job, result)
                if failure is not None:
                    raise failure
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return stopped or "done"
