"""The public API a plugin may import (docs/plugins.md, "Public API") and the deprecation policy.

- every public name imports, in a fresh interpreter, without any warning;
- the table in docs/plugins.md and each module's ``__all__`` agree;
- the docs and the example packages import nothing but public names;
- every public name of tela 0.1.0 (frozen in ``tests/frozen/tela-0.1.0-api.json``) still imports,
  at most with a ``TelaDeprecationWarning`` naming its replacement and the release that removes it;
- a shim lives at least one minor release and is gone by the release it names; each is in the
  changelog.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from _pytest.fixtures import getfixturemarker

import tela_core
from tela_core.infra import deprecation

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
CHANGELOG = ROOT / "CHANGELOG.md"
FROZEN_API = ROOT / "tests" / "frozen" / "tela-0.1.0-api.json"


def public_api() -> dict[str, list[str]]:
    """The "Public API" table of docs/plugins.md: module -> names, in the doc's order."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## Public API\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    rows = re.findall(r"^\| `(tela_core[\w.]*)` \| (.+) \|$", section, flags=re.M)
    assert rows, "docs/plugins.md: the Public API table has no rows"
    return {module: re.findall(r"`(\w+)`", names) for module, names in rows}


def declared(module: Any) -> set[str]:
    """A module's public names: its ``__all__``, or for the test kit's pytest plugin its fixtures."""
    if hasattr(module, "__all__"):
        return set(module.__all__)
    fixtures = {n for n, v in vars(module).items() if not n.startswith("_") and getfixturemarker(v) is not None}
    assert fixtures, f"{module.__name__} has no __all__ (and no fixtures): say what is public"
    return fixtures


API = public_api()


@pytest.mark.parametrize("module", sorted(API))
def test_the_docs_table_lists_exactly_the_modules___all__(module: str) -> None:
    doc, code = set(API[module]), declared(importlib.import_module(module))
    assert doc == code, (
        f"{module}: docs/plugins.md 'Public API' and __all__ differ; only in the docs: {sorted(doc - code)}, "
        f"only in __all__: {sorted(code - doc)} (a new public name goes in both; a removed one gets a shim first)"
    )
    assert len(API[module]) == len(doc), f"{module}: a name is listed twice in docs/plugins.md"


def test_every_public_name_imports_in_a_fresh_interpreter_without_a_warning() -> None:
    """A fresh interpreter with warnings as errors: no public module reaches a deprecated path on
    import (tela's own code must use the new ones) and every listed name is there."""
    lines = ["import importlib", "missing = []"]
    for module, names in API.items():
        lines.append(f"m = importlib.import_module({module!r})")
        lines.append(f"missing += [{module!r} + '.' + n for n in {names!r} if not hasattr(m, n)]")
    lines.append("print(missing)")
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout


def _imports(text: str) -> list[tuple[str, list[str]]]:
    """(module, names) for each ``from tela_core... import ...`` / ``import tela_core...`` in text
    (Python source, or markdown whose code lines hold them)."""
    out = []
    for m in re.finditer(r"^\s*from (tela_core[\w.]*) import \(?([\w, \n]+?)\)?\s*$", text, flags=re.M):
        out.append(
            (m.group(1), [n.strip().split(" as ")[0] for n in m.group(2).replace("\n", " ").split(",") if n.strip()])
        )
    for m in re.finditer(r"^\s*import (tela_core[\w.]*)\s*$", text, flags=re.M):
        out.append((m.group(1), []))
    return out


def _python_imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("tela_core"):
            out.append((node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("tela_core")]
    return out


def _not_public(module: str, names: list[str]) -> list[str]:
    if module not in API:
        return [f"module {module}"]
    return [f"{module}.{n}" for n in names if n not in API[module]]


def test_the_docs_import_only_public_names() -> None:
    bad = []
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = doc.read_text(encoding="utf-8")
        if "\n### Deprecation policy\n" in text:  # names the deprecated paths on purpose
            cut = text.index("\n### Deprecation policy\n")
            end = text.find("\n## ", cut)
            text = text[:cut] + (text[end:] if end != -1 else "")
        bad += [f"{doc.name}: {x}" for module, names in _imports(text) for x in _not_public(module, names)]
        if doc.name in ("plugins.md", "zoo.md"):  # prose naming an API (`tela_core.x.y`) for plugin authors
            for ref in sorted(set(re.findall(r"`(tela_core(?:\.\w+)+)", text))):
                parts = ref.split(".")
                prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
                module = next((p for p in prefixes if p in API), None)
                rest = ref[len(module) + 1 :].split(".") if module and ref != module else []
                if module is None or (rest and rest[0] not in API[module]):
                    bad.append(f"{doc.name}: {ref}")
    assert not bad, f"the docs show imports that are not in the Public API table: {bad}"


def test_the_example_packages_import_only_public_names() -> None:
    """examples/ are third-party packages: they use tela the way the docs promise will last."""
    bad = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        bad += [
            f"{path.relative_to(ROOT)}: {x}"
            for module, names in _python_imports(path)
            for x in _not_public(module, names)
        ]
    assert not bad, bad


def _frozen_api() -> dict[str, list[str]]:
    return json.loads(FROZEN_API.read_text(encoding="utf-8"))["modules"]


_CHECK_OLD_API = r"""
import importlib, json, sys, warnings
import tela_core
api = json.loads(sys.argv[1])
result = {"missing": [], "warnings": []}
for module, names in api.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = importlib.import_module(module)
            result["missing"] += [f"{module}.{n}" for n in names if not hasattr(m, n)]
        except ImportError as e:
            result["missing"].append(f"{module}: {e}")
    result["warnings"] += [
        {"module": module, "category": w.category.__name__, "message": str(w.message),
         "is_tela": issubclass(w.category, tela_core.TelaDeprecationWarning)}
        for w in caught
    ]
print(json.dumps(result))
"""


def test_every_public_name_of_tela_0_1_still_imports() -> None:
    """What a plugin written for tela 0.1.0 imports still works; a moved module warns once, with a
    TelaDeprecationWarning that names where it went and when the old path goes."""
    api = _frozen_api()
    done = subprocess.run(
        [sys.executable, "-c", _CHECK_OLD_API, json.dumps(api)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert not result["missing"], result["missing"]
    others = [w for w in result["warnings"] if not w["is_tela"]]
    assert not others, f"warnings other than TelaDeprecationWarning: {others}"
    for w in result["warnings"]:
        assert re.search(r" is deprecated: use \S+.* instead \(.+ will be removed in tela \d+\.\d+\)", w["message"]), w
    warned = {w["module"] for w in result["warnings"]}
    moved = {m for m in api if m in deprecation.MOVED_MODULES}
    assert moved <= warned, f"old module paths that import without a warning: {sorted(moved - warned)}"


def _minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_shims_last_one_minor_release_and_go_when_they_said() -> None:
    now, removed_in = _minor(tela_core.__version__), _minor(deprecation.REMOVED_IN)
    assert removed_in > now, (
        f"tela {tela_core.__version__} is the release the shims named for their removal ({deprecation.REMOVED_IN}): "
        "remove them (CHANGELOG 'Removed') or, if they must stay, name a later release"
    )
    assert removed_in >= (now[0], now[1] + 1)


def _deprecated_aliases() -> list[str]:
    """The old names given to :func:`deprecated_alias` anywhere in tela_core."""
    names = []
    for path in (ROOT / "tela_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "deprecated_alias"
            ):
                if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    names.append(str(node.args[1].value))
    return names


def test_every_shim_is_in_the_changelog() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    unreleased = text[text.index("## [Unreleased]") : text.index("\n## [", text.index("## [Unreleased]") + 1)]
    deprecated = unreleased[unreleased.index("### Deprecated") :]
    deprecated = deprecated[: deprecated.find("\n### ", 1) if "\n### " in deprecated[1:] else len(deprecated)]
    aliases = _deprecated_aliases()
    assert "tela_core.artifact.load_router" in aliases
    missing = [old for old in aliases if old not in deprecated]
    missing += [
        old
        for old in deprecation.MOVED_MODULES
        if f"`{old.rsplit('.', 1)[1]}`" not in deprecated and f"`{old}`" not in deprecated
    ]
    assert not missing, f"CHANGELOG.md [Unreleased] 'Deprecated' does not name: {missing}"


def test_the_changelog_keeps_the_format() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\](.*)$", text, flags=re.M)
    assert versions[0][0] == "Unreleased"
    for version, rest in versions[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version) and re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), (version, rest)
    kinds = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    unreleased = text[text.index("## [Unreleased]") : text.index(f"## [{versions[1][0]}]")]
    assert set(re.findall(r"^### (.+)$", unreleased, flags=re.M)) <= kinds
    assert _minor(versions[1][0]) < _minor(tela_core.__version__), (
        "the newest release in the changelog is older than this one"
    )


def test_the_docs_way_to_find_deprecated_uses_finds_them(tmp_path: Path) -> None:
    """``pytest -W error::tela_core.TelaDeprecationWarning`` (what docs/plugins.md tells authors to
    run) fails a plugin's test that imports an old path, naming the replacement."""
    (tmp_path / "test_old_style.py").write_text(
        "from tela_core.records import seed_record\n\n\ndef test_seed():\n    assert seed_record('q', label=1).label == 1\n",  # noqa: E501
        encoding="utf-8",
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(tmp_path),
        "-W",
        "error::tela_core.TelaDeprecationWarning",
        "test_old_style.py",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    assert "TelaDeprecationWarning: tela_core.records is deprecated: use tela_core.data.records" in done.stdout


def test_warnings_filter_sees_the_shim_as_a_deprecation() -> None:
    assert issubclass(tela_core.TelaDeprecationWarning, DeprecationWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deprecation.warn_deprecated("tela_core.old", "tela_core.new")
    assert [str(w.message) for w in caught] == [
        f"tela_core.old is deprecated: use tela_core.new instead (tela_core.old will be removed in tela {deprecation.REMOVED_IN})"  # noqa: E501
    ]
