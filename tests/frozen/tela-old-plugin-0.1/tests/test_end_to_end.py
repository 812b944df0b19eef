"""The family trains, saves, loads and scores; tela's CLI lists the plugin, trains the family in
`tela zoo`, routes with the plugin's policy and runs the plugin's command (tela 0.1's docs:
"Testing a plugin": CliRunner on get_cli(), add_plugin/remove_plugin in a finally)."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from tela_core import Record
from tela_core.artifact import load_router, read_policy, write_policy
from tela_core.cli.main import get_cli
from tela_core.plugins import add_plugin, get_registry, remove_plugin
from tela_core.records import seed_record

import tela_old_plugin

W, S = "weak-model", "strong-model"


def _records(n: int = 60) -> list[Record]:
    recs = []
    for i in range(n):
        hard = i % 2 == 0
        prompt = f"integral derivative calculus problem {i}" if hard else f"capital city of country {i}"
        recs.append(Record(prompt=prompt, outcomes={W: 0.0 if hard else 1.0, S: 1.0}))
    return recs


def _seed_lines(n: int) -> str:
    """Outcome data in tela's JSONL: the seed's messages (label 1: the weak model failed; 5: it
    was right) plus each model's outcome."""
    lines = []
    for i, r in enumerate(_records(n)):
        label = 5 if r.outcomes[W] == 1.0 else 1
        lines.append(json.dumps(seed_record(r.prompt, label=label, outcomes=r.outcomes, id=f"q{i}").to_json()))
    return "\n".join(lines) + "\n"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(get_cli(), list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_keyword_round_trip(tmp_path):
    add_plugin(tela_old_plugin, "old-plugin-test")  # a second name for the same module: in-process registration
    try:
        scorer = get_registry().create("scorer", "old-keyword", {})
        scorer.fit(_records(), tmp_path / "r", {})
        loaded = load_router(tmp_path / "r")
        w = loaded.score(["an integral calculus problem", "the capital city of France", "zzz"]).w
        assert w[0] > 0.8 and w[1] < 0.2  # smoothed toward the 0.5 prior
        assert abs(w[2] - 0.5) < 1e-9  # unknown words: the training prior
        assert np.all((w >= 0) & (w <= 1))
    finally:
        remove_plugin("old-plugin-test")


def test_plugins_list_shows_every_component():
    listed = {p["name"]: p for p in json.loads(_cli("plugins", "list", "--json"))}
    assert listed["old-plugin"]["distribution"] == "tela-old-plugin"
    assert listed["old-plugin"]["broken"] is False
    assert listed["old-plugin"]["provides"] == {
        "source": ["old-lines"],
        "formatter": ["old-question-only"],
        "scorer": ["old-keyword"],
        "policy": ["old-strong-if-above"],
        "command": ["old-length"],
    }


def test_command_runs():
    assert _cli("old-length", "What is 2 + 2?").strip() == "14"


def test_zoo_trains_the_family_and_route_uses_the_plugins_policy(tmp_path):
    data = tmp_path / "outcomes.jsonl"
    data.write_text(_seed_lines(200), encoding="utf-8")
    _cli("zoo", "--data", str(data), "--families", "old-keyword", "--output", str(tmp_path / "zoo"))
    router = tmp_path / "zoo" / "routers" / "old-keyword"
    assert read_policy(router)["models"] == [W, S]

    write_policy(router, "old-strong-if-above", {"threshold": 0.5}, models=[W, S])
    out = _cli("route", "--router", str(router), "--json", "an integral calculus problem", "the capital city of France")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["model"] for r in rows] == [S, W]

    questions = tmp_path / "questions.txt"
    questions.write_text("an integral calculus problem\nthe capital city of France\n", encoding="utf-8")
    out = _cli("route", "--router", str(router), "--json", "--file", str(questions))
    assert [json.loads(line)["model"] for line in out.splitlines() if line.startswith("{")] == [S, W]
