"""Every JSON file tela writes is strict JSON (issue 24, item 2): no ``NaN`` or ``Infinity``, which
Python writes unless told not to and every other reader refuses. A value that is undefined (a
metric, a cost past a double's range) is written as ``null``; where a number is required (a router
file) the writer refuses with one line naming the file and the field, before anything is written.
The collect runs talk to a STAND-IN for the remote model APIs (tela_core.testkit.replay_upstream)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tela_core.infra.io import NonFiniteError, atomic_write_json, dumps_json, json_line, json_line_bytes, write_jsonl
from tela_core.testkit.helpers import run_cli
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream


def strict_loads(text: str) -> Any:
    """``json.loads`` as any reader but Python's does it: NaN and Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def strict_jsonl(path: Path) -> list[Any]:
    return [strict_loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_a_collect_whose_summary_would_hold_nan_writes_strict_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cost that comes out NaN (here forced; a price near a double's top gives inf) was written as
    `NaN` into the journal (a ValueError traceback mid-run, after paying) and the summary. Now each
    file is strict JSON, the cost is null and every paid answer is kept."""
    from tela_core.collect import budget

    monkeypatch.setattr(budget.Prices, "cost", lambda self, p, c: math.nan)
    questions = [f"What is {i} + {i}?" for i in range(4)]
    rec = {m: {q: Recorded(str(2 * i), 10, 3, 1.0) for i, q in enumerate(questions)} for m in ("small", "big")}
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "out"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions), encoding="utf-8")
    with ReplayUpstream(rec) as up:
        r = run_cli(
            "collect",
            "--prompts",
            prompts,
            "--model",
            f"small={up.base_url}#small",
            "--model",
            f"big={up.base_url}#big",
            "--price",
            "small=1,2",
            "--price",
            "big=3,4",
            "-o",
            out,
        )
    assert r.exit_code == 0, r.output
    summary = strict_loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["answers"] == 8 and summary["cost_total"] is None
    rows = strict_jsonl(out / "answers.jsonl")
    assert [a["text"] for row in rows for a in row["answers"].values()] == [
        str(2 * i) for i in range(4) for _ in (0, 1)
    ]
    assert all(a["cost"] is None for row in rows for a in row["answers"].values())


def test_json_files_hold_null_for_an_undefined_metric(tmp_path: Path) -> None:
    report = {"apgr": math.nan, "curve": [0.0, math.inf, -math.inf], "ok": 0.5, "name": "knn"}
    atomic_write_json(tmp_path / "report.json", report)
    assert strict_loads((tmp_path / "report.json").read_text()) == {
        "apgr": None,
        "curve": [0.0, None, None],
        "ok": 0.5,
        "name": "knn",
    }
    assert strict_loads(dumps_json(report)) == strict_loads((tmp_path / "report.json").read_text())
    assert strict_loads(json_line_bytes({"w": math.nan}).decode()) == {"w": None}  # a serve log line is never lost


def test_a_file_that_needs_numbers_is_refused_naming_the_field(tmp_path: Path) -> None:
    target = tmp_path / "linear.json"
    with pytest.raises(NonFiniteError, match=r"linear.json: coef\[1\]\[0\] is nan, which JSON cannot hold"):
        atomic_write_json(target, {"coef": [[1.0], [math.nan]], "bias": 0.0}, nonfinite="error")
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing written, no temp file left
    with pytest.raises(NonFiniteError, match=r"rows.jsonl:2: outcomes.strong is inf"):
        write_jsonl(tmp_path / "rows.jsonl", [{"outcomes": {"strong": 1.0}}, {"outcomes": {"strong": math.inf}}])
    assert not (tmp_path / "rows.jsonl").exists()
    with pytest.raises(NonFiniteError, match="request body: temperature is nan"):
        json_line({"temperature": math.nan}, what="request body")


def test_the_upstream_client_never_sends_nan(tmp_path: Path) -> None:
    """`--temperature nan` went upstream as `NaN` (not JSON): the client refuses the body instead."""
    import asyncio

    from tela_core import UpstreamError
    from tela_core.plugins.discovery import get_registry

    rec = {"m": {"hi": Recorded("hello", 1, 1, 1.0)}}
    with ReplayUpstream(rec) as up:
        client = get_registry().create("upstream", "openai", {"base_url": up.base_url})

        async def ask() -> Any:
            try:
                return await client.chat(
                    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": math.nan}, False
                )
            finally:
                await client.aclose()

        with pytest.raises(UpstreamError, match="request body: temperature is nan"):
            asyncio.run(ask())
        assert up.stats()["requests"] == 0
