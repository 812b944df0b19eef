"""Does learning from traffic pay? A router served on MMLU traffic that drifts, relabelled and promoted each round.

Protocol (docs/metrics.md, ``mmlu-heldout``, with drift). Per seed, a seeded share of the 42
training subjects' prompts is kept out of training as traffic; the first router (v1) is trained on
the rest of the 42 subjects with ``tela run``. Then traffic comes in ROUNDS of ``--per-round``
prompts: round 1 holds training-subject prompts only; from round 2 on, the 15 held-out subjects
arrive a few at a time (in a seeded order, 15 / (rounds - 1) per round), and each round's traffic
is ``--old-share`` training-subject prompts and the rest drawn from the held-out subjects that have
arrived so far. No prompt is sent twice.

Arms (each learning arm has its own ``tela serve`` and its own versions folder):

* ``frozen``: v1 routes every round, nothing is learnt (its decisions are v1's policy, in process);
* ``promote``: the traffic goes THROUGH THE REAL SERVING PATH: ``tela serve`` routes each request
  (an HTTP chat request, as a client sends it) with shadow mode at a fixed share (``--shadow``);
  after the round, ``tela collect --from-log`` turns the shadow log into answers, ``tela judge
  --judge llm-judge`` rates them into records (the labels bought), a candidate is trained with
  ``tela run`` on the 42 subjects plus the labels of every earlier round, and ``tela promote``
  compares it with the serving version on THIS round's labels (which neither trained on) and
  promotes it (the server follows the versions folder) or refuses;
* ``uncertainty``: the same, with the server's uncertainty-driven shadow sampling
  (``shadow_sampling: uncertainty``) at ``--uncertainty-shadow`` (default: half of ``--shadow``).

Per round and arm it reports the APGR of the serving router on the round's prompts that were NOT
labelled (for ``frozen``: all of them; each learning arm also beside v1 on exactly its own
unlabelled prompts, a paired difference), the cumulative regret (quality lost against an oracle
that makes the same number of strong calls in the round, summed over requests), the labels bought,
the dollars spent (routed answers + shadow calls from the server's ``/metrics`` + judge calls from
``tela judge``'s summary, at the configured prices) and every promote/refuse decision with its
numbers. For each promotion it checks the next round's labels: does the promoted version lose to
the version it replaced there (paired bootstrap, the rule ``tela promote`` uses)?

STAND-INS, NOT MODELS. RouteLLM's MMLU CSVs say only whether Mixtral-8x7B and GPT-4-1106 answered
each question correctly; they hold no answer text. The two model APIs and the judge model are
played by one loopback stand-in (tela_core.testkit.replay_upstream.ReplayUpstream): asked for a
model and a prompt, it answers a text that is unique to the pair, recorded with score 1 when the
outcome data says that model was right and 0 when it was wrong, and its judge model rates an answer
[[5]] or [[1]] from that recorded score. ``tela judge`` (llm-judge, rate=all) thus recovers exactly
the recorded outcomes (the script checks it). Token counts are the prompt's length / 4 and 8 output
tokens; dollars are those tokens at the configured prices (Mixtral 0.6/0.6, GPT-4 10/30, the judge
0.15/0.6 $ per million input/output tokens): a relative measure of what the arms buy, not a bill.

    .venv/bin/tela data get routellm-mmlu           # once (or --from DIR with a copy)
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/drift_loop.py --seeds 4 --rounds 6 --per-round 400 \\
        --shadow 0.25 --output bench-out/drift --png docs/img/drift-loop-mmlu.png

Embedding families with the default (model2vec) embedder: a learning arm's round takes about 20 s on
two CPU cores, most of it ``tela run``; 4 seeds x 6 rounds about 20 minutes (docs/benchmarks.md).
The report also shows what each learning arm would have served had every candidate been promoted
(the latest candidate on the same prompts): retrain-every-round without the gate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from benchdata import dataset

from tela_core import Router
from tela_core.eval import metrics
from tela_core.infra.io import atomic_open, split_jsonl
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

TELA = str(Path(sys.executable).with_name("tela"))
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
JUDGE = "judge-model"
PRICES = {"mixtral": (0.6, 0.6), "gpt4": (10.0, 30.0), "judge": (0.15, 0.6)}
LETTERS = "ABCD"
ADMIN = "drift-bench-admin"
BOOT = 1000


def tela(*args: Any, timings: dict[str, float] | None = None, key: str = "", ok: Sequence[int] = (0,)) -> str:
    """One `tela` command as a user runs it; stop the bench with its output when it fails."""
    t0 = time.perf_counter()
    r = subprocess.run([TELA, *map(str, args)], capture_output=True, text=True, env=_env())
    if timings is not None:
        timings[key or str(args[0])] = timings.get(key or str(args[0]), 0.0) + time.perf_counter() - t0
    if r.returncode not in ok:
        print(f"  (tela {args[0]} failed ({r.returncode}); once more in 20 s: {r.stderr.strip()[-200:]})", flush=True)
        time.sleep(20)
        r = subprocess.run([TELA, *map(str, args)], capture_output=True, text=True, env=_env())
    if r.returncode not in ok:
        sys.exit(f"tela {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["TELA_DRIFT_ADMIN"] = ADMIN
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, split on "\\n" only (MMLU prompts hold U+2028 raw)."""
    return [json.loads(line) for line in split_jsonl(path.read_text(encoding="utf-8"))] if path.is_file() else []


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_open(path, "w") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- metrics ------------------------------------------------------------------------------------


def apgr(w: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """APGR (docs/metrics.md); NaN on prompts where both models score the same (no gap to recover)."""
    if len(weak) == 0 or float(np.mean(weak)) == float(np.mean(strong)):
        return float("nan")
    return float(metrics.apgr(np.asarray(w, float), np.asarray(weak, float), np.asarray(strong, float)))


def paired_delta(
    w_new: np.ndarray, w_old: np.ndarray, weak: np.ndarray, strong: np.ndarray, seed: int
) -> tuple[float, float, float]:
    """APGR(new) - APGR(old) on these prompts, and its 95% paired bootstrap interval (same resamples)."""
    d = apgr(w_new, weak, strong) - apgr(w_old, weak, strong)
    if d != d:
        return d, d, d
    rng = np.random.default_rng(seed)
    n, ds = len(weak), []
    for _ in range(BOOT):
        i = rng.integers(0, n, n)
        if weak[i].mean() == strong[i].mean():
            continue
        ds.append(apgr(w_new[i], weak[i], strong[i]) - apgr(w_old[i], weak[i], strong[i]))
    lo, hi = np.percentile(ds, [2.5, 97.5]) if ds else (float("nan"), float("nan"))
    return d, float(lo), float(hi)


def regret(to_strong: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> float:
    """Quality lost, summed over requests, against an oracle making as many strong calls: the
    oracle sends the k prompts where the strong model gains most (ties stably) to it."""
    k = int(to_strong.sum())
    got = np.where(to_strong, strong, weak).sum()
    order = np.argsort(-(strong - weak), kind="stable")
    best = weak.sum() + (strong - weak)[order[:k]].sum()
    return float(best - got)


# -- the traffic ----------------------------------------------------------------------------------


@dataclass
class Prompt:
    id: str
    prompt: str
    subject: str
    weak: float
    strong: float


def build_rounds(
    train_rows: list[dict[str, Any]],
    held_rows: list[dict[str, Any]],
    rng: np.random.Generator,
    rounds: int,
    per_round: int,
    old_share: float,
) -> tuple[list[dict[str, Any]], list[list[Prompt]], list[list[str]]]:
    """(v1's training records, the rounds' prompts, the held-out subjects arriving each round)."""
    n_old = per_round + (rounds - 1) * round(old_share * per_round)
    order = rng.permutation(len(train_rows))
    traffic_idx, public_idx = order[:n_old], order[n_old:]
    public = [train_rows[i] for i in public_idx]
    seen = {r["prompt"] for r in public}

    def prompt(r: dict[str, Any]) -> Prompt:
        o = r["outcomes"]
        return Prompt(r["id"], r["prompt"], r.get("group") or "", float(o[WEAK]), float(o[STRONG]))

    used: set[str] = set(seen)

    def fresh(rows: list[dict[str, Any]]) -> list[Prompt]:
        out = []
        for r in rows:
            if r["prompt"] not in used:
                used.add(r["prompt"])
                out.append(prompt(r))
        return out

    old = fresh([train_rows[i] for i in traffic_idx])
    subjects = sorted({r["group"] for r in held_rows})
    subjects = [subjects[i] for i in rng.permutation(len(subjects))]
    arrive = [list(a) for a in np.array_split(np.array(subjects, dtype=object), rounds - 1)] if rounds > 1 else []
    by_subject = {
        s: fresh([held_rows[i] for i in rng.permutation(len(held_rows)) if held_rows[i]["group"] == s])
        for s in subjects
    }
    out: list[list[Prompt]] = [old[:per_round]]
    old_at = per_round
    active: list[str] = []
    for r in range(1, rounds):
        active += arrive[r - 1]
        k_old = round(old_share * per_round)
        batch = old[old_at : old_at + k_old]
        old_at += k_old
        # the rest: from the arrived held-out subjects, each subject's prompts in a seeded order,
        # drawn in proportion to what is left of each
        left = {s: by_subject[s] for s in active if by_subject[s]}
        need = per_round - len(batch)
        pool = [(s, p) for s in left for p in left[s]]
        pick = rng.choice(len(pool), size=min(need, len(pool)), replace=False)
        chosen = [pool[i] for i in sorted(pick)]
        for s, p in chosen:
            by_subject[s].remove(p)
        batch += [p for _s, p in chosen]
        out.append([batch[i] for i in rng.permutation(len(batch))])
    return public, out, arrive


def recorded_answers(rounds: list[list[Prompt]], rng: np.random.Generator) -> dict[str, dict[str, Recorded]]:
    """Each model's stand-in answer to each traffic prompt: a text unique to (model, prompt) with
    score 1 where the outcome data says the model was right, 0 where it was wrong."""
    rec: dict[str, dict[str, Recorded]] = {WEAK: {}, STRONG: {}}
    for batch in rounds:
        for p in batch:
            ref = LETTERS[int(rng.integers(4))]
            for model, tag, o in ((WEAK, "m", p.weak), (STRONG, "g", p.strong)):
                letter = ref if o >= 0.5 else LETTERS[(LETTERS.index(ref) + 1 + int(rng.integers(3))) % 4]
                rec[model][p.prompt] = Recorded(
                    f"The answer is ({letter}). [stand-in {tag}:{p.id}]",
                    prompt_tokens=len(p.prompt) // 4 + 4,
                    completion_tokens=8,
                    score=1.0 if o >= 0.5 else 0.0,
                )
    return rec


def answer_cost(p: Prompt, to_strong: bool) -> float:
    """Dollars of one routed answer: the stand-in's usage (recorded_answers) at the configured prices."""
    pi, po = PRICES["gpt4" if to_strong else "mixtral"]
    return ((len(p.prompt) // 4 + 4) * pi + 8 * po) / 1e6


# -- one arm's server ---------------------------------------------------------------------------


def serve_config(path: Path, up_url: str, router_path: str, shadow: float, sampling: str | None) -> None:
    lines = [
        "upstreams:",
        *(
            f"  {name}: {{base_url: '{up_url}', model: '{model}', price_input: {PRICES[name][0]}, "
            f"price_output: {PRICES[name][1]}, max_concurrency: 16}}"
            for name, model in (("mixtral", WEAK), ("gpt4", STRONG), ("judge", JUDGE))
        ),
        "routers:",
        f"  drift: {{path: '{router_path}', upstreams: [mixtral, gpt4], shadow: {shadow}}}",
        "shadow_log: shadow.jsonl",
        "decision_log: decisions.jsonl",
        "log_prompts: true",
        "admin_token_env: TELA_DRIFT_ADMIN",
    ]
    if sampling:
        lines.append(f"shadow_sampling: {sampling}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@contextlib.contextmanager
def tela_serve(folder: Path) -> Iterator[str]:
    """`tela serve --config serve.yaml` in ``folder``; yields its base URL once /ready answers 200."""
    port = free_port()
    log = open(folder / "serve.log", "a", encoding="utf-8")
    proc = subprocess.Popen(
        [TELA, "serve", "--config", "serve.yaml", "--port", str(port)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                sys.exit(f"tela serve exited ({proc.returncode}); see {folder / 'serve.log'}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.time() - t0 > 120:
                sys.exit(f"tela serve not ready after 120 s; see {folder / 'serve.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def chat(url: str, prompt: str) -> dict[str, str]:
    body = json.dumps({"model": "router-drift", "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return {k.lower(): v for k, v in r.headers.items()}


def scrape(url: str) -> dict[str, float]:
    """The server's /metrics: each sample's value by its name and labels."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def total(m: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in m.items() if k.startswith(prefix + "{") or k == prefix)


def wait_shadow(url: str, log: Path, timeout: float = 120) -> None:
    """Wait until the shadow calls of the requests sent are written (the log stops growing)."""
    t0, last, still = time.time(), -1, 0
    while time.time() - t0 < timeout:
        n = len(split_jsonl(log.read_text(encoding="utf-8"))) if log.is_file() else 0
        still = still + 1 if n == last else 0
        if still >= 4:
            return
        last = n
        time.sleep(0.4)


def reload(url: str) -> None:
    req = urllib.request.Request(
        url + "/admin/reload", data=b"", method="POST", headers={"authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.loads(r.read())
    if not all(v.get("ok") for v in body.get("routers", body).values() if isinstance(v, dict)):
        sys.exit(f"reload failed: {body}")


# -- promotion ------------------------------------------------------------------------------------


def has_promote() -> bool:
    r = subprocess.run([TELA, "promote", "--help"], capture_output=True, text=True, env=_env())
    return r.returncode == 0


@dataclass
class Arm:
    name: str
    folder: Path
    shadow: float
    sampling: str | None
    versions: list[Path] = field(default_factory=list)  # every version served, in order
    current: int = 0  # index into versions
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # prompt -> its judged record, every round
    label_round: dict[str, int] = field(default_factory=dict)
    dollars: float = 0.0
    regret: float = 0.0
    judge_cost: float = 0.0
    last_candidate: Path | None = None  # the candidate trained in the previous round, promoted or not
    decs: list[dict[str, Any]] = field(default_factory=list)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="the first seed")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of traffic (round 1: training subjects only)")
    ap.add_argument("--per-round", type=int, default=400, help="prompts (requests) per round")
    ap.add_argument("--old-share", type=float, default=0.2, help="share of training-subject prompts after round 1")
    ap.add_argument("--shadow", type=float, default=0.25, help="shadow share of the promote arm")
    ap.add_argument("--uncertainty-shadow", type=float, default=None, help="the uncertainty arm's (default: half)")
    ap.add_argument("--family", default="embedding-knn")
    ap.add_argument("--own-weight", type=float, default=1.0, help="--weight of the labelled traffic in training")
    ap.add_argument("--arms", default="frozen,promote,uncertainty")
    ap.add_argument("--output", type=Path, default=Path("bench-out/drift"))
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--report-only", action="store_true", help="print the report of OUTPUT/results.json again")
    args = ap.parse_args()
    if args.report_only:
        saved = json.loads((args.output / "results.json").read_text(encoding="utf-8"))
        report(saved["rounds"], saved["decisions"], args, float("nan"), True)
        if args.png:
            plot(saved["rounds"], args.png)
        return
    arms_wanted = [a for a in args.arms.split(",") if a]
    unc_share = args.uncertainty_shadow if args.uncertainty_shadow is not None else args.shadow / 2
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    data = dataset("routellm-mmlu")
    if not (out / "split" / "train.jsonl").is_file():
        tela("data", "split", "--protocol", "mmlu-heldout", "-o", out / "split", data)
    train_rows = jsonl(out / "split" / "train.jsonl")
    held_rows = jsonl(out / "split" / "eval.jsonl")
    promote_cli = has_promote()
    if "uncertainty" in arms_wanted and not sampling_supported():
        print("the server has no shadow_sampling option yet: the uncertainty arm is skipped", flush=True)
        arms_wanted.remove("uncertainty")
    print(
        f"{len(train_rows)} training-subject and {len(held_rows)} held-out records; {args.rounds} rounds of "
        f"{args.per_round} requests; shadow {args.shadow} (uncertainty arm {unc_share}); family {args.family}; "
        f"arms {', '.join(arms_wanted)}; promotion by "
        + ("`tela promote`" if promote_cli else "THE BENCH'S OWN STAND-IN FOR `tela promote` (not landed yet)"),
        flush=True,
    )
    results: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for seed in range(args.seed, args.seed + args.seeds):
        res, dec = run_seed(seed, args, train_rows, held_rows, arms_wanted, unc_share, promote_cli)
        results += res
        decisions += dec
        (out / "results.json").write_text(json.dumps({"rounds": results, "decisions": decisions}, indent=1))
    elapsed = time.perf_counter() - t_all
    report(results, decisions, args, elapsed, promote_cli)
    if args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")


def sampling_supported() -> bool:
    from tela_core.serve.config import ServeConfig

    return "shadow_sampling" in ServeConfig.model_fields


def run_seed(
    seed: int,
    args: argparse.Namespace,
    train_rows: list[dict[str, Any]],
    held_rows: list[dict[str, Any]],
    arms_wanted: list[str],
    unc_share: float,
    promote_cli: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    public, rounds, arrive = build_rounds(train_rows, held_rows, rng, args.rounds, args.per_round, args.old_share)
    sd = args.output / f"seed-{seed}"
    shutil.rmtree(sd, ignore_errors=True)
    sd.mkdir(parents=True)
    write_jsonl(sd / "public.jsonl", public)
    t0 = time.perf_counter()
    tela("run", "--data", sd / "public.jsonl", "--family", args.family, "-o", sd / "v1", "-q")
    print(
        f"\nseed {seed}: v1 trained on {len(public)} training-subject records in {time.perf_counter() - t0:.0f} s; "
        f"held-out subjects arrive: " + " | ".join(",".join(a) for a in arrive),
        flush=True,
    )
    v1 = Router.load(sd / "v1")
    recorded = recorded_answers(rounds, rng)
    rows: list[dict[str, Any]] = []
    decs: list[dict[str, Any]] = []
    arms = []
    for name in arms_wanted:
        if name == "frozen":
            continue
        a = Arm(
            name,
            sd / name,
            args.shadow if name == "promote" else unc_share,
            "uncertainty" if name == "uncertainty" else None,
        )
        a.folder.mkdir()
        arms.append(a)
    scores_cache: dict[Path, dict[str, float]] = {}

    def w_of(router_dir: Path, prompts: list[Prompt]) -> np.ndarray:
        cache = scores_cache.setdefault(router_dir, {})
        miss = [p.prompt for p in prompts if p.prompt not in cache]
        if miss:
            cache.update(zip(miss, map(float, Router.load(router_dir).score(miss))))
        return np.array([cache[p.prompt] for p in prompts])

    frozen_regret = frozen_dollars = 0.0
    with ReplayUpstream(recorded, judges=[JUDGE]) as up, contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for a in arms:
            setup_arm(a, sd / "v1", up.base_url, promote_cli)
            urls[a.name] = stack.enter_context(tela_serve(a.folder))
        for r, batch in enumerate(rounds, start=1):
            weak = np.array([p.weak for p in batch])
            strong = np.array([p.strong for p in batch])
            # the frozen arm: v1's own decisions on every prompt of the round
            fw = w_of(sd / "v1", batch)
            thr = v1.threshold if v1.threshold is not None else 0.5
            frozen_regret += regret(fw >= thr, weak, strong)
            fa = apgr(fw, weak, strong)
            # what v1's answers cost: the stand-in's token counts at the configured prices
            fd = sum(answer_cost(p, bool(s)) for p, s in zip(batch, fw >= thr))
            frozen_dollars += fd
            if "frozen" in arms_wanted:
                rows.append(
                    {
                        "seed": seed,
                        "round": r,
                        "arm": "frozen",
                        "apgr": fa,
                        "apgr_v1_same": fa,
                        "labels": 0,
                        "labels_total": 0,
                        "dollars": frozen_dollars,
                        "dollars_round": {"answers": fd, "shadow": 0.0, "judge": 0.0},
                        "quality": float(np.where(fw >= thr, strong, weak).mean()),
                        "regret": frozen_regret,
                        "version": "v1",
                        "n_eval": len(batch),
                        "strong_share": float((fw >= thr).mean()),
                    }
                )
            for a in arms:
                row, dec = run_round(
                    a,
                    r,
                    batch,
                    urls[a.name],
                    up,
                    args,
                    seed,
                    v1_w=fw,
                    w_of=w_of,
                    promote_cli=promote_cli,
                    sd=sd,
                    rounds=rounds,
                )
                rows.append(row)
                decs += dec
            line = f"  round {r}: frozen {fa:.3f}"
            for a in arms:
                last = rows[-len(arms) + arms.index(a)] if arms else {}
                line += (
                    f" | {a.name} {last['apgr']:.3f} (v1 there {last['apgr_v1_same']:.3f}), "
                    f"{last['labels']} labels, serving {last['version']}"
                )
            print(line, flush=True)
    for d in decs:
        print(
            f"  {d['arm']} round {d['round']}: {d['decision']} {d.get('candidate')} "
            f"(delta {d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] on {d['n']} labels)"
            + (
                f"; next round: {d['next_delta']:+.3f} [{d['next_lo']:+.3f}, {d['next_hi']:+.3f}]"
                if d.get("next_delta") is not None
                else ""
            ),
            flush=True,
        )
    return rows, decs


def setup_arm(a: Arm, v1: Path, up_url: str, promote_cli: bool) -> None:
    """The arm's serving folder: versions (v1 current) and serve.yaml."""
    live = a.folder / "live"
    if promote_cli:
        tela("promote", "--router", live, "--candidate", v1)
    else:
        (a.folder / "versions").mkdir()
        shutil.copytree(v1, a.folder / "versions" / "v1")
        os.symlink(Path("versions") / "v1", live)
    a.versions = [live / "v1" if promote_cli else a.folder / "versions" / "v1"]
    serve_config(a.folder / "serve.yaml", up_url, "live", a.shadow, a.sampling)


def run_round(
    a: Arm,
    r: int,
    batch: list[Prompt],
    url: str,
    up: ReplayUpstream,
    args: argparse.Namespace,
    seed: int,
    *,
    v1_w: np.ndarray,
    w_of: Any,
    promote_cli: bool,
    sd: Path,
    rounds: list[list[Prompt]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    timings: dict[str, float] = {}
    before = scrape(url)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        heads = list(pool.map(lambda p: chat(url, p.prompt), batch))
    timings["serve"] = time.perf_counter() - t0
    log = a.folder / "shadow.jsonl"
    wait_shadow(url, log)
    after = scrape(url)
    serve_cost = total(after, "tela_estimated_cost_dollars_total") - total(before, "tela_estimated_cost_dollars_total")
    shadow_cost = total(after, "tela_shadow_estimated_cost_dollars_total") - total(
        before, "tela_shadow_estimated_cost_dollars_total"
    )
    w = np.array([float(h["x-tela-score"]) for h in heads])
    to_strong = np.array([h.get("x-tela-model") == "gpt4" for h in heads])
    weak = np.array([p.weak for p in batch])
    strong = np.array([p.strong for p in batch])
    a.regret += regret(to_strong, weak, strong)
    # the labels: the shadow log -> tela collect --from-log -> tela judge
    tela(
        "collect",
        "--from-log",
        log,
        "--config",
        a.folder / "serve.yaml",
        "--model",
        "mixtral",
        "--model",
        "gpt4",
        "-o",
        a.folder / "answers",
        timings=timings,
        key="collect",
    )
    judged = a.folder / "judged"
    jout = tela(
        "judge",
        "--answers",
        a.folder / "answers",
        "--judge",
        "llm-judge",
        "--judge-model",
        "judge",
        "--set",
        "judge.rate=all",
        "--config",
        a.folder / "serve.yaml",
        "-o",
        judged,
        timings=timings,
        key="judge",
    )
    summary = json.loads((judged / "summary.json").read_text())
    jc = float(summary.get("cost_total") or 0.0)
    judge_cost, a.judge_cost = jc - a.judge_cost, jc
    truth = {p.prompt: p for p in batch}
    new = 0
    for rec in jsonl(judged / "records.jsonl"):
        pr = rec["prompt"]
        if pr in a.labels:
            continue
        p = truth.get(pr)
        assert p is not None, f"a label for a prompt not sent this round: {pr[:60]}"
        assert rec["outcomes"] == {WEAK: p.weak, STRONG: p.strong}, (rec["outcomes"], p)
        a.labels[pr] = rec
        a.label_round[pr] = r
        new += 1
    a.dollars += serve_cost + shadow_cost + judge_cost
    unl = np.array([p.prompt not in a.labels for p in batch])
    row = {
        "seed": seed,
        "round": r,
        "arm": a.name,
        "apgr": apgr(w[unl], weak[unl], strong[unl]),
        "apgr_v1_same": apgr(v1_w[unl], weak[unl], strong[unl]),
        # had every candidate been promoted (no gate): the latest one on the same prompts
        "apgr_latest_candidate": (
            apgr(w_of(a.last_candidate, [p for p, u in zip(batch, unl) if u]), weak[unl], strong[unl])
            if a.last_candidate is not None
            else apgr(v1_w[unl], weak[unl], strong[unl])
        ),
        "labels": new,
        "labels_total": len(a.labels),
        "dollars": a.dollars,
        "dollars_round": {"answers": serve_cost, "shadow": shadow_cost, "judge": judge_cost},
        "regret": a.regret,
        "version": a.versions[a.current].name,
        "n_eval": int(unl.sum()),
        "strong_share": float(to_strong.mean()),
        "quality": float(np.where(to_strong, strong, weak).mean()),
        "judge_summary": summary.get("labels"),
        "timings": timings,
    }
    _ = jout
    decs: list[dict[str, Any]] = []
    # the previous decision of this arm, checked on this round's labels
    prev = [d for d in a.decs if d["round"] == r - 1 and d["decision"] == "promote"]
    lab = [p for p in batch if a.label_round.get(p.prompt) == r]
    if prev and lab:
        d = prev[0]
        lw, ls = np.array([p.weak for p in lab]), np.array([p.strong for p in lab])
        dn, lo, hi = paired_delta(
            w_of(Path(d["candidate_dir"]), lab), w_of(Path(d["current_dir"]), lab), lw, ls, seed * 1000 + r
        )
        d.update(
            next_delta=dn,
            next_lo=lo,
            next_hi=hi,
            next_worse=hi < 0,
            next_delta_all=apgr(w_of(Path(d["candidate_dir"]), batch), weak, strong)
            - apgr(w_of(Path(d["current_dir"]), batch), weak, strong),
        )
    if r > 1 and lab:  # a candidate on every earlier round's labels, judged on this round's
        own = [rec for pr, rec in a.labels.items() if a.label_round[pr] < r]
        train = a.folder / f"train-r{r}.jsonl"
        evalf = a.folder / f"eval-r{r}.jsonl"
        write_jsonl(train, own)
        write_jsonl(evalf, [a.labels[p.prompt] for p in lab])
        cand = a.folder / f"cand-r{r}"
        t1 = time.perf_counter()
        tela(
            "run",
            "--data",
            sd / "public.jsonl",
            "--data",
            train,
            "--weight",
            1,
            "--weight",
            args.own_weight,
            "--set",
            f"source2.models.weak={WEAK}",  # the labels name the pair: no guessing from mean outcomes
            "--set",
            f"source2.models.strong={STRONG}",
            "--family",
            args.family,
            "-o",
            cand,
            "-q",
        )
        timings["train"] = time.perf_counter() - t1
        cur = a.versions[a.current]
        d = promote(a, cand, evalf, lab, seed * 1000 + r, promote_cli, w_of, url, timings)
        d.update(seed=seed, round=r, arm=a.name, current=cur.name, current_dir=str(cur), n=len(lab))
        decs.append(d)
        a.decs.append(d)
        a.last_candidate = cand
    return row, decs


def promote(
    a: Arm,
    cand: Path,
    evalf: Path,
    lab: list[Prompt],
    seed: int,
    promote_cli: bool,
    w_of: Any,
    url: str,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Promote ``cand`` over the arm's serving version, or refuse, on the round's labels."""
    cur = a.versions[a.current]
    lw, ls = np.array([p.weak for p in lab]), np.array([p.strong for p in lab])
    t0 = time.perf_counter()
    if promote_cli:
        r = subprocess.run(
            [
                TELA,
                "promote",
                "--router",
                str(a.folder / "live"),
                "--candidate",
                str(cand),
                "--data",
                str(evalf),
                "--seed",
                str(seed),
                "--server",
                url,
                "--admin-token-env",
                "TELA_DRIFT_ADMIN",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=_env(),
        )
        if r.returncode == 2 and "cannot tell two routers apart" in r.stderr:
            # labels on which both models score the same: tela promote cannot decide (bad input, exit 2)
            timings["promote"] = time.perf_counter() - t0
            why = r.stderr.strip().splitlines()[-1].removeprefix("Error: ")
            nan = float("nan")
            return {
                "decision": "undecided",
                "candidate": cand.name,
                "candidate_dir": str(cand),
                "delta": nan,
                "lo": nan,
                "hi": nan,
                "why": why,
            }
        if r.returncode not in (0, 1):
            sys.exit(f"tela promote failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        rec = json.loads(r.stdout)
        decision = "promote" if rec.get("decision") == "promote" else "refuse"
        nums = rec.get("numbers") or {}
        ap = nums.get(nums.get("metric", "apgr")) or {}
        delta, lo, hi = ap.get("diff", float("nan")), ap.get("lo", float("nan")), ap.get("hi", float("nan"))
        why = rec.get("why", "")
        new_dir = a.folder / "live" / rec["version"] if decision == "promote" else None
    else:  # the bench's stand-in for `tela promote`: better beyond the paired 95% bootstrap interval
        delta, lo, hi = paired_delta(w_of(cand, lab), w_of(cur, lab), lw, ls, seed)
        decision = "promote" if lo > 0 else "refuse"
        why = f"APGR {delta:+.3f}, interval [{lo:+.3f}, {hi:+.3f}]" + (" above 0" if lo > 0 else " reaches 0")
        new_dir = None
        if decision == "promote":
            new_dir = a.folder / "versions" / f"v{len(a.versions) + 1}"
            shutil.copytree(cand, new_dir)
            tmp = a.folder / "live.tmp"
            os.symlink(Path("versions") / new_dir.name, tmp)
            os.replace(tmp, a.folder / "live")
            reload(url)
    timings["promote"] = time.perf_counter() - t0
    if new_dir is not None:
        a.versions.append(new_dir)
        a.current = len(a.versions) - 1
    return {
        "decision": decision,
        "candidate": new_dir.name if new_dir else cand.name,
        "candidate_dir": str(new_dir or cand),
        "delta": delta,
        "lo": lo,
        "hi": hi,
        "why": why,
    }


# -- the report -----------------------------------------------------------------------------------


def _ms(v: list[float]) -> str:
    v = [x for x in v if x == x]
    if not v:
        return "-"
    return f"{np.mean(v):.3f} ± {np.std(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def report(
    rows: list[dict[str, Any]], decs: list[dict[str, Any]], args: argparse.Namespace, elapsed: float, promote_cli: bool
) -> None:
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    rounds = sorted({r["round"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    print(f"\n{len(seeds)} seed(s), mean ± sd; {elapsed / 60:.1f} min in all\n")
    print("APGR of the serving router on the round's unlabelled prompts")
    print("| arm | " + " | ".join(f"round {r}" for r in rounds) + " |")
    print("|---|" + "---|" * len(rounds))
    for arm in arms:
        cells = [_ms([x["apgr"] for x in rows if x["arm"] == arm and x["round"] == r]) for r in rounds]
        print(f"| {arm} | " + " | ".join(cells) + " |")
    for arm in arms:
        if arm == "frozen":
            continue
        cells = [
            _ms([x["apgr"] - x["apgr_v1_same"] for x in rows if x["arm"] == arm and x["round"] == r]) for r in rounds
        ]
        print(f"| {arm} − v1, same prompts | " + " | ".join(cells) + " |")
    for arm in arms:
        if arm == "frozen" or not any("apgr_latest_candidate" in x for x in rows):
            continue
        cells = [
            _ms(
                [
                    x["apgr_latest_candidate"] - x["apgr_v1_same"]
                    for x in rows
                    if x["arm"] == arm and x["round"] == r and "apgr_latest_candidate" in x
                ]
            )
            for r in rounds
        ]
        print(f"| {arm}, had every candidate been promoted − v1 | " + " | ".join(cells) + " |")
    print("\nat the end (last round)")
    print(
        "| arm | APGR last round | mean APGR rounds 2.. | gain over v1, rounds 2.. (same prompts) | quality served "
        "(mean outcome, all rounds) | strong share | cumulative regret | labels bought | $ for labels (shadow calls "
        "+ judge) | $ in all (answers + labels) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    last = rounds[-1]

    def per_seed(arm: str, f: Any, first: int = 2) -> list[float]:
        return [
            float(np.mean([f(x) for x in rows if x["arm"] == arm and x["seed"] == s and x["round"] >= first]))
            for s in seeds
        ]

    def spent(arm: str, parts: tuple[str, ...]) -> list[float]:
        return [
            sum(
                x.get("dollars_round", {}).get(k, float("nan"))
                for x in rows
                if x["arm"] == arm and x["seed"] == s
                for k in parts
            )
            for s in seeds
        ]

    for arm in arms:
        sel = [x for x in rows if x["arm"] == arm and x["round"] == last]
        learning = arm != "frozen"
        print(
            f"| {arm} | {_ms([x['apgr'] for x in sel])} | {_ms(per_seed(arm, lambda x: x['apgr']))} | "
            f"{_ms(per_seed(arm, lambda x: x['apgr'] - x['apgr_v1_same'])) if learning else '0'} | "
            f"{_ms(per_seed(arm, lambda x: x.get('quality', float('nan')), 1))} | "
            f"{_ms(per_seed(arm, lambda x: x['strong_share'], 1))} | "
            f"{_ms([x['regret'] for x in sel])} | {_ms([x['labels_total'] for x in sel])} | "
            f"{_ms(spent(arm, ('shadow', 'judge'))) if learning else '0'} | "
            f"{_ms(spent(arm, ('answers', 'shadow', 'judge')))} |"
        )
    print("\ndecisions (" + ("tela promote" if promote_cli else "the bench's stand-in for tela promote") + ")")
    for d in decs:
        print(
            f"  seed {d['seed']} {d['arm']} round {d['round']}: {d['decision']} {d['candidate']} over "
            f"{d['current']}: {d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] on {d['n']} labels"
            + (
                f"; next round {d['next_delta']:+.3f} [{d['next_lo']:+.3f}, {d['next_hi']:+.3f}]"
                f"{' WORSE' if d.get('next_worse') else ''}"
                if d.get("next_delta") is not None
                else ""
            )
        )
    for arm in dict.fromkeys(d["arm"] for d in decs):
        mine = [d for d in decs if d["arm"] == arm]
        promos = [d for d in mine if d["decision"] == "promote"]
        checked = [d for d in promos if d.get("next_delta") is not None]
        print(
            f"{arm}: {len(promos)} promotion(s), {sum(d['decision'] == 'refuse' for d in mine)} refusal(s), "
            f"{sum(d['decision'] == 'undecided' for d in mine)} undecided; of {len(checked)} promotion(s) with a "
            f"next round: {sum(d['next_delta'] < 0 for d in checked)} lower on its labels, "
            f"{sum(bool(d.get('next_worse')) for d in checked)} lower beyond the paired 95% interval"
        )
    # the goals
    for arm in ("promote", "uncertainty"):
        if arm in arms:
            gap = [x["apgr"] - x["apgr_v1_same"] for x in rows if x["arm"] == arm and x["round"] == last]
            later = [
                np.mean(
                    [
                        x["apgr"] - x["apgr_v1_same"]
                        for x in rows
                        if x["arm"] == arm and x["seed"] == s and x["round"] > 1
                    ]
                )
                for s in seeds
            ]
            print(
                f"goal 1: {arm} - frozen (v1) on the same prompts: last round {_ms(gap)}, mean of rounds 2.. "
                f"{_ms(later)} (goal >= +0.05)"
            )
            sel = [x for x in rows if x["arm"] == arm and x["round"] == last and "apgr_latest_candidate" in x]
            if sel:
                ungated = [x["apgr_latest_candidate"] - x["apgr_v1_same"] for x in sel]
                print(f"       {arm}, had every candidate been promoted: last round {_ms(ungated)}")


def plot(rows: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    rounds = sorted({r["round"] for r in rows})
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.2))

    def series(arm: str, f: Any) -> tuple[list[float], list[float]]:
        v = [[f(x) for x in rows if x["arm"] == arm and x["round"] == r] for r in rounds]
        return [float(np.nanmean(a)) for a in v], [float(np.nanstd(a)) for a in v]

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, arm in enumerate(arms):
        c = colours[k % len(colours)]
        m, s = series(arm, lambda x: x["apgr"])
        ax1.errorbar(rounds, m, yerr=s, fmt="o-", capsize=3, color=c, label=arm)
        if arm != "frozen":
            m, s = series(arm, lambda x: x["apgr"] - x["apgr_v1_same"])
            ax2.errorbar(rounds, m, yerr=s, fmt="o-", capsize=3, color=c, label=f"{arm} - frozen v1")
            if all("apgr_latest_candidate" in x for x in rows if x["arm"] == arm):
                m, _ = series(arm, lambda x: x["apgr_latest_candidate"] - x["apgr_v1_same"])
                ax2.plot(rounds, m, "x--", color=c, alpha=0.7, label=f"{arm}: every candidate promoted")
        m, _ = series(arm, lambda x: x["regret"])
        ax3.plot(rounds, m, "o-", color=c, label=arm)
    ax1.axhline(0.5, color="grey", linewidth=0.8, label="random routing")
    ax2.axhline(0.0, color="grey", linewidth=0.8)
    ax2.axhline(0.05, color="grey", linewidth=0.8, linestyle=":", label="goal +0.05")
    ax1.set_ylabel("APGR on the round's unlabelled prompts")
    ax2.set_ylabel("APGR gain over frozen v1, same prompts")
    ax3.set_ylabel("cumulative regret (oracle, same strong calls)")
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(rounds)
        ax.set_xlabel("round (held-out subjects arrive from round 2)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    if not os.environ.get("HF_HUB_OFFLINE"):
        os.environ["HF_HUB_OFFLINE"] = "1"
    _ = (re, urllib.error)
    main()
