"""A STAND-IN for remote model APIs: an OpenAI-compatible server on loopback that replays the
recorded answers of real models, for tests and benchmarks of ``tela collect`` and ``tela judge``.

It is not a model. Asked for model M with a prompt P (the last user turn), it answers with what M
really answered to P when the answers were recorded (e.g. RouterArena's cached results of
``claude-3-haiku-20240307`` and ``gemini-2.0-flash-001``: :meth:`ReplayUpstream.from_routerarena`),
with the recorded token usage. Models named as *judges* play a judge model: they read the answer
between MT-Bench's ``[The Start of Assistant's Answer]`` markers (``llm-judge``) or assistant A's and
B's answers (``pairwise``) and reply with a rating ``[[k]]`` (k = 1 + 4 x the answer's recorded
score, rounded) or ``[[A]]``/``[[B]]``/``[[C]]`` from the two recorded scores.

It counts every request per (model, prompt), so a test can prove that nothing was asked twice,
and it can be told to misbehave like a real API (:meth:`ReplayUpstream.inject`): 429 with
``Retry-After``, 401, 5xx, hang without answering, a body that is not JSON (``garbage``) or a
judge reply without a verdict (``nonsense``).

In process (tests)::

    with ReplayUpstream.from_routerarena(folder, judges=["judge"]) as up:   # a thread, port 0
        url = up.base_url                     # http://127.0.0.1:PORT/v1
        up.inject("429", times=1, retry_after="2")
        ...; up.requests_for("gemini-2.0-flash-001")  # Counter of prompts

As a process (``python -m tela_core.testkit.replay_upstream --routerarena DIR --port 8001``), with
``GET /stats`` and ``POST /control`` (``{"inject": "hang", "times": 3}``, ``{"reset": true}``).
Standard library only.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Recorded", "ReplayUpstream", "FAULTS", "main"]

#: what :meth:`ReplayUpstream.inject` can make the server do
FAULTS = ("429", "401", "403", "500", "502", "503", "hang", "garbage", "nonsense")

_SINGLE = re.compile(r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S)
_PAIR = re.compile(r"\[The Start of Assistant ([AB])'s Answer\]\n(.*?)\n\[The End of Assistant \1's Answer\]", re.S)


@dataclass(frozen=True)
class Recorded:
    """One recorded answer: its text, token usage and (when known) its score in [0, 1]."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    score: float | None = None


@dataclass
class _Fault:
    kind: str
    times: int | None
    after: int
    retry_after: str | None
    model: str | None
    hang_s: float


def _prompt_of(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c if isinstance(c, str) else ""
    return ""


class ReplayUpstream:
    """The stand-in server's state, request handling, and its thread (see the module doc)."""

    def __init__(
        self,
        recorded: Mapping[str, Mapping[str, Recorded]],
        judges: Iterable[str] = (),
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self.recorded = {m: dict(v) for m, v in recorded.items()}
        self.judges = list(judges)
        self.api_key = api_key
        self.port = port
        self._scores: dict[str, float] = {}
        for answers in self.recorded.values():
            for rec in answers.values():
                if rec.score is not None:
                    self._scores[rec.text.strip()] = rec.score
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.answered = 0
        self.events: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: OSError | None = None

    # -- recorded data --------------------------------------------------------------------------

    @classmethod
    def from_routerarena(cls, folder: str | Path, models: Iterable[str] | None = None, **kw: Any) -> ReplayUpstream:
        """The cached results of RouterArena (one ``<model>.jsonl`` or ``<model>.jsonl.gz`` per
        model: ``question``, ``generated_answer``, ``token_usage``, ``evaluation_result.score``)."""
        import gzip

        folder = Path(folder)
        files = {p.name[: -len(".jsonl.gz")]: p for p in folder.glob("*.jsonl.gz")}
        files.update({p.stem: p for p in folder.glob("*.jsonl")})
        names = list(models) if models is not None else sorted(files)
        recorded: dict[str, dict[str, Recorded]] = {}
        for name in names:
            answers: dict[str, Recorded] = {}
            path = files.get(name, folder / f"{name}.jsonl")
            with (
                gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")
            ) as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    q, a = row.get("question"), row.get("generated_answer")
                    if not isinstance(q, str) or not isinstance(a, str):
                        continue
                    usage = row.get("token_usage") or {}
                    score = (row.get("evaluation_result") or {}).get("score")
                    answers[q] = Recorded(
                        text=a,
                        prompt_tokens=int(usage.get("input_tokens") or math.ceil(len(q) / 4)),
                        completion_tokens=int(usage.get("output_tokens") or math.ceil(len(a) / 4)),
                        score=min(1.0, max(0.0, float(score))) if isinstance(score, (int, float)) else None,
                    )
            recorded[name] = answers
        return cls(recorded, **kw)

    def prompts(self, model: str) -> list[str]:
        """The prompts ``model`` has recorded answers to."""
        return list(self.recorded[model])

    # -- faults and counts ----------------------------------------------------------------------

    def inject(
        self,
        kind: str,
        times: int | None = 1,
        after: int = 0,
        retry_after: str | None = None,
        model: str | None = None,
        hang_s: float = 3600.0,
    ) -> None:
        """Misbehave for the next ``times`` requests (None: until :meth:`reset`), once ``after``
        requests have been answered; only for ``model`` when given. Faults queue in order."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, times, after, retry_after, model, hang_s))

    def reset(self, counts: bool = False) -> None:
        """Drop every queued fault (and, with ``counts``, the request counts)."""
        with self._lock:
            self._faults.clear()
            if counts:
                self.counts.clear()
                self.events.clear()
                self.answered = 0

    def requests_for(self, model: str) -> Counter[str]:
        """How many requests each prompt got from ``model``."""
        with self._lock:
            return Counter({p: n for (m, p), n in self.counts.items() if m == model})

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self.counts.values()),
                "answered": self.answered,
                "by_model": dict(Counter(m for (m, _p), n in self.counts.items() for _ in range(n))),
                "asked_twice": sum(1 for n in self.counts.values() if n > 1),
                "asked_twice_by_model": dict(Counter(m for (m, _p), n in self.counts.items() if n > 1)),
            }

    def _take_fault(self, model: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if (f.model is None or f.model == model) and self.answered >= f.after:
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self._faults.remove(f)
                    return f
        return None

    # -- answering ------------------------------------------------------------------------------

    def _judge_reply(self, text: str) -> str:
        pair = dict(_PAIR.findall(text))
        if "A" in pair and "B" in pair:
            a, b = self._scores.get(pair["A"].strip()), self._scores.get(pair["B"].strip())
            if a is None or b is None:
                return "I cannot tell these answers apart. [[C]]"
            return (
                "Assistant A is better. [[A]]" if a > b else "Assistant B is better. [[B]]" if b > a else "A tie. [[C]]"
            )
        single = _SINGLE.search(text)
        if single is not None:
            s = self._scores.get(single.group(1).strip())
            rating = 3 if s is None else 1 + int(round(4 * s))
            return f"The answer is {'right' if (s or 0) >= 0.5 else 'wrong'}. Rating: [[{rating}]]"
        return "There is no answer to rate here."

    def answer(self, body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str], float]:
        """(status, JSON body or raw bytes, extra headers, seconds to stall) for one chat request."""
        model = str(body.get("model") or "")
        messages = body.get("messages")
        prompt = _prompt_of(messages)
        with self._lock:
            self.counts[(model, prompt)] += 1
            self.events.append({"t": time.monotonic(), "model": model, "prompt": prompt})
        fault = self._take_fault(model)
        if fault is not None:
            if fault.kind == "hang":
                return 200, None, {}, fault.hang_s
            if fault.kind == "garbage":
                return 200, b"<html>upstream proxy error: this is not JSON {", {}, 0.0
            if fault.kind != "nonsense":
                status = int(fault.kind)
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                msg = {401: "Incorrect API key provided", 403: "not allowed", 429: "Rate limit reached"}.get(
                    status, "server error"
                )
                return (
                    status,
                    {"error": {"message": f"{msg} (replay stand-in)", "type": "error", "code": status}},
                    headers,
                    0.0,
                )
        if model in self.judges:
            text = "¯\\_(ツ)_/¯ no verdict from me" if fault is not None else self._judge_reply(prompt)
            pt, ct = (
                math.ceil(sum(len(str(m.get("content", ""))) for m in messages or [] if isinstance(m, dict)) / 4),
                20,
            )
        elif model in self.recorded:
            rec = self.recorded[model].get(prompt)
            if rec is None:
                return (
                    404,
                    {
                        "error": {
                            "message": f"no recorded answer of {model} to this prompt (replay stand-in)",
                            "type": "invalid_request_error",
                        }
                    },
                    {},
                    0.0,
                )
            text, pt, ct = rec.text, rec.prompt_tokens, rec.completion_tokens
            if fault is not None:  # nonsense from an answering model: an empty-ish reply
                text = "¯\\_(ツ)_/¯"
        else:
            return (
                404,
                {
                    "error": {
                        "message": f"the model {model!r} does not exist (replay stand-in)",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
                {},
                0.0,
            )
        reply = {
            "id": f"replay-{sum(self.counts.values())}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }
        return 200, reply, {}, 0.0

    # -- HTTP -----------------------------------------------------------------------------------

    @staticmethod
    def _write(
        writer: asyncio.StreamWriter, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"HTTP/1.1 {status} Status\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n{extra}\r\n".encode()
            + data
        )

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        return self.api_key is None or headers.get("authorization", "") == f"Bearer {self.api_key}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = (lines[0].split(" ") + ["", ""])[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(n) if n else b""
                path = path.split("?")[0]
                await self._route(method, path, raw, headers, writer)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _route(
        self, method: str, path: str, raw: bytes, headers: Mapping[str, str], writer: asyncio.StreamWriter
    ) -> None:
        if path in ("/v1/chat/completions", "/chat/completions") and method == "POST":
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._write(writer, 400, {"error": {"message": "body is not JSON"}})
                return
            if not self._authorised(headers):
                self._write(writer, 401, {"error": {"message": "Incorrect API key provided (replay stand-in)"}})
                return
            status, payload, extra, stall = self.answer(body if isinstance(body, dict) else {})
            if stall:
                await asyncio.sleep(stall)
            if payload is None:
                return
            self._write(writer, status, payload, extra)
            if status == 200:
                with self._lock:
                    self.answered += 1
        elif path in ("/v1/models", "/models") and method == "GET":
            if not self._authorised(headers):
                self._write(writer, 401, {"error": {"message": "Incorrect API key provided (replay stand-in)"}})
                return
            ids = [*self.recorded, *self.judges]
            self._write(
                writer,
                200,
                {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "replay"} for m in ids]},
            )
        elif path == "/stats":
            self._write(writer, 200, self.stats())
        elif path == "/control" and method == "POST":
            cmd = json.loads(raw or b"{}")
            if cmd.get("reset"):
                self.reset(counts=bool(cmd.get("counts")))
            if cmd.get("inject"):
                self.inject(
                    str(cmd["inject"]),
                    times=cmd.get("times", 1),
                    after=int(cmd.get("after", 0)),
                    retry_after=cmd.get("retry_after"),
                    model=cmd.get("model"),
                    hang_s=float(cmd.get("hang_s", 3600)),
                )
            self._write(writer, 200, {"ok": True})
        else:
            self._write(writer, 404, {"error": {"message": f"no route {method} {path}"}})

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def start(self) -> ReplayUpstream:
        """Serve on a daemon thread; returns when the port is bound (:attr:`base_url`)."""

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except OSError as e:  # the port is taken: start() raises it
                self._start_error = e
                self._ready.set()
                loop.close()
                return
            self._ready.set()
            loop.run_forever()
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="replay-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the replay upstream did not start")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = self._loop = None
            raise self._start_error
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        def halt() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(halt)
        self._thread.join(30)
        self._thread = None

    def __enter__(self) -> ReplayUpstream:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m tela_core.testkit.replay_upstream --routerarena DIR [--judge NAME] [--port N]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="A stand-in for remote model APIs that replays recorded answers.")
    ap.add_argument(
        "--routerarena",
        required=True,
        help="a RouterArena cached_results folder (<model>.jsonl or <model>.jsonl.gz per model)",
    )
    ap.add_argument("--judge", action="append", default=[], help="a model name that plays a judge (repeatable)")
    ap.add_argument("--api-key", default=None, help="require this bearer key")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    up = ReplayUpstream.from_routerarena(args.routerarena, judges=args.judge, api_key=args.api_key, port=args.port)
    try:
        up.start()
    except OSError as e:  # a busy port: one line, not a traceback
        print(f"Error: replay upstream: cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}", file=sys.stderr)
        raise SystemExit(2) from None
    acts = "acts as a judge" if len(up.judges) == 1 else "act as judges"
    judges = f"; {', '.join(up.judges)} {acts} (rating each answer from its recorded score)" if up.judges else ""
    print(
        f"replay stand-in (not a model) on {up.base_url}: recorded answers of {', '.join(up.recorded)}{judges}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
