"""Table commands piped into another program print every name in full (issue: ``tela plugins list |
grep NAME`` missed names because rich cut a piped table to 80 columns). Each command runs as a real
subprocess through a shell pipe, the way a user or a script meets it; the terminal's rich table is
checked beside it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table
from rich.text import Text

from tela_core.cli import tables
from tela_core.data import sample_path

TELA = str(Path(sys.executable).parent / "tela")
SAMPLE = sample_path("mmlu_sample.jsonl")
HELDOUT = sample_path("mmlu_heldout_sample.jsonl")
LONG_PROMPT = "Which of these " + "very " * 60 + "long options is the one that ends here: ZEBRA-END?"


def piped(args: str, into: str = "cat") -> subprocess.CompletedProcess[str]:
    """``tela ARGS | INTO`` in a shell (stdout a pipe, as for a user), with a narrow COLUMNS."""
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        f"{shlex.quote(TELA)} {args} | {into}", shell=True, capture_output=True, text=True, env=env, timeout=300
    )


def rows(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines() if "\t" in line]


def test_plugins_list_piped_into_grep_finds_a_long_name() -> None:
    done = piped("plugins list", "grep -F matrix-factorization")
    assert done.returncode == 0, done.stderr  # grep found it
    (row,) = rows(done.stdout)
    assert row[:2] == ["embedding-families", "tela"] and row[3:5] == ["family", "matrix-factorization"]
    assert "RouteLLM-style MF" in row[5]  # the description, whole


def test_plugins_list_piped_names_every_component_of_every_plugin() -> None:
    listed = json.loads(piped("plugins list --json").stdout)
    want = {(p["name"], kind, name) for p in listed for kind, names in p["components"].items() for name in names}
    got = {(r[0], r[3], r[4]) for r in rows(piped("plugins list").stdout)[1:]}
    assert want and want <= got


def test_data_list_piped_prints_one_whole_line_per_dataset() -> None:
    out = piped("data list").stdout
    table = rows(out)
    assert table[0] == ["name", "source", "license", "revision", "files", "state", "description"]
    by_name = {r[0]: r for r in table[1:]}
    assert by_name["routellm-mmlu"][3] == "0b64fdafe049e596a3f5657c219329f24af24198"  # not cut to 12 characters
    assert "57 subject CSVs" in by_name["routellm-mmlu"][6]
    assert len(out.splitlines()) == len(table)  # nothing but the rows


def test_data_check_piped_keeps_long_model_names_on_their_row() -> None:
    done = piped(f"data check {SAMPLE}", "grep -F mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert done.returncode == 0, done.stderr
    assert rows(done.stdout) == [["mistralai/Mixtral-8x7B-Instruct-v0.1", "400", "66.2%", "-"]]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("piped") / "zoo"
    done = piped(f"zoo --data {SAMPLE} --families length -o {out}")
    assert (out / "report.md").exists(), done.stderr
    return out, done.stdout


def test_zoo_piped_prints_its_table_as_rows(zoo: tuple[Path, str]) -> None:
    _, out = zoo
    table = rows(out)
    assert table[0][:4] == ["family", "APGR", "CPT(50%)", "CPT(80%)"]
    assert {"length", "random", "oracle"} <= {r[0] for r in table[1:]}
    assert all(len(r) == len(table[0]) for r in table)


def test_eval_piped_prints_both_tables_as_rows(zoo: tuple[Path, str], tmp_path: Path) -> None:
    router = zoo[0] / "routers" / "length"
    done = piped(f"eval --router {router} --data {HELDOUT} -o {tmp_path / 'ev'}", "grep -F length")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[0][0] == "length" and len(table[0]) == 5  # router, APGR, CPT(50%), CPT(80%), AUC
    assert table[1][1:] == ["length PGR", "random PGR", "oracle PGR"]  # the PGR grid's header


def test_route_piped_prints_the_whole_prompt(zoo: tuple[Path, str]) -> None:
    router = zoo[0] / "routers" / "length"
    done = piped(f"route --router {router} {shlex.quote(LONG_PROMPT)}")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[0] == ["#", "prompt", "[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]", "E", "w", "model"]
    assert table[1][1] == LONG_PROMPT and table[1][-1] in ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


def test_a_terminal_still_gets_the_rich_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    t = Table(title="zoo")
    t.add_column("family")
    t.add_row("length")
    monkeypatch.setattr(tables, "stdout_is_terminal", lambda: True)
    tables.print_table(t)
    assert "┏" in capsys.readouterr().out
    monkeypatch.setattr(tables, "stdout_is_terminal", lambda: False)
    tables.print_table(t)
    assert capsys.readouterr().out == "zoo\nfamily\nlength\n"


def test_plain_cells_drop_markup_but_keep_text_as_written() -> None:
    assert (
        tables.plain_cell("policy: [cyan]threshold[/cyan]\npolicy: [cyan]tiers[/cyan]")
        == "policy: threshold, policy: tiers"
    )
    assert tables.plain_cell(Text("what is [b] in [a]?\tnext")) == "what is [b] in [a]? next"
    assert tables.plain_cell(Text("[[3]]")) == tables.plain_cell("[[3]]") == "[[3]]"
