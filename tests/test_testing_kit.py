"""The test kit a plugin author gets by installing tela (tela_core/testkit/pytest_plugin.py through the
``pytest11`` entry point): the fixtures reach a third-party package's tests with no conftest line,
and each one leaves nothing behind for the next test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tela_core import Formatted, Formatter, hookimpl
from tela_core.plugins.discovery import _extra_plugins, get_registry
from tela_core.testkit.helpers import OFFLINE_VARS

ROOT = Path(__file__).resolve().parents[1]


class ShoutFormatter(Formatter):
    """Test formatter: the last message, upper-cased."""

    name = "kit-shout"

    def format(self, messages, tokenizer=None):  # type: ignore[no-untyped-def]
        return Formatted(prompt=messages[-1]["content"].upper(), completion="")


class ShoutPlugin:
    @hookimpl
    def tela_register_formatters(self, register):  # type: ignore[no-untyped-def]
        register(ShoutFormatter)


def test_the_fixtures_are_declared_for_pytest_and_loaded(pytestconfig: pytest.Config) -> None:
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert declared == {"tela": "tela_core.testkit.pytest_plugin"}
    import tela_core.testkit.pytest_plugin

    loaded = pytestconfig.pluginmanager.get_plugin("tela")
    assert loaded is tela_core.testkit.pytest_plugin, "pytest did not load tela's fixtures: rerun `make install`"


def test_register_plugin_registers_for_the_test_and_the_cli(register_plugin, tela_cli) -> None:  # type: ignore[no-untyped-def]
    reg = register_plugin(ShoutPlugin(), "kit-shout-plugin")
    assert reg.create("formatter", "kit-shout").format([{"role": "user", "content": "hi"}]).prompt == "HI"
    listing = tela_cli.json("plugins", "list", "--json")
    assert "kit-shout-plugin" in {p["name"] for p in listing}


def test_register_plugin_left_nothing_behind() -> None:
    """Runs after the test above (file order): its plugin is gone from the registry."""
    assert not _extra_plugins
    assert "kit-shout" not in get_registry().names("formatter")


def test_tela_cli_error_checks_the_bad_input_contract(tela_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    line = tela_cli.error("data", "check", tmp_path / "missing.jsonl")
    assert "missing.jsonl" in line
    result = tela_cli("--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_isolated_cache_is_fresh_and_under_tmp_path(isolated_cache: Path, tmp_path: Path) -> None:
    from tela_core.models.resolve import cache_root

    assert os.environ["TELA_CACHE"] == str(isolated_cache) and isolated_cache.parent == tmp_path
    assert cache_root() == isolated_cache or cache_root().is_relative_to(isolated_cache)


def test_tiny_router_is_a_router_tela_loads(tiny_router: Path) -> None:
    manifest = json.loads((tiny_router / "tela.json").read_text())
    assert manifest["scorer"] == "score-token"
    assert (tiny_router / "policy.json").is_file()


def test_the_docs_example_runs_as_a_plugin_package_would(tmp_path: Path) -> None:
    """docs/plugins.md's "Testing a plugin" example, saved as a test file outside tela's tree (no
    conftest.py), passes in a fresh pytest: the fixtures arrive by name through the entry point."""
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Testing a plugin\n") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    (block,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.M | re.S)
    assert "register_plugin" in block and "tela_cli" in block and "tiny_router" in block
    (tmp_path / "test_thirdparty.py").write_text(block)
    # and what tela_offline and isolated_cache promise, started from an environment without them
    (tmp_path / "test_env.py").write_text(
        textwrap.dedent("""
        import os

        def test_offline_and_own_cache(tela_offline, isolated_cache, tmp_path):
            assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
            assert os.environ["TELA_CACHE"] == str(isolated_cache) == str(tmp_path / "cache")

        def test_nothing_is_set_without_them():
            assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TELA_CACHE"] == "/nonexistent-shared-cache"
    """)
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and k not in OFFLINE_VARS}
    env["TELA_CACHE"] = "/nonexistent-shared-cache"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_thirdparty.py", "test_env.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout
