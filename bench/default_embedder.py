"""Which embedder should the embedding families use by default? Every embedding family on every
benchmark tela has, per embedder, side by side in one process, as differences to the first one.

Benchmarks (each as its own bench script measures it, in process, through the families' API):

- **mmlu**: train on MMLU's 42 training subjects, APGR on the 15 held-out ones (``mmlu-heldout``,
  docs/metrics.md; what ``bench/zoo_mmlu.py`` and ``tela zoo`` report);
- **flywheel**: ``bench/flywheel.py``'s protocol without its collect/judge round trip (which that
  script checks recovers the recorded outcomes exactly): per seeded draw, N of the held-out
  subjects' distinct prompts are the team's labelled traffic and the rest the evaluation set; each
  family is trained on the N labels alone ("own") and on the 42 subjects plus the N labels
  ("public+own"), for each N in ``--ns``; the row is the mean APGR over the Ns (and draws), beside
  the 42-subjects-alone router ("public");
- **nim9**: LLMRouter's 9 models with prices (``bench/nmodel_nim9.py``): AIQ of the cost-aware
  policy over the family's per-model predictions (kNN, matrix-factorization).

Embedders are named as for ``--set family.embedder=NAME``, with options as JSON after the name:
``model2vec{"pca_dims": 256}``. Family options: ``--family-options '{"embedding-linear": {"C": 4}}'``.
Vectors come from (and fill) the shard cache in ``$TELA_CACHE/embeddings/``.

    TELA_TEST_DATA=DIR .venv/bin/python bench/default_embedder.py --embedders minilm,model2vec
    # DIR holds routellm-mmlu/ and llmrouter-nim9/ (or `tela data get` fetched them)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tela_core.data.protocols import split
from tela_core.eval import metrics
from tela_core.eval.nmodel import aiq, hull, sweep
from tela_core.eval.zoo import split_for_zoo
from tela_core.plugins.discovery import get_registry
from tela_core.testkit import public_data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILIES = {
    "mmlu": ["embedding-knn", "embedding-linear", "matrix-factorization", "ensemble"],
    "flywheel": ["embedding-knn", "embedding-linear"],
    "nim9": ["embedding-knn", "matrix-factorization"],
}
NS = [50, 100, 200, 400, 800]


def parse_embedder(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name{json options}``."""
    if "{" in spec:
        name, rest = spec.split("{", 1)
        return name, json.loads("{" + rest)
    return spec, {}


def split_specs(text: str) -> list[str]:
    """Comma-separated embedder specs (commas inside ``{...}`` belong to the options)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return [s.strip() for s in out if s.strip()]


def _data(name: str) -> Path:
    d = public_data(name)
    if d is None:
        sys.exit(f"{name} not found: run `tela data get {name}` or set TELA_TEST_DATA to a folder holding it")
    return Path(d)


def _fit_score(
    family: str, opts: dict[str, Any], train: list[Any], prompts: list[str], scratch: Path, *, models: bool = False
) -> Any:
    scorer = get_registry().create("family", family, opts)
    scorer.fit(train, Path(tempfile.mkdtemp(dir=scratch)), {})
    if models:
        return scorer, scorer.predict_models(prompts)
    return scorer.score(prompts).w


def _family_opts(family: str, embedder: tuple[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    name, eopts = embedder
    return {"embedder": name, "embedder_options": eopts, **extra.get(family, {})}


def bench_mmlu(
    embedder: tuple[str, dict[str, Any]], fams: list[str], extra: dict[str, dict[str, Any]], scratch: Path
) -> dict[str, float]:
    import numpy as np

    records = list(get_registry().create("source", "routellm-csv", {}).records(_data("routellm-mmlu")))
    train, evalr = split_for_zoo(records, "mmlu-heldout")
    src = get_registry().create("source", "routellm-csv", {})
    wm, sm = src.options.weak_model, src.options.strong_model
    weak = np.array([(r.outcomes or {})[wm] for r in evalr])
    strong = np.array([(r.outcomes or {})[sm] for r in evalr])
    out = {}
    for fam in fams:
        w = _fit_score(
            fam,
            {"weak": wm, "strong": sm, **_family_opts(fam, embedder, extra)},
            train,
            [r.prompt for r in evalr],
            scratch,
        )
        out[fam] = metrics.apgr(np.asarray(w), weak, strong)
    return out


def bench_flywheel(
    embedder: tuple[str, dict[str, Any]],
    fams: list[str],
    extra: dict[str, dict[str, Any]],
    scratch: Path,
    ns: list[int],
    repeats: int,
    seed: int,
) -> dict[str, float]:
    import numpy as np

    src = get_registry().create("source", "routellm-csv", {})
    wm, sm = src.options.weak_model, src.options.strong_model
    public, heldout = split("mmlu-heldout", list(src.records(_data("routellm-mmlu"))))
    seen: set[str] = set()
    unique = [r for r in heldout if not (r.prompt in seen or seen.add(r.prompt))]  # type: ignore[func-returns-value]
    acc: dict[str, list[float]] = {}
    for fam in fams:
        opts = {"weak": wm, "strong": sm, **_family_opts(fam, embedder, extra)}
        for rep in range(repeats):
            order = np.random.default_rng(seed + rep).permutation(len(unique))
            pool = [unique[i] for i in order[: max(ns)]]
            evals = [unique[i] for i in order[max(ns) :]]
            prompts = [r.prompt for r in evals]
            weak = np.array([r.outcomes[wm] for r in evals])
            strong = np.array([r.outcomes[sm] for r in evals])
            acc.setdefault(f"{fam} public", []).append(
                metrics.apgr(_fit_score(fam, opts, public, prompts, scratch), weak, strong)
            )
            for n in ns:
                acc.setdefault(f"{fam} own", []).append(
                    metrics.apgr(_fit_score(fam, opts, pool[:n], prompts, scratch), weak, strong)
                )
                acc.setdefault(f"{fam} public+own", []).append(
                    metrics.apgr(_fit_score(fam, opts, public + pool[:n], prompts, scratch), weak, strong)
                )
    return {k: float(np.mean(v)) for k, v in acc.items()}


def bench_nim9(
    embedder: tuple[str, dict[str, Any]], fams: list[str], extra: dict[str, dict[str, Any]], scratch: Path
) -> dict[str, float]:
    import numpy as np

    data = _data("llmrouter-nim9")
    src = get_registry().create("source", "llmrouter-json", {})
    train = list(src.records(data / "dcrouter_preprocessed_train.json"))
    test = list(src.records(data / "dcrouter_preprocessed_test.json"))
    models = [m for m in train[0].outcomes if all(m in (r.costs or {}) for r in test)]
    truth = np.array([[r.outcomes[m] for m in models] for r in test])
    cost = np.array([[r.costs[m] for m in models] for r in test])
    singles = [(float(cost[:, j].mean()), float(truth[:, j].mean())) for j in range(len(models))]
    lo, hi = min(c for c, _ in singles), max(c for c, _ in singles)
    out = {}
    for fam in fams:
        opts = {
            "weak": src.options.weak_model,
            "strong": src.options.strong_model,
            **_family_opts(fam, embedder, extra),
        }
        if fam == "embedding-knn":
            opts.setdefault("k", 50)
        scorer, pred_all = _fit_score(fam, opts, train, [r.prompt for r in test], scratch, models=True)
        pred = pred_all[:, [scorer.models.index(m) for m in models]]
        out[fam] = aiq(hull(sweep(pred, cost, truth)), lo, hi)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedders", default="minilm,model2vec", help="comma-separated; the first is the baseline")
    ap.add_argument("--benchmarks", default="mmlu,flywheel,nim9")
    ap.add_argument("--families", default=None, help="restrict to these families (comma-separated)")
    ap.add_argument("--family-options", default="{}", help='JSON: {"embedding-linear": {"C": 4}}')
    ap.add_argument("--ns", default=",".join(map(str, NS)))
    ap.add_argument("--repeats", type=int, default=1, help="flywheel draws")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads, user_api="blas")
    specs = split_specs(args.embedders)
    extra = json.loads(args.family_options)
    only = set(args.families.split(",")) if args.families else None
    ns = [int(n) for n in args.ns.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="tela-default-embedder-"))
    results: dict[str, dict[str, float]] = {s: {} for s in specs}
    for bench in [b for b in args.benchmarks.split(",") if b]:
        fams = [f for f in FAMILIES[bench] if only is None or f in only]
        if not fams:
            continue
        for spec in specs:
            t0 = time.perf_counter()
            emb = parse_embedder(spec)
            if bench == "mmlu":
                got = bench_mmlu(emb, fams, extra, scratch)
            elif bench == "flywheel":
                got = bench_flywheel(emb, fams, extra, scratch, ns, args.repeats, args.seed)
            else:
                got = bench_nim9(emb, fams, extra, scratch)
            results[spec].update({f"{bench}: {k}": v for k, v in got.items()})
            print(
                f"{spec} {bench} ({time.perf_counter() - t0:.0f} s): "
                + ", ".join(f"{k} {v:.4f}" for k, v in got.items()),
                file=sys.stderr,
                flush=True,
            )
    rows = list(results[specs[0]])
    base = results[specs[0]]
    print(
        f"\nAPGR (mmlu, flywheel: mean over N={ns} and {args.repeats} draw(s)) and AIQ (nim9); "
        f"difference to {specs[0]} in brackets; load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| benchmark: family | " + " | ".join(specs) + " |")
    print("|---|" + "---:|" * len(specs))
    for row in rows:
        cells = []
        for s in specs:
            v = results[s].get(row)
            cells.append("–" if v is None else (f"{v:.3f}" if s == specs[0] else f"{v:.3f} ({v - base[row]:+.3f})"))
        print(f"| {row} | " + " | ".join(cells) + " |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
