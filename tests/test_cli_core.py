"""The ``tela`` root command: help, version, error reporting (exit 2), and ``tela plugins``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

import tela_core
from tela_core import InputError, TelaError, hookimpl
from tela_core.plugins.discovery import reset


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset()
    try:
        yield
    finally:
        reset()


@pytest.fixture
def failing_commands(register_plugin: Any) -> None:
    """An in-process plugin with commands that fail the ways a plugin command can."""

    class Failing:
        @hookimpl
        def tela_register_commands(self, cli: Any) -> None:
            @cli.command("bad-input")
            def bad_input() -> None:
                """Fails on line 3 of a file."""
                raise InputError("data.jsonl", 3, 'missing field "prompt"')

            @cli.command("bad-option")
            def bad_option() -> None:
                """Fails with a plain TelaError."""
                raise TelaError("--n must be positive")

            @cli.command("unknown-formatter")
            def unknown_formatter() -> None:
                """Asks the registry for a formatter nobody registered."""
                from tela_core.plugins.discovery import get_registry

                get_registry().entry("formatter", "nope")

    register_plugin(Failing(), "failing")


def test_help_lists_the_core_commands(tela_cli):
    res = tela_cli("--help")
    assert res.exit_code == 0
    assert "train, evaluate and serve LLM routers" in res.output
    assert "plugins" in res.output
    assert tela_cli("-h").output == res.output


def test_version(tela_cli):
    res = tela_cli("--version")
    assert res.exit_code == 0 and res.output.strip() == f"tela, version {tela_core.__version__}"


def test_input_error_is_file_line_message_and_exit_2(failing_commands, tela_cli):
    res = tela_cli("bad-input")
    assert res.exit_code == 2
    assert res.stderr == 'Error: data.jsonl:3: missing field "prompt"\n'
    assert res.stdout == ""


def test_tela_error_is_a_clean_message_and_exit_2(failing_commands, tela_cli):
    res = tela_cli("bad-option")
    assert res.exit_code == 2
    assert res.stderr == "Error: --n must be positive\n"
    assert "Traceback" not in res.output


def test_unknown_component_from_a_command_exits_2_listing_the_names(failing_commands, tela_cli):
    res = tela_cli("unknown-formatter")
    assert res.exit_code == 2
    assert "unknown formatter 'nope'; registered formatters:" in res.stderr
    assert "role-prefix" in res.stderr and "chat-template" in res.stderr


def test_usage_errors_exit_2(tela_cli):
    assert tela_cli("no-such-command").exit_code == 2
    res = tela_cli("plugins", "list", "--kind", "widget")
    assert res.exit_code == 2 and "widget" in res.output


def test_plugins_list_table(tela_cli, monkeypatch):
    monkeypatch.setattr("tela_core.cli.tables.stdout_is_terminal", lambda: True)  # the table a terminal gets
    res = tela_cli("plugins", "list", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for word in ("tela plugins", "jsonl", "role-prefix", "chat-template", "formatters", "sources"):
        assert word in res.output
    assert "┃ plugin" in res.output


def test_plugins_list_piped_prints_one_full_line_per_component(tela_cli):
    res = tela_cli("plugins", "list")  # captured output is not a terminal
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split("\t") == ["plugin", "distribution", "version", "kind", "name", "description"]
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 6 for r in rows)
    assert ["formatters", "tela", tela_core.__version__, "formatter", "chat-template"] in [r[:5] for r in rows]


def test_plugins_list_table_shows_a_broken_plugin(tela_cli, register_plugin):
    class Boom:
        @hookimpl
        def tela_register_sources(self, register: Any) -> None:
            raise RuntimeError("kaboom")

    register_plugin(Boom(), "boom")
    res = tela_cli("plugins", "list", env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "BROKEN" in res.output and "kaboom" in res.output and "jsonl" in res.output


def test_plugins_show_prints_description_and_options(tela_cli):
    res = tela_cli("plugins", "show", "source", "jsonl")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("source jsonl (plugin jsonl): ")
    assert "require_label: bool (default True)" in res.output
    res = tela_cli("plugins", "show", "formatter", "role-prefix", "--json")
    obj = json.loads(res.output)
    assert obj["plugin"] == "formatters" and obj["options"]["type"] == "object"


def test_plugins_show_unknown_name_exits_2_listing_the_registered_ones(tela_cli):
    res = tela_cli("plugins", "show", "formatter", "nope")
    assert res.exit_code == 2
    assert "Error: unknown formatter 'nope'; registered formatters: " in res.stderr
    assert "role-prefix" in res.stderr


def test_console_script_runs():
    tela = Path(sys.executable).parent / "tela"
    assert tela.exists(), "the `tela` console script is missing: pip install -e ."
    res = subprocess.run(
        [str(tela), "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr
    assert "jsonl" in {p["name"] for p in json.loads(res.stdout)}


def test_plugins_show_renders_option_types_defaults_and_descriptions(tela_cli, register_plugin):

    from typing import Optional

    from pydantic import BaseModel, Field

    from tela_core import Policy

    class Opts(BaseModel):
        t: float = Field(0.5, description="strong iff w >= t")
        models: Optional[list[str]] = None  # noqa: UP045 (a plugin may spell it either way; both render)
        path: Path | None = None
        needed: int

    class ShowMe(Policy):
        """Shown by tela plugins show."""

        name = "test-show-me"
        Options = Opts

        def choose(self, scores: Any, models: Any) -> list[str]:
            return [models[0] for _ in scores.w]

    class P:
        @hookimpl
        def tela_register_policies(self, register: Any) -> None:
            register(ShowMe)

    register_plugin(P(), "show-me")
    res = tela_cli("plugins", "show", "policy", "test-show-me")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        "policy test-show-me (plugin show-me): Shown by tela plugins show.",
        "options:",
        "  t: float (default 0.5) — strong iff w >= t",
        "  models: Optional[list[str]] (default None)",
        "  path: Path | None (default None)",
        "  needed: int (required)",
    ]
    assert tela_cli("plugins", "show", "formatter", "role-prefix").output.endswith("options: none\n")


def test_plugins_show_command_names_its_plugin_and_prints_its_help(tela_cli, register_plugin):

    from tela_core import hookimpl

    class AddsCommand:
        @hookimpl
        def tela_register_commands(self, cli):
            @cli.command("wave")
            @click.option("--times", default=1, help="How often to wave.")
            def wave(times):
                """Wave at the user."""

    register_plugin(AddsCommand(), "waver")
    res = tela_cli("plugins", "show", "command", "wave")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("command wave (plugin waver): Wave at the user.")
    assert "--times" in res.output and "How often to wave." in res.output
    obj = json.loads(tela_cli("plugins", "show", "command", "route", "--json").output)
    assert obj["plugin"] == "tela" and obj["name"] == "route"
    res = tela_cli("plugins", "show", "command", "nope")
    assert res.exit_code == 2 and "unknown command 'nope'; registered commands: " in res.stderr
    assert "route" in res.stderr


def test_unknown_policy_error_says_policies(tela_cli):
    res = tela_cli("plugins", "show", "policy", "nope")
    assert res.exit_code == 2 and "registered policies: " in res.stderr


def test_plugins_list_and_show_datasets(tela_cli):
    res = tela_cli("plugins", "list", "--kind", "dataset", "--json")
    assert res.exit_code == 0, res.output
    provides = {n for p in json.loads(res.output) for n in p["provides"].get("dataset", [])}
    assert "routellm-mmlu" in provides
    obj = json.loads(tela_cli("plugins", "show", "dataset", "routellm-mmlu", "--json").output)
    assert obj["license"] and obj["revision"] and obj["source"] == "routellm-csv"
    res = tela_cli("plugins", "show", "dataset", "nope")
    assert res.exit_code == 2 and "registered datasets: " in res.stderr
