"""Routing latency: tela's score-token scorer against a bare forward pass and the seed's generate.

Three ways to get a routing decision from the same score-token router (SmolLM2-135M-Instruct with
``[[1]]``..``[[5]]`` added, the model ``tela run`` fine-tunes by default), same prompts, same
process, same machine:

- **scorer**: ``ScoreTokenScorer.score`` end to end: format each question with the seed's system
  prompt and template (role-prefix), tokenize, one forward pass (last position only), softmax over
  the five score-token logits, w = 1 − P4 − P5.
- **bare forward**: ``model(input_ids, attention_mask)`` on the already-tokenized prompts (full
  logits, no formatting, no tokenizing, no softmax): the floor a one-pass router can reach.
- **scorer, no prefix cache**: the same scorer with ``prefix_cache=False``, running the template's
  shared ~200-token prefix (system prompt, question header) again for every prompt; the scorer's
  default reuses that prefix's key/value cache.
- **scorer, one at a time**: the batched call made with the family's default batch size on this
  device (1 on a CPU, 16 on a GPU) instead of ``--batch`` prompts per forward pass.
- **seed generate**: the seed's inference (tela-wizard-guide.md): ``model.generate`` with
  ``max_new_tokens=1024, do_sample=True, temperature=0.1, top_p=0.9`` on the seed's prompt, then
  parse ``[[k]]`` from the text. Its cost depends on when the model stops: an untrained score head
  (as here) or a drifting model runs to the token limit. Slow on CPU, so fewer queries
  (``--generate-queries``; 0 skips it).

Timings interleave the arms prompt by prompt and report medians (the machine may be shared).
Batch 1 uses ``--queries`` prompts; batch ``--batch`` uses that many prompts in one call.

    .venv/bin/python bench/route_latency.py                         # SmolLM2-135M, 16 queries, batch 32
    .venv/bin/python bench/route_latency.py --queries 8 --generate-queries 1 --generate-batch 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tela_core import get_registry
from tela_core.data import sample_path
from tela_core.data.prompts import SYSTEM_PROMPT, user_content
from tela_core.data.records import iter_jsonl
from tela_core.models.resolve import cache_root, resolve_model
from tela_core.routing.artifact import write_manifest, write_policy
from tela_core.train.tokens import add_score_tokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCORE = re.compile(r"\[\[([1-5])\]\]")


def router_dir(model: str) -> Path:
    """A score-token router artifact around ``model`` (score tokens added, weights otherwise as
    released), built once in ``$TELA_CACHE/bench``."""
    resolved = resolve_model(model)
    out = cache_root() / "bench" / f"route-latency-{resolved.path.name}"
    if (out / "tela.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(resolved.path))
    m = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=torch.float32)
    add_score_tokens(m, tok)
    m.config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(out.name + ".tmp")
    m.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    write_manifest(
        tmp, scorer="score-token", formatter="role-prefix", base_model={"name": model, "path": str(resolved.path)}
    )
    write_policy(tmp, "threshold", {"threshold": 0.5})
    tmp.rename(out)
    return out


def questions(n: int) -> list[str]:
    """``n`` real MMLU questions from the bundled sample (varied lengths)."""
    out = []
    for _, obj in iter_jsonl(sample_path()):
        out.append(obj["prompt"])
        if len(out) == n:
            break
    return out


def seed_prompt(question: str) -> str:
    """The seed's inference prompt, byte for byte (no ``ASSISTANT:`` line: the seed's own skew)."""
    return f"SYSTEM:\n{SYSTEM_PROMPT}\n\nUSER:\n{user_content(question)}\n\n"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="base model: alias, HF dir or .gguf (default smollm2-135m)")
    ap.add_argument("--queries", type=int, default=16, help="batch-1 prompts timed per arm")
    ap.add_argument("--batch", type=int, default=32, help="prompts per call in the batched measurement")
    ap.add_argument("--batch-repeats", type=int, default=3, help="batched calls timed per arm")
    ap.add_argument("--generate-queries", type=int, default=2, help="batch-1 prompts for the seed's generate (0: skip)")
    ap.add_argument("--generate-batch", type=int, default=1, help="batched seed-generate calls (0: skip)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rdir = router_dir(args.model)
    scorer = get_registry().create(
        "family",
        "score-token",
        {"batch_size": args.batch, "device": "cpu" if not torch.cuda.is_available() else "auto"},
    )
    scorer.load(rdir)
    no_prefix = get_registry().create(
        "family", "score-token", {"batch_size": args.batch, "prefix_cache": False, "device": str(scorer.device)}
    )
    no_prefix.load(rdir)
    default = get_registry().create("family", "score-token", {"device": str(scorer.device)})
    default.load(rdir)
    model, tok = scorer.model, scorer.tokenizer
    dev = scorer.device
    qs = questions(max(args.queries, args.batch, args.generate_queries))

    def bare(texts: list[str]) -> Callable[[], Any]:
        enc = tok(texts, return_tensors="pt", padding=True).to(dev)  # tokenized outside the timing

        def run() -> Any:
            with torch.inference_mode():
                out = model(**enc).logits
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    def score(texts: list[str], by: Any = None) -> Callable[[], Any]:
        def run() -> Any:
            out = (by or scorer).score(texts)
            return out

        return run

    gen_cfg = dict(
        max_new_tokens=1024,
        do_sample=True,
        temperature=0.1,
        top_p=0.9,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )

    def generate(texts: list[str]) -> Callable[[], Any]:
        enc = tok([seed_prompt(q) for q in texts], return_tensors="pt", padding=True).to(dev)

        def run() -> Any:
            with torch.inference_mode():
                out = model.generate(**enc, **gen_cfg)
            new = out[:, enc["input_ids"].shape[1] :]
            texts_out = tok.batch_decode(new, skip_special_tokens=False)
            parsed = [int(m.group(1)) if (m := SCORE.search(t)) else None for t in texts_out]
            return parsed, int((new != tok.pad_token_id).sum(dim=1).max())

        return run

    # warm-up (allocator, kernels, first-call overheads)
    score(qs[:2])()
    score(qs[:2], no_prefix)()
    score(qs[:2], default)()
    bare([scorer.render(q) for q in qs[:2]])()

    prompt_tokens = [len(scorer.encode(q)) for q in qs[: args.queries]]
    t_score, t_bare, t_noprefix = [], [], []
    for q in qs[: args.queries]:
        b = bare([scorer.render(q)])
        _, ts = timed(score([q]))
        _, tn = timed(score([q], no_prefix))
        _, tb = timed(b)
        t_score.append(ts)
        t_noprefix.append(tn)
        t_bare.append(tb)
    res: dict[str, Any] = {
        "model": args.model,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "queries": args.queries,
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "batch1": {
            "scorer_ms": 1e3 * statistics.median(t_score),
            "bare_forward_ms": 1e3 * statistics.median(t_bare),
            "no_prefix_cache_ms": 1e3 * statistics.median(t_noprefix),
        },
    }
    res["batch1"]["scorer_vs_bare"] = res["batch1"]["scorer_ms"] / res["batch1"]["bare_forward_ms"]
    res["batch1"]["no_prefix_vs_scorer"] = res["batch1"]["no_prefix_cache_ms"] / res["batch1"]["scorer_ms"]

    batch = qs[: args.batch]
    tb_score, tb_bare, tb_noprefix, tb_default = [], [], [], []
    b = bare([scorer.render(q) for q in batch])
    for _ in range(args.batch_repeats):
        _, ts = timed(score(batch))
        _, tn = timed(score(batch, no_prefix))
        _, td = timed(score(batch, default))
        _, tbare = timed(b)
        tb_score.append(ts)
        tb_noprefix.append(tn)
        tb_default.append(td)
        tb_bare.append(tbare)
    res[f"batch{args.batch}"] = {
        "scorer_ms": 1e3 * statistics.median(tb_score),
        "bare_forward_ms": 1e3 * statistics.median(tb_bare),
        "no_prefix_cache_ms": 1e3 * statistics.median(tb_noprefix),
        "default_batching_ms": 1e3 * statistics.median(tb_default),
    }
    bk = res[f"batch{args.batch}"]
    bk["scorer_vs_bare"] = bk["scorer_ms"] / bk["bare_forward_ms"]
    bk["no_prefix_vs_scorer"] = bk["no_prefix_cache_ms"] / bk["scorer_ms"]
    bk["default_vs_scorer"] = bk["default_batching_ms"] / bk["scorer_ms"]

    if args.generate_queries > 0:
        torch.manual_seed(0)
        t_gen, tokens, parsed = [], [], []
        for q in qs[: args.generate_queries]:
            (p, ntok), tg = timed(generate([q]))
            t_gen.append(tg)
            tokens.append(ntok)
            parsed += p
        res["batch1"]["seed_generate_ms"] = 1e3 * statistics.median(t_gen)
        res["batch1"]["seed_generate_new_tokens"] = tokens
        res["batch1"]["seed_generate_parsed"] = parsed
        res["batch1"]["generate_vs_scorer"] = res["batch1"]["seed_generate_ms"] / res["batch1"]["scorer_ms"]
    if args.generate_batch > 0:
        torch.manual_seed(0)
        t_gen = []
        for _ in range(args.generate_batch):
            (p, ntok), tg = timed(generate(batch))
            t_gen.append(tg)
        bk["seed_generate_ms"] = 1e3 * statistics.median(t_gen)
        bk["seed_generate_max_new_tokens"] = ntok
        bk["seed_generate_parsed"] = sum(x is not None for x in p)
        bk["generate_vs_scorer"] = bk["seed_generate_ms"] / bk["scorer_ms"]

    print(json.dumps(res, indent=2))
    print()
    print(f"model {args.model} on {dev} ({res['threads']} threads), median prompt {res['prompt_tokens_median']} tokens")
    for key in ("batch1", f"batch{args.batch}"):
        r = res[key]
        line = (
            f"{key:>8}: scorer {r['scorer_ms']:.1f} ms, bare forward {r['bare_forward_ms']:.1f} ms -> scorer/bare "
            f"{r['scorer_vs_bare']:.2f}x"
        )
        line += f"; no prefix cache {r['no_prefix_cache_ms']:.1f} ms -> {r['no_prefix_vs_scorer']:.2f}x the scorer"
        if "default_batching_ms" in r:
            line += f"; default batching {r['default_batching_ms']:.1f} ms -> {r['default_vs_scorer']:.2f}x the scorer"
        if "seed_generate_ms" in r:
            line += f"; seed generate {r['seed_generate_ms']:.0f} ms -> generate/scorer {r['generate_vs_scorer']:.1f}x"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
