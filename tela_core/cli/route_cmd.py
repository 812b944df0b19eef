"""``tela route`` and ``tela calibrate``: use a trained router.

``tela route`` scores prompts with the router's scorer (for ``score-token``: one forward pass
each) and applies the policy saved beside it (``policy.json``): per prompt it prints the score
distribution, the expected score, w and the chosen model. ``tela calibrate`` sets the threshold
that sends a target share of prompts to the strong model, measured on calibration prompts the
router did not train on, and saves it as the router's ``calibrated`` policy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

import click

from ..detect import DETECT
from .router_options import load_router, parse_policy_sets, policy_options, score_batch_option, trust_option

__all__ = ["register", "route", "calibrate", "read_prompt_lines"]


def register(cli: click.Group) -> None:
    """Attach ``tela route`` and ``tela calibrate`` to ``cli``."""
    cli.add_command(route)
    cli.add_command(calibrate)


def read_prompt_lines(fh: Iterable[str], where: str) -> list[str]:
    """Prompts from lines of text: a line starting with ``{`` is a JSON object with a ``"prompt"``
    string (seed JSONL and outcome JSONL qualify), one starting with ``"`` a JSON string, any other
    non-blank line is the prompt itself. Bad JSON raises :class:`InputError` with the line number."""
    from ..errors import InputError
    from ..records import check_text, loads_json

    prompts = []
    for lineno, raw in enumerate(fh, start=1):
        line = raw.rstrip("\r\n")
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a byte order mark is not part of the prompt
        if not line.strip():
            continue
        head = line.lstrip()[:1]
        if head in ("{", '"'):
            obj = loads_json(line, where, lineno)  # bad JSON, NaN/Infinity, too deep: one line
            if isinstance(obj, dict):
                obj = obj.get("prompt")
                if not isinstance(obj, str) or not obj.strip():
                    raise InputError(where, lineno, 'expected an object with a non-empty "prompt" string')
            elif not isinstance(obj, str) or not obj.strip():
                raise InputError(where, lineno, "expected a JSON string or an object with a \"prompt\"")
            prompts.append(check_text(obj, where, lineno, "the prompt"))
        else:
            prompts.append(line)
    return prompts


def _read_file(path: Path) -> list[str]:
    from ..errors import InputError

    if str(path) == "-":
        return read_prompt_lines(sys.stdin, "<stdin>")
    if not path.is_file():
        raise InputError(path, None, "is a directory, expected a file of prompts" if path.is_dir() else "file not found")
    lines = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise InputError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    prompts = read_prompt_lines(lines, str(path))
    if not prompts:
        raise InputError(path, None, "no prompts (empty, or only blank lines)")
    return prompts


def _calibration_prompts(data: Path, source_name: str, protocol: str | None) -> list[str]:
    """Prompts of ``data``: through its data source (outcome CSVs, seed JSONL, …; the protocol's
    train side when ``protocol`` is given), or, for a JSONL file of bare ``{"prompt": …}`` lines
    or a text file, as `tela route --file` reads them."""
    from ..detect import detect_source
    from ..errors import InputError
    from ..detect import read_records

    if not Path(data).exists():
        raise InputError(data, None, "file not found")
    name: str | None = source_name
    if name in (None, DETECT) and Path(data).is_file():
        try:
            name = detect_source(data)
        except InputError:
            name = None  # not a data source's file: read it as prompt lines
    if protocol is None and (name is None or name == "jsonl") and Path(data).is_file():
        prompts = _read_file(Path(data))
        if not prompts:
            raise InputError(data, None, "no prompts (empty, or only blank lines)")
        return prompts
    records, _source, _info = read_records(data, source_name, protocol=protocol, side="train")
    return [r.prompt for r in records]


@click.command()
@click.option("--router", required=True, type=click.Path(path_type=Path), help="The router dir (from `tela run`).")
@click.argument("questions", nargs=-1)
@click.option("--file", "-f", "file", type=click.Path(path_type=Path), default=None,
              help="Read prompts from a file ('-' for stdin): JSONL with a \"prompt\" per line, or one prompt per line.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per prompt (prompt, probs, expected, w, threshold, model).")
@click.option("--threshold", default=None, type=float,
              help="Route strong iff w >= this, instead of the saved policy (two-model routers).")
@score_batch_option
@policy_options
@trust_option
def route(
    router: Path, questions: tuple[str, ...], file: Path | None, as_json: bool, threshold: float | None,
    score_batch_size: int | None, policy_name: str | None, policy_sets: tuple[str, ...], trust_remote_code: bool,
) -> None:
    """Score prompts and show the model the router's saved policy picks for each.

    \b
    Examples:
      tela route --router runs/demo "What is the capital of France?" "Prove Fermat's last theorem."
      tela route --router runs/demo --file prompts.jsonl --json
      tela route --router runs/demo --threshold 0.3 "Integrate x^9."
      cat prompts.txt | tela route --router runs/demo
    """
    from ..artifact import read_manifest
    from ..errors import TelaError

    read_manifest(router)  # a bad router dir fails before reading prompts
    prompts = list(questions)
    for i, q in enumerate(prompts, start=1):
        try:
            q.encode("utf-8")
        except UnicodeEncodeError as e:  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise TelaError(f"question {i} is not valid UTF-8 text (at character {e.start}); pass UTF-8") from None
    if file is not None:
        prompts += _read_file(file)
    if not prompts and not sys.stdin.isatty():
        prompts = read_prompt_lines(sys.stdin, "<stdin>")
    if not prompts:
        raise TelaError('no prompts: pass questions as arguments, --file FILE, or pipe them on stdin')
    r = load_router(router, trust_remote_code, score_batch_size, policy_name, policy_sets)
    scores = r.scores(prompts)
    decisions = r.decisions(scores, threshold)
    rows = []
    for i, (p, d) in enumerate(zip(prompts, decisions)):
        rows.append(
            {
                "prompt": p,
                "probs": [round(float(x), 6) for x in scores.probs[i]] if scores.probs is not None else None,
                "expected": round(d.expected, 6) if d.expected is not None else None,
                "w": round(d.w, 6),
                "threshold": d.threshold,
                "model": d.model,
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    spec = dict(r.policy_spec)
    if threshold is not None:
        spec = {"name": "threshold", "options": {"threshold": threshold}, "models": r.models}
    _print_routes(rows, spec)


def _policy_title(spec: dict[str, Any]) -> str:
    opts = spec.get("options") or {}
    shown = {k: opts[k] for k in ("threshold", "strong_share", "bounds") if opts.get(k) is not None}
    parts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
    return f"policy {spec.get('name')} ({parts}) over {' < '.join(spec.get('models') or [])}"


def _print_routes(rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not con.is_terminal:  # piped or captured: room for the prompts rather than 80 columns
        con = Console(width=160)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True, title=_policy_title(spec), title_justify="left")
    t.add_column("#", justify="right", no_wrap=True, min_width=1)
    t.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=max(12, con.width - 56 - max(len(r["model"]) for r in rows)))
    for k in range(1, 6):
        t.add_column(f"[[{k}]]", justify="right", no_wrap=True, min_width=5)
    t.add_column("E", justify="right", no_wrap=True, min_width=4)
    t.add_column("w", justify="right", no_wrap=True, min_width=5)
    t.add_column("model", no_wrap=True, min_width=6)
    for i, r in enumerate(rows, start=1):
        probs = [f"{x:.3f}" for x in r["probs"]] if r["probs"] else ["–"] * 5
        exp = f"{r['expected']:.2f}" if r["expected"] is not None else "–"
        t.add_row(str(i), r["prompt"].replace("\n", " "), *probs, exp, f"{r['w']:.3f}", r["model"])
    con.print(t)
    click.echo("[[k]]: probability of score k (the weak model's answer quality, 1..5); E: expected score; w = P([[1]]..[[3]])")


@click.command()
@click.option("--router", required=True, type=click.Path(path_type=Path), help="The router dir to calibrate.")
@click.option("--data", default=None, type=click.Path(path_type=Path), help="Calibration prompts (any data source; prompts the router did not train on).")
@click.option("--traffic", default=None, type=click.Path(path_type=Path), metavar="LOG",
              help="Instead of --data: a `tela serve` decision log; calibrate on the scores your traffic got.")
@click.option("--traffic-router", default=None, metavar="NAME", help="With --traffic: the served router's name in the log (needed when it holds several).")
@click.option("--strong-share", required=True, type=float, help="Target share of prompts sent to the strong model, in [0, 1].")
@click.option("--source", "source_name", default=DETECT, show_default=True, metavar="NAME", help="Data source reading --data.")
@click.option("--protocol", default=None, metavar="NAME", help="Calibrate on the protocol's *train* side only (e.g. mmlu-heldout: the 42 training subjects).")
@score_batch_option
@click.option("--no-cache", is_flag=True, help="Score again even if cached scores exist.")
@policy_options
@trust_option
def calibrate(
    router: Path, data: Path | None, traffic: Path | None, traffic_router: str | None, strong_share: float, source_name: str,
    protocol: str | None, score_batch_size: int | None, no_cache: bool, policy_name: str | None, policy_sets: tuple[str, ...],
    trust_remote_code: bool,
) -> None:
    """Set the threshold that sends --strong-share of the calibration prompts to the strong model.

    The threshold is the one whose strong-call share over the prompts of --data is closest to the
    target (the (1 − share) quantile of w, unless ties in w make another share closer); it is saved in the
    router's policy.json as the `calibrated` policy (or the --policy given, which must be one that
    calibrates); the models listed there are kept. With --traffic, w comes from a `tela serve`
    decision log instead: the scores the router gave your users' requests (nothing is rescored).

    \b
    Examples:
      tela calibrate --router runs/knn --data calib.jsonl --strong-share 0.3
      tela calibrate --router runs/knn --traffic decisions.jsonl --strong-share 0.3
    """
    from .. import evaluation as ev
    from ..artifact import read_manifest, write_policy
    from ..errors import TelaError
    from ..plugins import get_registry

    if not 0.0 <= strong_share <= 1.0:
        raise TelaError(f"--strong-share must be in [0, 1], got {strong_share}")
    if (data is None) == (traffic is None):
        raise TelaError("give calibration prompts (--data FILE) or a `tela serve` decision log (--traffic LOG), one of them")
    if traffic is not None:
        from ..locks import output_lock
        from ..serve.decisions import calibrate_from_traffic

        click.get_current_context().with_resource(output_lock(router))  # one writer of policy.json

        done = calibrate_from_traffic(router, traffic, strong_share, traffic_router, policy_name or "calibrated", parse_policy_sets(policy_sets))
        o = done["options"]
        click.echo(
            f"threshold {o['threshold']:.6f}: {o['achieved_share']:.3f} of {done['requests']} requests router {done['router']!r} "
            f"routed go to the strong model (target {strong_share}); saved to {Path(router) / 'policy.json'} (was {done['previous']})"
        )
        return
    manifest = read_manifest(router)
    reg = get_registry()
    name = policy_name or "calibrated"
    if not hasattr(reg.get("policy", name), "calibrate"):
        able = [n for n in reg.names("policy") if hasattr(reg.get("policy", n), "calibrate")]
        raise TelaError(f"policy {name!r} does not calibrate; policies that do: {', '.join(able)}")
    base = reg.create("policy", name, {**parse_policy_sets(policy_sets), "strong_share": strong_share})
    assert data is not None  # --traffic returned above; one of the two is required
    prompts = _calibration_prompts(data, source_name, protocol)
    from ..fingerprint import overlap_warning

    note = overlap_warning(manifest, prompts, what="calibration")
    if note:
        click.echo(note, err=True)
    from ..locks import output_lock

    click.get_current_context().with_resource(output_lock(router))  # one writer of policy.json
    r = load_router(router, trust_remote_code, score_batch_size)
    cache = None if no_cache else ev.score_cache_dir(Path(router) / ".score-cache")
    scores, scoring = ev.score_prompts(
        r.scorer,
        prompts,
        router_id=ev.router_hash(router) if cache else None,
        cache_dir=cache,
        description=f"scoring {len(prompts)} calibration prompts",
    )
    policy = base.calibrate(scores.w, data=str(data) + (f" ({protocol} train side)" if protocol else ""))
    models = r.models if len(r.models) == 2 else [r.models[0], r.models[-1]]
    write_policy(router, name, policy.options.model_dump(mode="json"), models)
    o = policy.options
    click.echo(
        f"threshold {o.threshold:.6f}: {o.achieved_share:.3f} of {o.calibration_prompts} calibration prompts go to "
        f"the strong model (target {strong_share}); saved to {Path(router) / 'policy.json'} (was {r.policy_spec['name']})"
    )
