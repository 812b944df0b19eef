"""Rebuild this folder's data from LLMRouter's nim9 data (deterministic).

    python examples/many-models/make_data.py /path/to/llmrouter-nim9

Reads ``dcrouter_preprocessed_train.json`` (LLMRouter at commit ``4e7a796942ce``: per question, 0/1
scores of 9 hosted models), keeps 300 of its questions under 1,200 characters
(a seeded sample, in file order), and writes, for
the four models the guide uses, ``recorded/<model>.jsonl.gz`` in the format the replay stand-in
reads (RouterArena's): ``global_index``, ``question``, ``generated_answer``, ``token_usage``,
``evaluation_result.score``. LLMRouter publishes scores, not the answers' text: each
``generated_answer`` is a placeholder naming the model, the question and its recorded score, so the
stand-in's judges rate it from that score. Token usage is the llmrouter-json source's estimate
(characters / 4 in, 256 out). Also ``prompts.jsonl`` (the first 200: collected, judged, trained on)
and ``traffic.jsonl`` (the other 100: the users ``traffic.py`` plays).
"""

from __future__ import annotations

import gzip
import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("gemma-2-9b-it", "qwen2.5-7b-instruct", "llama-3.1-nemotron-51b-instruct", "llama-3.1-8b-instruct")
N_PROMPTS, N_TRAFFIC, MAX_CHARS = 200, 100, 1200


def main(src: str) -> None:
    rows = json.loads((Path(src) / "dcrouter_preprocessed_train.json").read_text(encoding="utf-8"))
    short = [r for r in rows if len(r["question"]) <= MAX_CHARS]
    keep = [short[i] for i in sorted(random.Random(0).sample(range(len(short)), N_PROMPTS + N_TRAFFIC))]
    (HERE / "recorded").mkdir(exist_ok=True)
    for m in MODELS:
        lines = []
        for i, r in enumerate(keep):
            score = float(r["scores"][m])
            lines.append(
                json.dumps(
                    {
                        "global_index": f"nim9-{i:04d}",
                        "question": r["question"],
                        "generated_answer": f"(stand-in answer of {m} to question nim9-{i:04d}: "
                        f"LLMRouter recorded it {'right' if score >= 0.5 else 'wrong'})",
                        "token_usage": {"input_tokens": math.ceil(len(r["question"]) / 4), "output_tokens": 256},
                        "evaluation_result": {"score": score},
                    }
                )
            )
        with gzip.GzipFile(HERE / "recorded" / f"{m}.jsonl.gz", "wb", mtime=0) as fh:
            fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    for name, part, start in (("prompts.jsonl", keep[:N_PROMPTS], 0), ("traffic.jsonl", keep[N_PROMPTS:], N_PROMPTS)):
        with open(HERE / name, "w", encoding="utf-8") as fh:
            for i, r in enumerate(part, start=start):
                fh.write(json.dumps({"id": f"nim9-{i:04d}", "prompt": r["question"]}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
