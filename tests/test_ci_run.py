"""`.ci/run` finds the public datasets beside the checkout (``../shared/data`` from the repository
root), wherever the clone lives, and names no machine's absolute path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_ci(tmp_path: Path, with_data: bool, env_data: str | None = None) -> str:
    """Run a copy of `.ci/run` from a clone at tmp_path/somewhere/tela with a `make` that prints
    the TELA_TEST_DATA it was given."""
    clone = tmp_path / "somewhere" / "tela"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "run", clone / ".ci" / "run")
    if with_data:
        (tmp_path / "somewhere" / "shared" / "data").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text('#!/bin/sh\necho "make $* TELA_TEST_DATA=${TELA_TEST_DATA:-unset} in $(pwd)"\n')
    make.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TELA_TEST_DATA"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    if env_data is not None:
        env["TELA_TEST_DATA"] = env_data
    out = subprocess.run(
        [str(clone / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_ci_finds_the_shared_data_beside_the_clone(tmp_path: Path) -> None:
    clone = tmp_path / "somewhere" / "tela"
    data = tmp_path / "somewhere" / "shared" / "data"
    assert _run_ci(tmp_path, with_data=True) == f"make test TELA_TEST_DATA={data} in {clone}"


def test_ci_without_shared_data_leaves_the_variable_unset(tmp_path: Path) -> None:
    assert _run_ci(tmp_path, with_data=False).startswith("make test TELA_TEST_DATA=unset")


def test_ci_keeps_a_caller_provided_data_folder(tmp_path: Path) -> None:
    assert "TELA_TEST_DATA=/elsewhere/data " in _run_ci(tmp_path, with_data=True, env_data="/elsewhere/data")


def test_ci_names_no_absolute_data_path() -> None:
    import re

    text = (REPO / ".ci" / "run").read_text()
    # no absolute path outside the shebang: the data folder is found relative to the checkout
    body = text.split("\n", 1)[1]
    assert not re.findall(r"(?<![\w.$})])/[A-Za-z]\w*/", body) and "../shared/data" in text
