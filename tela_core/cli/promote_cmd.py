"""``tela promote`` and ``tela rollback``: change a versions folder's current router, as a recorded
step, and tell the servers.

A versions folder (:mod:`tela_core.routing.versions`) holds a router name's versions (``v1``,
``v2``, ...) and ``versions.json``, which says which is current. ``tela serve --router live``
serves the current version and follows ``versions.json``; ``--server URL`` (repeatable) also
reloads each running server at once through its authenticated ``POST /admin/reload``.

Exit codes: 0 promoted (or rolled back) and every ``--server`` reloaded; 1 the candidate was
refused (the record says why, and nothing changed); 2 bad input (nothing changed); 3 promoted (or
rolled back) and recorded, but a ``--server`` did not reload (each is named).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from tela_core.data.detect import read_records
from tela_core.eval.outcomes import model_names, resolve_pair
from tela_core.eval.promotion import (
    PROMOTE,
    as_json_numbers,
    check_comparable,
    check_not_trained_on,
    check_sampling_mix,
    compare,
    sampling_weights,
)
from tela_core.infra.errors import TelaError
from tela_core.infra.io import dumps_json
from tela_core.routing import versions as vs
from tela_core.routing.artifact import read_manifest, router_version
from tela_core.routing.router import Router

from .options import json_option, pair_options, source_option, trust_option

__all__ = ["register", "promote_cmd", "rollback_cmd", "REFUSED", "SERVERS_FAILED", "ADMIN_TOKEN_ENV"]

#: exit code of a refused candidate
REFUSED = 1
#: exit code when the step was taken and recorded but a --server did not reload
SERVERS_FAILED = 3
#: where the admin token is read from by default (what the deployment guide's serve config names)
ADMIN_TOKEN_ENV = "TELA_ADMIN_TOKEN"


def register(cli: click.Group) -> None:
    """Attach ``tela promote`` and ``tela rollback`` to ``cli``."""
    cli.add_command(promote_cmd)
    cli.add_command(rollback_cmd)


def _server_options(f: Any) -> Any:
    f = click.option(
        "--admin-token-env",
        "admin_token_env",
        default=ADMIN_TOKEN_ENV,
        show_default=True,
        metavar="NAME",
        help="Environment variable holding the servers' admin token (their admin_token_env).",
    )(f)
    return click.option(
        "--server",
        "servers",
        multiple=True,
        metavar="URL",
        help="A running tela serve (http://HOST:PORT) to reload through POST /admin/reload (repeatable); "
        "servers also follow the versions folder by themselves.",
    )(f)


def _versions_option(f: Any) -> Any:
    return click.option(
        "--router",
        "router",
        required=True,
        type=click.Path(path_type=Path, file_okay=False),
        metavar="DIR",
        help="The versions folder that tela serve serves (v1, v2, ... and versions.json); "
        "the first promotion creates it.",
    )(f)


@click.command("promote")
@_versions_option
@click.option(
    "--candidate",
    "candidate",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="The candidate router (a tela run / tela zoo output folder); copied into the versions folder if promoted. "
    "With --train-config, the folder it is trained into first.",
)
@click.option(
    "--train-config",
    "train_config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Train the candidate first: tela run --config FILE --output CANDIDATE (its data must leave out --data's).",
)
@click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    default=None,
    help="Labelled recent traffic neither router trained on (tela collect / tela judge records). "
    "Not needed for the first version.",
)
@source_option()
@pair_options
@click.option(
    "--resamples",
    default=1000,
    show_default=True,
    type=click.IntRange(100),
    help="Bootstrap resamples (at least 100: with fewer, the interval's ends are a resample or two).",
)
@click.option(
    "--confidence",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0.5, 1.0, min_open=False, max_open=True),
    help="Confidence of the paired bootstrap interval on APGR (AIQ among N models).",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the bootstrap's draws.")
@click.option(
    "--unweighted",
    is_flag=True,
    help="Count every labelled prompt alike, ignoring the shadow sampling probability (sampling_p) records "
    "carry; by default each prompt counts 1/p, so uncertainty-sampled labels stand for the traffic.",
)
@click.option("--dry-run", is_flag=True, help="Evaluate and print the decision; change and record nothing.")
@_server_options
@trust_option
@json_option
def promote_cmd(
    router: Path,
    candidate: Path,
    train_config: Path | None,
    data: Path | None,
    source_name: str,
    weak_model: str | None,
    strong_model: str | None,
    resamples: int,
    confidence: float,
    seed: int,
    unweighted: bool,
    dry_run: bool,
    servers: tuple[str, ...],
    admin_token_env: str,
    trust_remote_code: bool,
    as_json: bool,
) -> None:
    """Promote a candidate router to the current version if it beats the current one.

    Both routers score the same labelled traffic (--data), which neither trained on; the
    candidate is promoted when its APGR (among N models: AIQ, docs/deployment.md) is better beyond
    the paired bootstrap interval, or equal
    within it and cheaper (mean cost per prompt where the data has costs, else the share of
    prompts sent to the strong model) without a worse mean outcome at its saved policy beyond the
    interval. Labels from a shadow log carry the probability each request was sampled with; each
    prompt then counts 1/p (--unweighted: alike), so uncertainty sampling's labels stand for the
    traffic. A promotion copies it into the versions folder as the next
    version (vN), makes it current and writes a record (data, numbers, decision, why) under
    DIR/records/; a refusal writes a record too and says which number failed and by how much.
    The first promotion into a new folder needs no --data: there is nothing to compare with.

    With --train-config FILE the candidate is trained first (tela run --config FILE --output
    CANDIDATE); leave --data's prompts out of its training data.

    Exit codes: 0 promoted; 1 refused; 2 bad input; 3 promoted but a --server did not reload.

    \b
    Examples:
      tela promote --router live --candidate runs/knn-v1
      tela promote --router live --candidate runs/knn-v2 --data labels/this-week.jsonl \\
                   --server http://10.0.0.5:8000 --server http://10.0.0.6:8000
      tela promote --router live --candidate runs/knn-v3 --train-config run.yaml --data labels/this-week.jsonl
    """
    token = _admin_token(servers, admin_token_env)
    if train_config is not None:
        _train(train_config, candidate)
    read_manifest(candidate)  # a bad candidate fails before any work
    vs.check_not_inside(router, candidate)
    if (router / "tela.json").exists():
        raise TelaError(
            f"{router}: is a router folder, not a versions folder; give a new folder (e.g. {router.name}-live) "
            "and serve that one"
        )
    first = not (router / vs.VERSIONS_FILE).exists() or vs.read_state(router).current is None
    if not first and data is None:
        raise TelaError(f"{router} has a current version: give --data, labelled traffic to compare the candidate on")
    if first:  # nothing to compare with, but it must load: servers following the folder would not
        Router.load(candidate, trust_remote_code=trust_remote_code)
    if dry_run:
        record = _evaluate(
            router,
            candidate,
            data,
            first,
            source_name,
            weak_model,
            strong_model,
            trust_remote_code,
            resamples,
            confidence,
            seed,
            not unweighted,
        )
        record["dry_run"] = True
        _say(record, as_json, router)
        if record["decision"] != PROMOTE:
            click.get_current_context().exit(REFUSED)
        return
    router.parent.mkdir(parents=True, exist_ok=True)
    with vs.versions_lock(router):
        vs.init(router)
        vs.recover(router)  # what a killed promote or rollback left
        first = vs.read_state(router).current is None
        record = _evaluate(
            router,
            candidate,
            data,
            first,
            source_name,
            weak_model,
            strong_model,
            trust_remote_code,
            resamples,
            confidence,
            seed,
            not unweighted,
        )
        if record["decision"] == PROMOTE:
            version = vs.add_version(router, candidate)
            record["version"] = version
            path = vs.next_record_path(router, "promote", version)
            record["record"] = str(path.relative_to(router))
            vs.record_step(path, record, lambda: vs.set_current(router, version, "promote", record=record["record"]))
        else:
            path = vs.next_record_path(router, "refuse", None)
            record["record"] = str(path.relative_to(router))
            vs.record_step(path, record, lambda: vs.note_step(router, "refuse", record=record["record"]))
    if record["decision"] != PROMOTE:
        _say(record, as_json, router)
        click.get_current_context().exit(REFUSED)
    record["servers"] = _reload_all(servers, token, router, record["version"])
    vs.write_record(path, record)
    _say(record, as_json, router)
    if any(not s["ok"] for s in record["servers"]):
        click.get_current_context().exit(SERVERS_FAILED)


@click.command("rollback")
@_versions_option
@click.option("--reason", default=None, metavar="TEXT", help="Why, for the record.")
@_server_options
@json_option
def rollback_cmd(
    router: Path, reason: str | None, servers: tuple[str, ...], admin_token_env: str, as_json: bool
) -> None:
    """Go back to the version that was current before this one, as a recorded step.

    The current version stays in the folder (a later tela promote may bring a new one); the
    record (DIR/records/NNNN-rollback-vN.json) says from which version to which, when and why.

    Exit codes: 0 rolled back; 2 bad input or no earlier version; 3 rolled back but a --server
    did not reload.

    \b
    Examples:
      tela rollback --router live --reason "complaints about v3 since 14:00"
      tela rollback --router live --server http://10.0.0.5:8000 --server http://10.0.0.6:8000
    """
    token = _admin_token(servers, admin_token_env)
    with vs.versions_lock(router):
        state = vs.read_state(router)
        vs.recover(router)  # what a killed promote or rollback left
        if state.current is None:
            raise TelaError(f"{router}: no current version to roll back")
        if not state.earlier:
            raise TelaError(f"{router}: {state.current} is the first version; there is no earlier one to go back to")
        target = state.earlier[-1]
        vs.version_dir(router, target, f"{router}: the version before {state.current},")  # before any record
        path = vs.next_record_path(router, "rollback", target)
        record: dict[str, Any] = {
            "action": "rollback",
            "time": _now(),
            "from": state.current,
            "to": target,
            "reason": reason,
            "decision": "rollback",
            "why": f"rolled back from {state.current} to {target}" + (f": {reason}" if reason else ""),
            "version": target,
            "record": str(path.relative_to(router)),
        }
        vs.record_step(path, record, lambda: vs.set_current(router, target, "rollback", record=record["record"]))
    record["servers"] = _reload_all(servers, token, router, target)
    vs.write_record(path, record)
    _say(record, as_json, router)
    if any(not s["ok"] for s in record["servers"]):
        click.get_current_context().exit(SERVERS_FAILED)


# -- evaluation -----------------------------------------------------------------------------------


def _train(config: Path, output: Path) -> None:
    """``tela run --config CONFIG --output OUTPUT`` in a process of its own (what it prints goes to
    stderr, so that --json's stdout stays one document); a failed run is bad input, naming it."""
    if not config.is_file():
        raise TelaError(f"--train-config {config}: file not found")
    cmd = [sys.executable, "-c", "from tela_core.cli.main import main; main()", "run", "--config", str(config)]
    click.echo(f"training the candidate: tela run --config {config} --output {output}", err=True)
    done = subprocess.run([*cmd, "--output", str(output), "--quiet"], capture_output=True, text=True)
    said = (done.stdout + done.stderr).strip()
    if said:
        click.echo(said, err=True)
    if done.returncode != 0:
        last = said.splitlines()[-1] if said else "no output"
        raise TelaError(f"training the candidate with --train-config {config} failed (exit {done.returncode}): {last}")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _describe(path: Path, version: str | None = None) -> dict[str, Any]:
    return {"path": os.path.abspath(path), "version": version, "router_version": router_version(path)}


def _evaluate(
    router: Path,
    candidate: Path,
    data: Path | None,
    first: bool,
    source_name: str,
    weak_model: str | None,
    strong_model: str | None,
    trust_remote_code: bool,
    resamples: int,
    confidence: float,
    seed: int,
    weighted: bool = True,
) -> dict[str, Any]:
    """The record of the decision, before anything is changed."""
    record: dict[str, Any] = {"action": "promote", "time": _now(), "candidate": _describe(candidate)}
    if first:
        record.update(
            current=None,
            data=None,
            numbers=None,
            decision=PROMOTE,
            why="the first version: there is no current one to compare with",
        )
        return record
    assert data is not None
    state = vs.read_state(router)
    current_dir = vs.current_dir(router)
    record["current"] = _describe(current_dir, state.current)
    records, source, _info = read_records(data, source_name, weak_model, strong_model)
    try:
        if weighted:
            check_sampling_mix(records)  # records with and without p, before a duplicate is dropped
        records, duplicates = _unique_prompts(records)
        sampling_weights(records, weighted)  # weights worth too few prompts, before the routers load
    except TelaError as e:
        raise TelaError(f"{data}: {e}") from None
    prompts = [r.prompt for r in records]
    checked = {
        "candidate": check_not_trained_on("candidate", read_manifest(candidate), prompts),
        "current": check_not_trained_on(f"current ({state.current})", read_manifest(current_dir), prompts),
    }
    cand = Router.load(candidate, trust_remote_code=trust_remote_code)
    cur = Router.load(current_dir, trust_remote_code=trust_remote_code)
    check_comparable(cand, cur)
    have = set(model_names(records))
    pair = (cur.models[0], cur.models[-1])
    lack = [m for m in pair if m not in have]
    if len(cur.models) == 2 and lack and weak_model is None and strong_model is None:
        some = _lacking(records, lack, costs=False)
        if some is not None:  # some records have them: say which do not
            raise TelaError(f"{data}: {some} (the routers choose between {pair[0]} and {pair[1]})")
        raise TelaError(
            f"{data}: no outcomes for {', '.join(lack)}, which the routers choose between (the data has "
            f"{', '.join(sorted(have)) or 'none'}); label their answers, or name the data's models that stand "
            "for them with --weak-model/--strong-model"
        )
    if len(cand.models) > 2:
        nowhere = [m for m in cand.models if not any(m in (r.outcomes or {}) for r in records)]
        if nowhere:
            raise TelaError(
                f"{data}: no record has an outcome for {', '.join(nowhere)}, which the candidate routes to; routers "
                "among N models are compared on every model's outcome and cost"
            )
        some = _lacking(records, cand.models, costs=True)
        if some is not None:
            raise TelaError(f"{data}: {some} (routers among N models are compared on every model's outcome and cost)")
    weak, strong = resolve_pair(
        records,
        weak_model or (cur.models[0] if cur.models[0] in have else None),
        strong_model or (cur.models[-1] if cur.models[-1] in have else None),
        source,
    )
    if len(cur.models) == 2 and (weak, strong) == (pair[1], pair[0]):
        raise TelaError(
            f"--weak-model {weak} / --strong-model {strong} are the wrong way round: the routers send the "
            f"prompts they find hard to {pair[1]}, their strong model"
        )
    c = compare(
        cand, cur, records, weak, strong, resamples=resamples, confidence=confidence, seed=seed, weighted=weighted
    )
    record.update(
        data={
            "path": os.path.abspath(data),
            "records": len(records),
            "duplicates_dropped": duplicates,
            "trained_on": checked,
        },
        numbers=as_json_numbers(c),
        decision=c.decision,
        why=c.why,
        failed=c.failed,
    )
    return record


def _lacking(records: list[Any], models: Any, costs: bool) -> str | None:
    """Which records have no outcome (or, with ``costs``, no cost) for one of ``models`` (of those
    some record has an outcome for, without ``costs``), said in a few words: the record by its id
    (or prompt) where it is the only one, else how many and the first; or None."""
    present = set().union(*(r.outcomes or {} for r in records))
    first, lacked, count = "", [], 0
    for r in records:
        lack = [
            m
            for m in models
            if (costs or m in present) and (m not in (r.outcomes or {}) or (costs and m not in (r.costs or {})))
        ]
        if lack:
            count += 1
            lacked += [m for m in lack if m not in lacked]
            first = first or (f"record {r.id!r}" if r.id else f"the record of prompt {r.prompt[:40]!r}")
    what = f"no outcome{' or cost' if costs else ''} for"
    if count == 0:
        return None
    if count == 1:
        return f"{first} has {what} {', '.join(lacked)}; label it, or leave it out of the evaluation"
    return (
        f"{count} of the {len(records)} records have {what} {' or '.join(lacked)} (the first: {first}); label them, "
        "or leave them out of the evaluation"
    )


def _unique_prompts(records: list[Any]) -> tuple[list[Any], int]:
    """The records with each prompt once (the first record of a prompt kept), and how many were
    dropped: the bootstrap resamples prompts, and a prompt counted twice would narrow the interval
    as if it were two pieces of evidence. A prompt sampled more than once with different shadow
    sampling probabilities keeps the mean of their weights (``sampling_p`` ``1 / mean(1/p)``), so
    its weight does not depend on which of its lines comes first."""
    import dataclasses

    first: dict[str, int] = {}
    kept: list[Any] = []
    ps: list[list[float]] = []
    for r in records:
        i = first.get(r.prompt)
        if i is None:
            first[r.prompt] = len(kept)
            kept.append(r)
            ps.append([])
            i = first[r.prompt]
        if r.sampling_p is not None:
            ps[i].append(float(r.sampling_p))
    for i, r in enumerate(kept):
        if len(set(ps[i])) > 1:  # 1 / mean(1/p), as p_min / mean(p_min/p): no 1/p overflows
            low = min(ps[i])
            mean = math.fsum(low / p for p in ps[i]) / len(ps[i])  # fsum: the same sum in any order
            kept[i] = dataclasses.replace(r, sampling_p=min(1.0, low / mean))
    return kept, len(records) - len(kept)


# -- servers --------------------------------------------------------------------------------------


def _admin_token(servers: tuple[str, ...], env: str) -> str | None:
    if not servers:
        return None
    token = (os.environ.get(env) or "").strip()
    if not token:
        raise TelaError(f"--server needs the servers' admin token in ${env} (or name the variable: --admin-token-env)")
    for url in servers:
        if not url.startswith(("http://", "https://")):
            raise TelaError(f"--server {url}: expected http://HOST:PORT")
    return token


#: seconds to open a connection to a --server (a host that drops packets fails here, not after the reload's wait)
CONNECT_TIMEOUT_S = 10.0
#: seconds a --server may take to answer its reload (loading a large router takes a while)
RELOAD_TIMEOUT_S = 300.0


def _reload_all(servers: tuple[str, ...], token: str | None, router: Path, version: str) -> list[dict[str, Any]]:
    """Reload every server at once (each waits for its own reload), in the order given."""
    if len(servers) < 2:
        return [_reload(url, token or "", router, version) for url in servers]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(servers))) as pool:
        return list(pool.map(lambda url: _reload(url, token or "", router, version), servers))


def _reload(url: str, token: str, router: Path, version: str) -> dict[str, Any]:
    """POST URL/admin/reload; ok when it answered 200 (or 202, with --workers) and every router it
    serves from this versions folder now serves ``version``."""
    req = urllib.request.Request(
        url.rstrip("/") + "/admin/reload", data=b"", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not urllib.request.getproxies().get(parts.scheme):  # through a proxy, the proxy connects
            socket.create_connection((parts.hostname or "", port), timeout=CONNECT_TIMEOUT_S).close()
        with urllib.request.urlopen(req, timeout=RELOAD_TIMEOUT_S) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return {"url": url, "ok": False, "error": f"not reached: {reason}"}
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        answer = {}
    if status not in (200, 202):
        said = (answer.get("error") or {}).get("message") if isinstance(answer.get("error"), dict) else None
        failed = [f"{n}: {r.get('error')}" for n, r in (answer.get("routers") or {}).items() if not r.get("ok")]
        return {"url": url, "ok": False, "error": f"HTTP {status}: " + (said or "; ".join(failed) or "reload failed")}
    mine = os.path.realpath(router)
    routers = {n: r for n, r in (answer.get("routers") or {}).items() if isinstance(r, dict)}
    serving = {n: r.get("version") for n, r in routers.items() if r.get("versions") == mine}
    if not serving:  # the folder mounted elsewhere on that machine: a versions folder of the same name
        serving = {
            n: r.get("version")
            for n, r in routers.items()
            if r.get("versions") and os.path.basename(str(r["versions"])) == os.path.basename(mine)
        }
    if not serving:
        names = ", ".join(sorted(routers)) or "none"
        return {
            "url": url,
            "ok": False,
            "error": f"reloaded, but it serves no router from the versions folder {router} (its routers: {names})",
        }
    if status == 202:
        return {"url": url, "ok": True, "restarting_workers": True, "routers": serving}
    wrong = {n: v for n, v in serving.items() if v != version}
    if wrong:
        return {
            "url": url,
            "ok": False,
            "error": "reloaded, but still serving " + ", ".join(f"{n} {v}" for n, v in wrong.items()),
        }
    return {"url": url, "ok": True, "routers": serving}


def _say(record: dict[str, Any], as_json: bool, folder: Path) -> None:
    if as_json:
        click.echo(dumps_json(record, indent=2))
        return
    action, decision = record.get("action"), record.get("decision")
    if action == "rollback":
        click.echo(f"rolled back: {record['from']} -> {record['to']}")
    elif record.get("dry_run"):
        click.echo(
            f"would {'promote' if decision == PROMOTE else 'refuse'} (dry run, nothing changed): {record['why']}"
        )
    elif decision == PROMOTE:
        click.echo(f"promoted: {record.get('version') or 'candidate'} ({record['why']})")
    else:
        click.echo(f"refused: {record['why']}", err=True)
    if record.get("record"):
        click.echo(f"record: {folder / record['record']}")  # the file, wherever the command ran
    for s in record.get("servers") or []:
        if s["ok"]:
            what = "restarting its workers" if s.get("restarting_workers") else "reloaded"
            click.echo(f"server {s['url']}: {what}")
        else:
            click.echo(f"server {s['url']}: did not reload: {s['error']}", err=True)
