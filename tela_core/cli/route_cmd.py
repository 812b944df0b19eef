"""``tela route``: use a trained router on prompts.

It scores prompts with the router's scorer (for ``score-token``: one forward pass each) and
applies the policy saved beside it (``policy.json``), or the one ``--policy``/``--threshold``
names: per prompt it prints the score distribution, the expected score, w and the chosen model.
For a router among N models (policies ``cost-aware``, ``budget``, ``quality-floor``) it prints the
chosen model's predicted quality, and ``--threshold`` sets the policy's knob. (``tela calibrate``,
which sets a router's threshold or budget, lives in :mod:`.calibrate_cmd`.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tela_core.data.prompt_lines import read_prompt_file, read_prompt_lines
from tela_core.infra.errors import TelaError
from tela_core.infra.io import json_line
from tela_core.routing.artifact import read_manifest

from ..eval.score_cache import router_hash, score_cache_dir, score_prompts
from . import tables
from .options import (
    json_option,
    launch_options,
    load_router,
    policy_options,
    refuse_unused,
    router_option,
    score_batch_option,
    score_launch_of,
    trust_option,
)

__all__ = ["register", "route"]


def register(cli: click.Group) -> None:
    """Attach ``tela route`` to ``cli``."""
    cli.add_command(route)


@click.command()
@router_option
@click.argument("questions", nargs=-1)
@click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(path_type=Path),
    default=None,
    help="Read prompts from a file ('-' for stdin): JSONL with a \"prompt\" per line, or one prompt per line.",
)
@json_option
@click.option(
    "--threshold",
    default=None,
    type=float,
    help="Instead of the saved policy's value: strong iff w >= this (two-model routers); for a router among N "
    "models its policy's knob: λ (cost-aware), $ per 1,000 requests (budget) or the quality floor (quality-floor).",
)
@score_batch_option
@policy_options
@trust_option
@launch_options
def route(
    router: Path,
    questions: tuple[str, ...],
    file: Path | None,
    as_json: bool,
    threshold: float | None,
    score_batch_size: int | None,
    policy_name: str | None,
    policy_sets: tuple[str, ...],
    trust_remote_code: bool,
    **launch: Any,
) -> None:
    """Score prompts and show the model the router's saved policy picks for each.

    With --json: one JSON object per prompt (prompt, probs, expected, w, threshold, model; for a router
    among N models also quality, each model's predicted quality, and knob, the policy's value applied).
    --processes N (or --hostfile, or one command per node) shards a long --file over N ranks, through
    the score cache ($TELA_CACHE) when one is set: a rerun after a kill scores only what is missing.

    \b
    Examples:
      tela route --router runs/demo "What is the capital of France?" "Prove Fermat's last theorem."
      tela route --router runs/demo --file prompts.jsonl --json
      tela route --router runs/demo --threshold 0.3 "Integrate x^9."
      cat prompts.txt | tela route --router runs/demo
      tela route --router runs/demo --file logged.jsonl --json --processes 4 > routes.jsonl
    """
    if threshold is not None and (policy_name is not None or policy_sets) and not _has_knob(policy_name):
        refuse_unused("--threshold routes with the threshold policy", "policy_name", "policy_sets")
    read_manifest(router)  # a bad router dir fails before reading prompts
    ranks = score_launch_of(launch)
    prompts = list(questions)
    for i, q in enumerate(prompts, start=1):
        try:
            q.encode("utf-8")
        except UnicodeEncodeError as e:  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise TelaError(f"question {i} is not valid UTF-8 text (at character {e.start}); pass UTF-8") from None
    if file is not None:
        prompts += read_prompt_file(file)
    if not prompts and not sys.stdin.isatty():
        prompts = read_prompt_lines(sys.stdin, "<stdin>")
    if not prompts:
        raise TelaError("no prompts: pass questions as arguments, --file FILE, or pipe them on stdin")
    r = load_router(
        router, trust_remote_code, score_batch_size, policy_name, policy_sets, load_scorer=not ranks.parallel
    )
    if threshold is not None and policy_sets and r.knob is None:
        refuse_unused("--threshold routes with the threshold policy", "policy_sets")
    if ranks.parallel:  # the ranks load the router and score; the cache keeps their finished chunks
        cache = score_cache_dir(None)
        scores, _info = score_prompts(
            r.scorer,
            prompts,
            router_id=router_hash(router) if cache else None,
            cache_dir=cache,
            description=f"scoring {len(prompts)} prompts ({ranks.describe()})",
            launch=ranks,
            router_dir=Path(router),
            quality=r.knob is not None,  # an N-model policy chooses by each model's predicted quality
        )
    else:
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
                **({"quality": {m: round(q, 6) for m, q in d.quality.items()}} if d.quality is not None else {}),
                **({"knob": dict(d.knob)} if d.knob is not None else {}),
            }
        )
    if as_json:
        for row in rows:
            click.echo(json_line(row, nonfinite="null"))
        return
    spec = dict(r.policy_spec)
    if threshold is not None and r.knob is not None:  # the options applied: a budget's λ read off its curve
        spec["options"] = r.policy.at(threshold).options.model_dump(mode="json")  # type: ignore[attr-defined]
    elif threshold is not None:
        spec = {"name": "threshold", "options": {"threshold": threshold}, "models": r.models}
    _print_routes(rows, spec)


def _has_knob(policy: str | None) -> bool:
    """Whether ``policy`` (None: the router's saved one, judged once it is loaded) is an N-model policy
    whose knob ``--threshold`` sets."""
    from tela_core.plugins.discovery import get_registry

    if policy is None:
        return True
    reg = get_registry()
    return policy in reg.names("policy") and bool(getattr(reg.get("policy", policy), "knob", None))


def _policy_title(spec: dict[str, Any]) -> str:
    opts = spec.get("options") or {}
    keys = ("threshold", "strong_share", "bounds", "budget", "lam", "q")
    shown = {k: opts[k] for k in keys if opts.get(k) is not None}
    parts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
    return f"policy {spec.get('name')} ({parts}) over {' < '.join(spec.get('models') or [])}"


def _print_routes(rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = Console()
    piped = not tables.stdout_is_terminal()  # piped or captured: plain rows with the whole prompt
    t = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        title=_policy_title(spec),
        title_justify="left",
    )
    t.add_column("#", justify="right", no_wrap=True, min_width=1)
    t.add_column(
        "prompt",
        overflow="ellipsis",
        no_wrap=True,
        max_width=None if piped else max(12, con.width - 56 - max(len(r["model"]) for r in rows)),
    )
    if all("quality" in r for r in rows):  # a router among N models: the chosen model's predicted quality
        t.add_column("quality", justify="right", no_wrap=True, min_width=7)
        t.add_column("model", no_wrap=True, min_width=6)
        for i, r in enumerate(rows, start=1):
            q = f"{r['quality'][r['model']]:.3f}" if r["model"] in r["quality"] else "–"
            t.add_row(str(i), Text(r["prompt"].replace("\n", " ")), q, Text(r["model"]))
        tables.print_table(t, con)
        if not piped:
            click.echo("quality: the chosen model's predicted quality (P(it answers well))")
        return
    for k in range(1, 6):
        t.add_column(f"[[{k}]]", justify="right", no_wrap=True, min_width=5)
    t.add_column("E", justify="right", no_wrap=True, min_width=4)
    t.add_column("w", justify="right", no_wrap=True, min_width=5)
    t.add_column("model", no_wrap=True, min_width=6)
    for i, r in enumerate(rows, start=1):
        probs = [f"{x:.3f}" for x in r["probs"]] if r["probs"] else ["–"] * 5
        exp = f"{r['expected']:.2f}" if r["expected"] is not None else "–"
        t.add_row(str(i), Text(r["prompt"].replace("\n", " ")), *probs, exp, f"{r['w']:.3f}", Text(r["model"]))
    tables.print_table(t, con)
    if not piped:
        click.echo(
            "[[k]]: probability of score k (the weak model's answer quality, 1..5); E: expected score; w = "
            "P([[1]]..[[3]])"
        )
