"""Play the users of a rehearsal: send prompts to ``tela serve`` as clients would, and count where
the router sent them (the ``x-tela-model`` header of each answer).

    python examples/rehearsal/traffic.py --port 8000 --model router-mine examples/rehearsal/traffic.jsonl

Reads a prompt file (JSONL with a ``prompt`` per line, or one prompt per line), sends each prompt
once as a chat-completions request, 8 at a time, and prints one line: how many requests each
upstream answered, and its share (``300 requests to router-mine: flash 207 (69%), haiku 93 (31%)``).
Exits 1 when a request fails.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def read_prompts(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            out.append(str(json.loads(line)["prompt"]))
        else:
            out.append(line)
    return out


def ask(url: str, model: str, prompt: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    for attempt in range(2):  # a closed keep-alive connection is retried once, as the openai client does
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                r.read()
                return r.headers.get("x-tela-model") or "?"
        except urllib.error.HTTPError as e:
            raise SystemExit(f"traffic: HTTP {e.code} from {url}: {e.read()[:300]!r}") from None
        except (ConnectionError, urllib.error.URLError):
            if attempt:
                raise
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Send prompts to tela serve as users would; count where they went.")
    ap.add_argument("prompts", type=Path, help="a prompt file (JSONL with prompt, or one prompt a line)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", default="router-mine", help="the router to ask for (router-NAME)")
    ap.add_argument("--clients", type=int, default=8, help="requests in flight at once")
    args = ap.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    prompts = read_prompts(args.prompts)
    try:
        with ThreadPoolExecutor(args.clients) as pool:
            went = Counter(pool.map(lambda p: ask(url, args.model, p), prompts))
    except (ConnectionError, urllib.error.URLError) as e:
        sys.exit(f"traffic: cannot reach {url}: {getattr(e, 'reason', e)}")
    parts = ", ".join(f"{n} {k} ({k / len(prompts):.0%})" for n, k in sorted(went.items()))
    print(f"{len(prompts)} requests to {args.model}: {parts}")


if __name__ == "__main__":
    main()
