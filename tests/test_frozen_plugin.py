"""A plugin package written for an older tela keeps working on this one (docs/plugins.md, "Public
API"). ``tests/frozen/tela-old-plugin-0.1`` is a copy of a third-party package written against tela
0.1 from that release's docs (a source, a formatter, a family, a policy, a command, importing
``tela_core.artifact.load_router`` and the other module paths of the time). It is never edited when
tela changes: this test installs it with pip, as its users would, and runs *its own* tests against
today's tela. They must pass with no warning other than ``TelaDeprecationWarning``."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tela_core.testkit import OFFLINE_VARS

FROZEN = Path(__file__).resolve().parent / "frozen" / "tela-old-plugin-0.1"
FROZEN_SHA256 = "b2bdb27176fbc97f0ac1963452552e536100f273e1cc96238743fb996c7f657f"

#: what the frozen package relies on that tela has deprecated since; each must warn, naming its
#: replacement and the release that removes it (when that release comes, the frozen copy is
#: replaced by one written for a newer tela, never edited).
EXPECTED_DEPRECATIONS = [
    "tela_core.artifact.load_router is deprecated: use tela_core.Router.load",
    "tela_core.artifact is deprecated: use tela_core.routing.artifact",
    "tela_core.records is deprecated: use tela_core.data.records",
    "tela_core.io is deprecated: use tela_core.infra.io",
    "tela_core.errors is deprecated: use tela_core.infra.errors",
    "KeywordScorer.load(artifact_dir) without a context parameter is deprecated: use load(",
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The frozen package pip-installed (not editable) into a scratch site folder; returns (copy of
    the source, site folder). The source is copied first so the build leaves nothing in tests/."""
    root = tmp_path_factory.mktemp("frozen-plugin")
    src, site = root / "src", root / "site"
    shutil.copytree(FROZEN, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(site),
        str(src),
    ]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "tela_old_plugin").is_dir() and list(site.glob("tela_old_plugin-0.1.0.dist-info"))
    return src, site


def frozen_digest(root: Path) -> str:
    """sha256 over the package's files (relative path and bytes), build leftovers excluded."""
    h = hashlib.sha256()
    skip = {"__pycache__", "build", ".pytest_cache"}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root)
        if skip & set(rel.parts) or rel.parts[0].endswith(".egg-info"):
            continue
        h.update(rel.as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def test_the_frozen_package_is_unchanged_since_it_was_frozen() -> None:
    """Editing the frozen copy to follow tela would hide the break it exists to catch."""
    assert frozen_digest(FROZEN) == FROZEN_SHA256, f"{FROZEN.name} is frozen: do not edit it (see its README)"


def test_a_plugin_written_for_tela_0_1_passes_its_own_tests(installed: tuple[Path, Path], tmp_path: Path) -> None:
    src, site = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELA_") and k != "PYTHONPATH"}
    env.update(OFFLINE_VARS, PYTHONPATH=str(site), TELA_CACHE=str(tmp_path / "cache"))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(src),
        "-c",
        str(src / "pyproject.toml"),  # the package's own (empty) pytest settings, not tela's
        "-W",
        "error",
        "-W",
        "always::tela_core.TelaDeprecationWarning",
        str(src / "tests"),
    ]
    done = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"=* ?12 passed(, \d+ warnings?)? in [\d.]+s ?=*", summary), summary
    warned = [line.strip() for line in out.splitlines() if "Warning: " in line]
    assert warned and all("TelaDeprecationWarning: " in w for w in warned), warned
    for expected in EXPECTED_DEPRECATIONS:
        hits = [w for w in warned if expected in w]
        assert hits, f"no warning {expected!r} in {warned}"
        assert all(re.search(r"will be removed in tela \d+\.\d+", w) for w in hits), hits
