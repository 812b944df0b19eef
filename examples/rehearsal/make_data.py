"""Rebuild this folder's data from RouterArena's cached results (deterministic).

    python examples/rehearsal/make_data.py /path/to/RouterArena/cached_results

Reads ``gemini-2.0-flash-001.jsonl`` and ``claude-3-haiku-20240307.jsonl`` (RouterArena at commit
``4714a9ad73e8``), keeps the first 450 questions, in the flash file's order, that both models
answered, and writes:

- ``recorded/<model>.jsonl.gz``: each model's recorded answer to those questions, in RouterArena's
  format, cut to the fields the replay stand-in reads (``global_index``, ``question``,
  ``generated_answer``, ``token_usage``, ``evaluation_result.score``);
- ``prompts.jsonl``: the first 150 questions, for ``tela collect --prompts`` (``id``, ``prompt``);
- ``traffic.jsonl``: the other 300, the "users" ``traffic.py`` sends to ``tela serve``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("gemini-2.0-flash-001", "claude-3-haiku-20240307")
N_PROMPTS, N_TRAFFIC = 150, 300


def main(src: str) -> None:
    rows = {
        m: [json.loads(line) for line in open(Path(src) / f"{m}.jsonl", encoding="utf-8") if line.strip()]
        for m in MODELS
    }
    answered = {
        m: {
            r["question"]: r
            for r in rs
            if isinstance(r.get("question"), str) and isinstance(r.get("generated_answer"), str)
        }
        for m, rs in rows.items()
    }
    first, other = MODELS
    questions = [q for q in answered[first] if q in answered[other]][: N_PROMPTS + N_TRAFFIC]
    (HERE / "recorded").mkdir(exist_ok=True)
    for m in MODELS:
        lines = []
        for q in questions:
            r = answered[m][q]
            usage = r.get("token_usage") or {}
            lines.append(
                json.dumps(
                    {
                        "global_index": r.get("global_index"),
                        "question": q,
                        "generated_answer": r["generated_answer"],
                        "token_usage": {
                            "input_tokens": usage.get("input_tokens"),
                            "output_tokens": usage.get("output_tokens"),
                        },
                        "evaluation_result": {"score": (r.get("evaluation_result") or {}).get("score")},
                    },
                    ensure_ascii=True,
                )
                + "\n"
            )
        with open(HERE / "recorded" / f"{m}.jsonl.gz", "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:  # byte-identical reruns
                fh.write("".join(lines).encode("utf-8"))
    ids = [answered[first][q].get("global_index") for q in questions]
    for name, part in (("prompts.jsonl", slice(0, N_PROMPTS)), ("traffic.jsonl", slice(N_PROMPTS, None))):
        with open(HERE / name, "w", encoding="utf-8") as fh:
            for i, q in zip(ids[part], questions[part]):
                fh.write(json.dumps({"id": i, "prompt": q}, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
