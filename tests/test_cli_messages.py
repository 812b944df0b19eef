"""Summary lines a user reads after a command: their counts add up to the total they state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tela_core.cli.judge_cmd import _print_summary


def _summary(records: int, labels: dict[str, int]) -> dict[str, Any]:
    return {"records": records, "labels": labels, "errors": 0, "skipped": {}, "cost_total": 0.0, "stopped": None}


def test_judge_summary_counts_the_records_without_a_label(capsys: pytest.CaptureFixture[str]) -> None:
    """Among N models, a record whose label pair was not both asked (a shadow log's) has no [[k]]:
    the line says how many, so its label counts add up to its records."""
    _print_summary(_summary(14, {"[[1]]": 4, "[[5]]": 8}))
    line = capsys.readouterr().out.strip()
    assert line.startswith("14 records ([[1]] 4, [[5]] 8, 2 without a label (a model of the label pair "), line
    _print_summary(_summary(12, {"[[1]]": 4, "[[5]]": 8}))
    assert capsys.readouterr().out.startswith("12 records ([[1]] 4, [[5]] 8), 0 errors")


def test_calibrate_line_says_which_policy_it_replaced() -> None:
    """tela calibrate ended its line "(was calibrated)", which reads as "it had been calibrated"."""
    from tela_core.routing.calibration import calibration_line

    done = {
        "options": {"threshold": 0.33, "achieved_share": 0.5, "calibration_prompts": 2, "strong_share": 0.5},
        "previous": "calibrated",
    }
    line = calibration_line(done, "requests", Path("runs/knn"))
    assert line.endswith("saved to runs/knn/policy.json (replacing its calibrated policy)"), line
    assert calibration_line({**done, "previous": None}, "requests", Path("r")).endswith("saved to r/policy.json")


@pytest.mark.usefixtures("isolated_cache")
def test_demo_names_the_knn_routers_lines(tmp_path: Path) -> None:
    """tela demo trains the kNN beside its router before printing its summary: the kNN's own notes
    ("the router does not beat random ... APGR 0.452") read as about the demo router, unnamed."""
    from tela_core.eval.demo import HELDOUT_SAMPLE, bundled_records, knn_beside

    lines: list[str] = []
    heldout = bundled_records(HELDOUT_SAMPLE)
    knn_beside(
        tmp_path / "knn", heldout, ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"], 400, lines.append
    )
    assert lines and all(line.startswith("embedding-knn beside it: ") for line in lines), lines


@pytest.mark.parametrize(
    "name, text, said",
    [
        (
            "bad.yaml",
            "routers:\n  a: 1\n    b: 2\n",
            ":3: not valid YAML: mapping values are not allowed here (column 6)",
        ),
        ("bad.toml", "a = 1\nb c\n", ":2: not valid TOML: Expected '=' after a key in a key/value pair (column 3)"),
    ],
)
@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_config_file_that_does_not_parse_is_named_with_its_line(
    tmp_path: Path, tela_cli: Any, command: str, name: str, text: str, said: str
) -> None:
    """The parsers' own messages spread the place over several lines (YAML's `in "<unicode string>",
    line 2, column 6:` and a caret; TOML's at the end): one line, FILE:LINE first."""
    f = tmp_path / name
    f.write_text(text)
    res = tela_cli(command, "--config", f)
    assert res.exit_code == 2
    line = res.output.strip()
    assert line == f"Error: {f}{said}", line
