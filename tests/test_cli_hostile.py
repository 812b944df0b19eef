"""The tela CLI used carelessly: a required option left out is click's one-line usage error with
exit code 2, never a traceback."""

from __future__ import annotations

import click
import pytest

from tela_core.data import sample_path
from tela_core.testkit.helpers import run_cli

SAMPLE = sample_path("mmlu_heldout_sample.jsonl")


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "--router", "random", "--data", SAMPLE),
        ("data", "split", "--protocol", "mmlu-heldout", SAMPLE),
        ("zoo", "--data", SAMPLE, "--families", "length"),
    ],
)
def test_a_missing_output_is_a_usage_error_not_a_traceback(args) -> None:
    """click 8.3+ takes an explicit default=None as a value that satisfies required=True: tela eval
    and tela data split without -o crashed with AttributeError: 'NoneType' object has no attribute 'exists'."""
    r = run_cli(*args)
    assert r.exit_code == 2, r.output
    assert "Missing option '--output' / '-o'" in r.output and "Traceback" not in r.output


def test_no_required_option_has_a_default_that_satisfies_it() -> None:
    from tela_core.cli.main import get_cli

    found = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, path + [name])
            return
        found.extend(f"tela {' '.join(path)} {p.opts[0]}" for p in cmd.params if p.required and p.default is None)

    walk(get_cli(), [])
    assert not found
