"""The files ``tela eval`` writes: ``report.json`` (the setting and every router's evaluation),
``report.md`` (tables a reader can check) and ``quality.png`` (:mod:`tela_core.eval.plots`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tela_core.infra.io import atomic_write_json, atomic_write_text
from tela_core.routing.operating_point import gains_nothing, small_sample_warning

from .outcomes import OutcomeArrays
from .plots import plot_curves
from .replay import RANDOM_SEEDS, Evaluation

__all__ = [
    "REPORT_FILES",
    "build_report",
    "render_markdown",
    "write_report",
    "policy_line",
    "oracle_note",
    "report_warnings",
]

#: what :func:`write_report` writes
REPORT_FILES: tuple[str, ...] = ("report.json", "report.md", "quality.png")


def build_report(
    evaluations: Sequence[Evaluation],
    *,
    data: OutcomeArrays,
    meta: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict ``report.json`` holds: the setting, each router's evaluation (the router
    first, then the baselines) and, when given, where the router's saved policy lands."""
    report: dict[str, Any] = {
        "tela_report": 1,
        **dict(meta or {}),
        "weak_model": data.weak_model,
        "strong_model": data.strong_model,
        "n": int(len(data.weak)),
        "q_weak": float(data.weak.mean()),
        "q_strong": float(data.strong.mean()),
        "cost_weak": float(data.weak_cost.mean()) if data.weak_cost is not None else None,
        "cost_strong": float(data.strong_cost.mean()) if data.strong_cost is not None else None,
        "definitions": (
            "docs/metrics.md: top ⌊p·n⌉ by w to strong (stable ties); APGR/AUC trapezoid on p=0,0.1,…,1; "
            "CPT on a 0.01 grid"
        ),
        "routers": [e.to_dict() for e in evaluations],
    }
    if policy is not None:
        report["policy"] = dict(policy)

        why = gains_nothing(report["policy"].get("point"))
        if why:
            report["policy"]["gains_nothing"] = why
    report["warnings"] = report_warnings(report)
    return report


def _number(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def policy_line(pol: Mapping[str, Any]) -> str | None:
    """The saved policy and where it lands, in one readable line (numbers rounded), or None when
    it has no point on this data (then ``note`` says why)."""
    opts = dict(pol.get("options") or {})
    name = pol.get("name")
    if opts.get("threshold") is not None:
        how = f"threshold w >= {float(opts['threshold']):.3f}"
        if name == "calibrated" and opts.get("strong_share") is not None:
            how += f", set for a {float(opts['strong_share']):.0%} strong-call share"
    else:
        how = ", ".join(f"{k} {_number(v)}" for k, v in opts.items() if v is not None) or "default options"
    pt = pol.get("point")
    if not pt:
        return None
    return (
        f"saved policy {name} ({how}): {pt['strong_share']:.1%} of prompts to the strong model, quality "
        f"{pt['quality']:.3f}, PGR {_fmt(pt.get('pgr'), '.3f')}"
        + (f", ${1000 * pt['cost']:.4g} per 1,000 queries" if pt.get("cost") is not None else "")
    )


def oracle_note(report: Mapping[str, Any]) -> str | None:
    """Why the oracle's APGR is above 1, when it is (docs/metrics.md)."""
    oracle = next((r for r in report.get("routers", []) if r.get("name") == "oracle"), None)
    if not oracle or not isinstance(oracle.get("apgr"), (int, float)) or oracle["apgr"] <= 1:
        return None
    return (
        f"oracle APGR {oracle['apgr']:.3f} is above 1: on some prompts the weak model is right and the strong one "
        "wrong, and the oracle sends those to the weak model, so its quality beats the strong model alone "
        "(PGR above 1); a real router's ceiling (docs/metrics.md)"
    )


def report_warnings(report: Mapping[str, Any]) -> list[str]:
    """Warnings a reader must not miss: too few prompts, a saved policy that gains nothing."""
    out = []
    few = small_sample_warning(
        int(report["n"]), "this evaluation", "differences under ~0.1 APGR are noise; judge the router on more prompts"
    )
    if few:
        out.append(few)
    pol = report.get("policy") or {}
    why = gains_nothing(pol.get("point"))
    if why:
        out.append(
            f"warning: the router's saved policy ({pol.get('name')}) gains nothing from routing here: {why}; "
            "choose an operating point with tela calibrate --router DIR --data FILE --strong-share P "
            "(docs/own-models.md: choosing the operating point)"
        )
    return out


def _fmt(x: Any, spec: str) -> str:
    if x is None:
        return "–"
    try:
        if x != x:  # NaN
            return "–"
    except TypeError:
        pass
    return format(x, spec)


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: the summary table, PGR (and cost) at each p, and the policy point."""
    routers = report["routers"]
    lines = [
        f"# Router evaluation: {report.get('router', routers[0]['name'])}",
        "",
        f"Data: `{report.get('data', '?')}` (source `{report.get('source', '?')}`"
        + (f", protocol `{report['protocol']}`" if report.get("protocol") else "")
        + f"), {report['n']} prompts. Weak `{report['weak_model']}` {report['q_weak']:.4f}, "
        f"strong `{report['strong_model']}` {report['q_strong']:.4f}.",
        "",
        "APGR and AUC: trapezoid on p = 0, 0.1, …, 1; CPT on a 0.01 grid; random = mean of "
        f"{len(RANDOM_SEEDS)} seeds (docs/metrics.md).",
        "",
        "| router | APGR | CPT(50%) | CPT(80%) | AUC |",
        "|---|---|---|---|---|",
    ]
    for r in routers:
        lines.append(
            f"| {r['name']} | {_fmt(r['apgr'], '.3f')} | {_fmt(r['cpt50'], '.2f')} | "
            f"{_fmt(r['cpt80'], '.2f')} | {_fmt(r['auc'], '.4f')} |"
        )
    note = oracle_note(report)
    if note:
        lines += ["", note[0].upper() + note[1:] + "."]
    lines += ["", "PGR at each strong-call share p:", ""]
    ps = routers[0]["p"]
    lines.append("| router | " + " | ".join(f"{p:.1f}" for p in ps) + " |")
    lines.append("|---|" + "---|" * len(ps))
    for r in routers:
        lines.append(f"| {r['name']} | " + " | ".join(_fmt(x, ".3f") for x in r["pgr_grid"]) + " |")
    if any(r.get("cost") for r in routers):
        lines += ["", "Mean cost per query at each p, in $ per 1,000 queries:", ""]
        lines.append("| router | " + " | ".join(f"{p:.1f}" for p in ps) + " |")
        lines.append("|---|" + "---|" * len(ps))
        for r in routers:
            if r.get("cost"):
                lines.append(f"| {r['name']} | " + " | ".join(_fmt(1000 * x, ".4g") for x in r["cost"]) + " |")
    pol = report.get("policy")
    line = policy_line(pol) if pol else None
    if line:
        lines += ["", line[0].upper() + line[1:] + "."]
    for warning in report.get("warnings") or []:
        lines += ["", f"**{warning}**"]
    lines += ["", "![quality against strong-call share](quality.png)", ""]
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``quality.png`` into ``out_dir`` (each atomically).

    Callers check for existing files first (:func:`tela_core.infra.io.check_can_write`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    routers = {r["name"]: r for r in report["routers"]}
    pol = report.get("policy") or {}
    png = plot_curves(
        routers,
        out / "quality.png",
        title=f"{report.get('router', '')} on {Path(str(report.get('data', ''))).name} ({report['n']} prompts)",
        q_weak=report.get("q_weak"),
        q_strong=report.get("q_strong"),
        point=pol.get("point"),
    )
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report))
    return [out / "report.json", out / "report.md", png]
