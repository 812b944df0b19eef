#!/usr/bin/env python3
"""One turn of the loop that improves a served router, safe to run from cron.

    shadow log (+ feedback log) -> tela collect --from-log -> tela judge (-> tela feedback)
        -> tela run (a candidate) -> tela promote (refuse, or promote and reload the servers)

Each turn splits the labelled traffic in two: the labels that arrived since the last turn are the
recent traffic ``tela promote`` compares the candidate and the serving version on (neither trained
on them); the candidate is trained on your base data plus every older label. After the turn the new
labels count as old, so the next candidate trains on them. A turn with fewer than ``--min-labels``
new labels does nothing (exit 0) and they wait for the next one; so does a turn whose new labels
show no quality gap between the two models (``tela promote`` cannot compare routers on them).

Safe to run from cron:

* a lock (``WORK/.loop.lock``, ``flock``): a turn that finds another one running says so and exits 0;
* idempotent: ``tela collect`` and ``tela judge`` resume (an answer or a verdict is never paid for
  twice), the state (``WORK/loop-state.json``: which labels are old) is written atomically only once
  the decision is taken, and a turn run again with nothing new does nothing;
* exit codes: 0 promoted, refused or nothing to do; 3 promoted but a server did not reload; anything
  else is a failure (cron mails the output).

Example (the commands a turn runs are printed, so the log of a cron job says what happened)::

    python examples/loop/loop_turn.py --router runs/live --config serve.yaml --work runs/loop \\
        --shadow-log shadow.jsonl --model flash --model haiku \\
        --judge-args "--judge llm-judge --judge-model judge-mini --set judge.rate=all --max-cost 2" \\
        --train-data train.jsonl --run-args "--family embedding-knn \\
            --set source.models.weak=gemini-2.0-flash-001 --set source.models.strong=claude-3-haiku-20240307" \\
        --server http://127.0.0.1:8000

    # crontab: every night at 03:00
    0 3 * * *  cd /srv/router && .venv/bin/python examples/loop/loop_turn.py ... >> runs/loop/cron.log 2>&1

Standard library only; it runs the ``tela`` next to this Python (``--tela`` to name another).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import glob
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

STATE = "loop-state.json"
LOCK = ".loop.lock"
#: tela promote's exit codes
PROMOTED, REFUSED, BAD_INPUT, NOT_RELOADED = 0, 1, 2, 3
#: what tela promote says (exit 2) when the weak and strong models score the same on the labels
UNDECIDABLE = "cannot tell two routers apart"


def say(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}] {msg}", flush=True)


class TurnFailed(Exception):
    """A step failed; its output was printed."""


def run(tela: str, args: Sequence[Any], ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess[str]:
    cmd = [tela, *map(str, args)]
    say("$ " + shlex.join(["tela", *cmd[1:]]))
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    if out:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if r.returncode not in ok:
        raise TurnFailed(f"tela {cmd[1]} exited {r.returncode}")
    return r


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    # split on "\n" only: a JSON string may hold U+2028, which str.splitlines() breaks at
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def turn_lock(work: Path) -> Iterator[bool]:
    """Hold WORK/.loop.lock for the turn; yields False when another turn holds it."""
    fh = open(work / LOCK, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def label_key(rec: dict[str, Any]) -> str:
    """What identifies a label across turns: its record id (the request id of the logged request)."""
    return str(rec.get("id") or rec.get("prompt"))


def with_both_models(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The records that carry both models' outcomes, and how many did not, where the records name two
    models (a router between two: ``tela run`` and ``tela promote`` refuse records that lack one);
    all of them where they name more (a family that predicts each model's quality keeps them all)."""
    models = {m for r in records for m in (r.get("outcomes") or {})}
    if len(models) != 2:
        return records, 0
    kept = [r for r in records if models <= set(r.get("outcomes") or {})]
    return kept, len(records) - len(kept)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", type=Path, required=True, help="the versions folder tela serve serves")
    ap.add_argument("--config", type=Path, required=True, help="tela serve's config (upstreams, prices, keys)")
    ap.add_argument("--work", type=Path, required=True, help="this loop's folder (answers, labels, candidates)")
    ap.add_argument("--shadow-log", action="append", default=[], help="shadow log(s) to learn from (globs too)")
    ap.add_argument("--model", action="append", default=[], help="upstreams to collect, cheap first (tela collect)")
    ap.add_argument("--collect-args", default="", help="more tela collect options, e.g. '--max-cost 1'")
    ap.add_argument("--judge-args", required=True, help="tela judge's judge options, e.g. '--judge llm-judge ...'")
    ap.add_argument("--feedback-log", action="append", default=[], help="users' verdicts (tela serve feedback_log)")
    ap.add_argument("--decision-log", action="append", default=[], help="decision log(s), for tela feedback")
    ap.add_argument("--train-data", action="append", default=[], help="base training data (repeatable)")
    ap.add_argument("--run-args", default="", help="tela run options for the candidate, e.g. '--family ...'")
    ap.add_argument("--candidate", type=Path, default=None, help="take this router as the candidate; train none")
    ap.add_argument("--min-labels", type=int, default=100, help="fewest new labels a turn decides on")
    ap.add_argument("--server", action="append", default=[], help="tela serve to reload (http://HOST:PORT)")
    ap.add_argument("--admin-token-env", default="TELA_ADMIN_TOKEN")
    ap.add_argument("--seed", type=int, default=0, help="tela promote's bootstrap seed")
    ap.add_argument("--tela", default=None, help="the tela executable (default: the one beside this Python)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    tela = a.tela or str(Path(sys.executable).with_name("tela"))
    if not Path(tela).exists() and a.tela is None:
        tela = "tela"
    a.work.mkdir(parents=True, exist_ok=True)
    with turn_lock(a.work) as mine:
        if not mine:
            say(f"another turn holds {a.work / LOCK}; nothing done")
            return 0
        try:
            return turn(a, tela)
        except TurnFailed as e:
            say(f"turn failed: {e}; the next turn resumes where this one stopped")
            return 1


def turn(a: argparse.Namespace, tela: str) -> int:
    if not (a.router / "versions.json").is_file():
        raise TurnFailed(
            f"{a.router} is no versions folder: promote the first router by hand "
            f"(tela promote --router {a.router} --candidate DIR)"
        )
    logs = sorted({p for pat in a.shadow_log for p in (glob.glob(pat) or [pat])})
    if not logs:
        raise TurnFailed("no --shadow-log given")
    state_path = a.work / STATE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {"turns": [], "old": []}
    old = set(state["old"])
    n_turn = len(state["turns"]) + 1

    # 1. labels: the logged answers -> answers -> verdicts (both resume: nothing is paid for twice)
    models = [x for m in a.model for x in ("--model", m)]
    run(
        tela,
        [
            "collect",
            *[x for log in logs for x in ("--from-log", log)],
            "--config",
            a.config,
            *models,
            *shlex.split(a.collect_args),
            "-o",
            a.work / "answers",
        ],
    )
    run(
        tela,
        [
            "judge",
            "--answers",
            a.work / "answers",
            *shlex.split(a.judge_args),
            "--config",
            a.config,
            "-o",
            a.work / "judged",
        ],
    )
    records_file = a.work / "judged" / "records.jsonl"
    if a.feedback_log:  # users' verdicts beside the judge's (a request both judged and rated keeps the judge's)
        src = [x for log in (a.decision_log or logs) for x in ("--from-log", log)]
        records_file = a.work / "labels" / "records.jsonl"
        run(tela, ["feedback", *a.feedback_log, *src, "--with", a.work / "judged", "-o", a.work / "labels", "--force"])
    records, left_out = with_both_models(read_jsonl(records_file))
    if left_out:
        say(
            f"left out {left_out} record(s) that carry one model's outcome only (users' verdicts from tela "
            "feedback on requests nobody judged): a router between two models trains and is compared on both"
        )
    new = [r for r in records if label_key(r) not in old]
    said = f"{len(records)} labels, {len(new)} new since the last turn"
    if len(new) < a.min_labels:
        say(f"{said}: under --min-labels {a.min_labels}; nothing decided, they wait for the next turn")
        return 0
    say(said)

    # 2. the candidate: base data + the old labels (the new ones are the comparison's)
    turn_dir = a.work / f"turn-{n_turn:04d}"
    turn_dir.mkdir(exist_ok=True)
    recent = turn_dir / "recent.jsonl"
    write_atomic(recent, "".join(json.dumps(r) + "\n" for r in new))
    if a.candidate is not None:
        cand = a.candidate
    else:
        older = turn_dir / "older.jsonl"
        write_atomic(older, "".join(json.dumps(r) + "\n" for r in records if label_key(r) in old))
        cand = turn_dir / "candidate"
        data = [x for d in a.train_data for x in ("--data", d)]
        if old:
            data += ["--data", older]
        if not data:
            raise TurnFailed("no --train-data and no older labels to train a candidate on")
        run(tela, ["run", *data, *shlex.split(a.run_args), "-o", cand, "-q"])

    # 3. the decision: tela promote compares both on the recent labels; promotes (and reloads) or refuses
    servers = [x for s in a.server for x in ("--server", s)]
    r = run(
        tela,
        [
            "promote",
            "--router",
            a.router,
            "--candidate",
            cand,
            "--data",
            recent,
            "--seed",
            a.seed,
            *servers,
            "--admin-token-env",
            a.admin_token_env,
            "--json",
        ],
        ok=(PROMOTED, REFUSED, NOT_RELOADED, BAD_INPUT),
    )
    if r.returncode == BAD_INPUT:
        if UNDECIDABLE not in r.stderr:
            raise TurnFailed("tela promote refused its input (above)")
        # the recent labels hold no quality gap between the models: keep them new, decide with more
        say(f"the {len(new)} new labels cannot tell two routers apart; nothing decided, they wait for the next turn")
        return 0
    record = json.loads(r.stdout) if r.stdout.strip() else {}
    decision = record.get("decision", "refuse" if r.returncode == REFUSED else "promote")
    state["turns"].append(
        {
            "turn": n_turn,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "labels": len(records),
            "recent": len(new),
            "candidate": str(cand),
            "decision": decision,
            "version": record.get("version"),
            "why": record.get("why"),
            "record": record.get("record"),
        }
    )
    state["old"] = sorted(old | {label_key(x) for x in new})
    write_atomic(state_path, json.dumps(state, indent=1) + "\n")
    say(
        f"turn {n_turn}: {decision}"
        + (f" {record.get('version')}" if decision == "promote" else "")
        + f" ({record.get('why', '')})"
    )
    return NOT_RELOADED if r.returncode == NOT_RELOADED else 0


if __name__ == "__main__":
    sys.exit(main())
