"""Where an LM router's time goes on a CPU, one prompt at a time (what ``tela serve`` does there).

For ``score-token`` (SmolLM2-135M-Instruct with ``[[1]]``..``[[5]]`` added, the router
``bench/route_latency.py`` builds) and ``lm-probe`` (SmolLM2-135M cut after layer 12, the zoo's
default), the stages of one routing decision, timed separately on the same prompts, interleaved:

- score-token: **format + tokenise** (role-prefix template, tokenizer, the max-length fit),
  **forward with the prefix cache** (the question after the template's cached ~200-token prefix,
  last position's logits only), **forward without it** (the whole prompt), **readout** (the five
  score-token logits, softmax, w);
- lm-probe: **tokenise**, **forward** (12 decoder blocks over at most 256 tokens), **pool +
  readout** (mean over tokens, one dot product), and the same forward with torch's dynamic int8
  quantisation of every ``nn.Linear`` (with the cosine of its features to the fp32 ones), the
  cheap speed-up to try before any export.

    .venv/bin/python bench/lm_router_stages.py --queries 16 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tela_core.routing.router import Router

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tela serve on 2 cores uses 1)")
    ap.add_argument("--layer", type=int, default=12, help="lm-probe's layer")
    args = ap.parse_args()

    import numpy as np
    import torch
    from route_latency import questions, router_dir

    from tela_plugins.lm_probe.features import _load

    torch.set_num_threads(args.threads)
    qs = questions(args.queries)
    st = Router.load(router_dir(args.model)).scorer
    tok, body = _load(args.model, args.layer)
    import warnings

    with warnings.catch_warnings():  # torch marks its eager quantisation API deprecated
        warnings.simplefilter("ignore")
        qbody = torch.ao.quantization.quantize_dynamic(body, {torch.nn.Linear}, dtype=torch.qint8)
    coef = np.random.default_rng(0).normal(size=body.config.hidden_size)  # type: ignore[attr-defined]
    ids_t = torch.tensor(st.score_ids)

    def probe_forward(model: Any, enc: Any) -> Any:
        with torch.inference_mode():
            return model(**enc, output_hidden_states=True).hidden_states[args.layer]

    # warm-up: prefix cache, first-call allocations
    st.score(qs[:2])
    probe_forward(body, tok(qs[:1], return_tensors="pt", truncation=True, max_length=256))  # type: ignore[operator]
    probe_forward(qbody, tok(qs[:1], return_tensors="pt", truncation=True, max_length=256))  # type: ignore[operator]
    t: dict[str, list[float]] = {
        k: []
        for k in (
            "st_encode",
            "st_forward_prefix",
            "st_forward_full",
            "st_readout",
            "st_total",
            "lp_tokenise",
            "lp_forward",
            "lp_forward_int8",
            "lp_readout",
        )
    }
    cos: list[float] = []
    tokens: list[int] = []
    for q in qs:
        enc, dt = ms(lambda: st.encode(q))
        t["st_encode"].append(dt)
        tokens.append(len(enc))
        st.options = st.options.model_copy(update={"prefix_cache": True})
        logits, dt = ms(lambda: st.score_logits([enc]))
        t["st_forward_prefix"].append(dt)
        st.options = st.options.model_copy(update={"prefix_cache": False})
        _, dt = ms(lambda: st.score_logits([enc]))
        t["st_forward_full"].append(dt)
        st.options = st.options.model_copy(update={"prefix_cache": True})
        _, dt = ms(lambda: np.clip(1 - torch.softmax(logits.double(), -1).numpy()[:, 3:].sum(1), 0, 1))
        t["st_readout"].append(dt)
        _, dt = ms(lambda: st.score([q]))
        t["st_total"].append(dt)

        e, dt = ms(lambda: tok([q], return_tensors="pt", truncation=True, max_length=256))  # type: ignore[operator]
        t["lp_tokenise"].append(dt)
        h, dt = ms(lambda: probe_forward(body, e))
        t["lp_forward"].append(dt)
        hq, dt = ms(lambda: probe_forward(qbody, e))
        t["lp_forward_int8"].append(dt)
        _, dt = ms(lambda: float(h[0].mean(0).numpy() @ coef))
        t["lp_readout"].append(dt)
        a, b = h[0].mean(0).numpy(), hq[0].mean(0).numpy()
        cos.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    del ids_t

    med = {k: statistics.median(v) for k, v in t.items()}
    load = os.getloadavg()[0]
    print(
        f"\n{len(qs)} MMLU questions one at a time (median {statistics.median(tokens):.0f} score-token prompt tokens); "
        f"{args.threads} torch thread(s); load average {load:.1f}. Medians, ms:\n"
    )
    print("| router | stage | median ms | share of the call |")
    print("|---|---|---:|---:|")
    st_sum = med["st_encode"] + med["st_forward_prefix"] + med["st_readout"]
    for k, label in (
        ("st_encode", "format + tokenise"),
        ("st_forward_prefix", "forward, prefix cached (last position only)"),
        ("st_readout", "readout (5 logits, softmax)"),
    ):
        print(f"| score-token | {label} | {med[k]:.2f} | {100 * med[k] / st_sum:.0f}% |")
    print(
        f"| score-token | (forward without the prefix cache) | {med['st_forward_full']:.2f} | "
        f"{med['st_forward_full'] / med['st_forward_prefix']:.2f}× the cached one |"
    )
    print(f"| score-token | (whole `score` call) | {med['st_total']:.2f} | |")
    lp_sum = med["lp_tokenise"] + med["lp_forward"] + med["lp_readout"]
    for k, label in (
        ("lp_tokenise", "tokenise"),
        ("lp_forward", f"forward, {args.layer} blocks fp32"),
        ("lp_readout", "mean-pool + readout"),
    ):
        print(f"| lm-probe | {label} | {med[k]:.2f} | {100 * med[k] / lp_sum:.0f}% |")
    print(
        f"| lm-probe | (forward, torch dynamic int8) | {med['lp_forward_int8']:.2f} | "
        f"{med['lp_forward'] / med['lp_forward_int8']:.2f}× faster; "
        f"feature cosine to fp32 min {min(cos):.4f}, median {statistics.median(cos):.4f} |"
    )


if __name__ == "__main__":
    main()
