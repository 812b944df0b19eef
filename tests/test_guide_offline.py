"""A new user's path, as README.md and docs/own-models.md write it, from a fresh clone (issue 25).

STAND-INS, as the real things cannot run here: remote model APIs are played by loopback servers.
``tela_core.testkit.replay_upstream.ReplayUpstream`` replays answers real models gave (the bundled
``examples/rehearsal/`` sample of RouterArena's recorded answers of ``gemini-2.0-flash-001`` and
``claude-3-haiku-20240307``), and its *judge* models rate an answer from that answer's recorded
score (it is not a model); ``examples/standin_upstream.py`` answers with its own name. Everything
else is tela as a user runs it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_replay() -> Iterator[ReplayUpstream]:
    recorded = {"served-model": {"What is 2 + 2?": Recorded("4", 8, 1, 1.0)},
                "other-model": {"What is 2 + 2?": Recorded("5", 8, 1, 0.0)}}
    with ReplayUpstream(recorded, judges=["judge-model"]) as up:
        yield up


def _config(tmp_path: Path, url: str, **models: tuple[str, str]) -> Path:
    lines = ["upstreams:"]
    for name, (base, model) in models.items():
        lines.append(f"  {name}: {{base_url: '{base}', model: {model}, price_input: 1, price_output: 1}}")
    path = tmp_path / "serve.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- item 3: --dry-run checks each model, as the guide says ---------------------------------------------

def test_collect_dry_run_fails_on_a_bad_model_one_line_each(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    """An unserved model name and a dead port each get their line; exit 2; nothing asked, nothing written."""
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    cfg = _config(tmp_path, small_replay.base_url, good=(small_replay.base_url, "served-model"),
                  ghost=(small_replay.base_url, "not-served"), dead=(dead, "served-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--model", "good", "--model", "ghost",
                 "--model", "dead", "--dry-run", "-o", tmp_path / "answers")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert "2 models failed the check" in r.output, r.output
    ghost = [ln for ln in r.output.splitlines() if ln.strip().startswith("ghost:")]
    dead_lines = [ln for ln in r.output.splitlines() if ln.strip().startswith("dead:")]
    assert len(ghost) == 1 and "'not-served' is not among this upstream's models" in ghost[0], r.output
    assert len(dead_lines) == 1 and "Connect" in dead_lines[0], r.output
    assert not any(line.strip().startswith("good:") for line in r.output.splitlines())
    assert small_replay.stats()["requests"] == 0  # the check is GET /models: no chat call, nothing paid
    assert not (tmp_path / "answers" / "answers.jsonl").exists()


def test_collect_dry_run_passes_when_every_model_is_there(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    cfg = _config(tmp_path, small_replay.base_url, good=(small_replay.base_url, "served-model"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--dry-run", "-o", tmp_path / "answers")
    assert r.exit_code == 0, r.output
    assert "estimated cost" in r.output and small_replay.stats()["requests"] == 0


def test_judge_dry_run_checks_the_judge_model(tmp_path: Path, small_replay: ReplayUpstream, tela_cli: Any) -> None:
    url = small_replay.base_url
    cfg = _config(tmp_path, url, good=(url, "served-model"), other=(url, "other-model"), judge=(url, "judge-model"),
                  nojudge=(url, "no-such-judge"))
    (tmp_path / "prompts.txt").write_text("What is 2 + 2?\n", encoding="utf-8")
    r = tela_cli("collect", "--prompts", tmp_path / "prompts.txt", "--config", cfg, "--model", "good", "--model", "other",
                 "-o", tmp_path / "answers")
    assert r.exit_code == 0, r.output
    r = tela_cli("judge", "--answers", tmp_path / "answers", "--judge", "llm-judge", "--judge-model", "nojudge",
                 "--config", cfg, "--dry-run", "-o", tmp_path / "judged")
    assert r.exit_code == 2, r.output
    assert "nojudge:" in r.output and "'no-such-judge' is not among" in r.output, r.output
    r = tela_cli("judge", "--answers", tmp_path / "answers", "--judge", "llm-judge", "--judge-model", "judge",
                 "--config", cfg, "--dry-run", "-o", tmp_path / "judged")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "judged" / "records.jsonl").exists()


def test_dry_run_help_says_it_checks_the_models(tela_cli: Any) -> None:
    for cmd in ("collect", "judge"):
        out = " ".join(tela_cli(cmd, "--help").output.split())
        assert "Check each model once (reachable, key accepted, model listed" in out, out
