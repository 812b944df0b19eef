"""The deprecation policy for moved modules (docs/plugins.md, "Public API"): every pre-0.2 module
path still imports, is the very module it moved to, and warns with TelaDeprecationWarning naming
the new path and the removing release. Checked in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tela_core
from tela_core.infra.deprecation import MOVED_MODULES, REMOVED_IN, TelaDeprecationWarning


def test_every_moved_module_imports_as_the_new_module_with_a_warning() -> None:
    code = f"""
import importlib, json, sys, warnings
warnings.simplefilter("always")
out = {{}}
for old, new in {dict(MOVED_MODULES)!r}.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    out[old] = {{"same": mod is importlib.import_module(new),
                "warnings": [f"{{w.category.__name__}}: {{w.message}}" for w in caught]}}
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for old, new in MOVED_MODULES.items():
        assert out[old]["same"], f"{old} is not {new}"
        said = [w for w in out[old]["warnings"] if w.startswith("TelaDeprecationWarning") and old in w]
        assert said and new in said[0] and f"tela {REMOVED_IN}" in said[0], (old, out[old]["warnings"])


def test_from_old_path_import_name_works() -> None:
    with pytest.warns(TelaDeprecationWarning, match="tela_core.data.records"):
        sys.modules.pop("tela_core.records", None)
        from tela_core.records import Record  # noqa: F401  -- the old spelling a 0.1 plugin uses
    assert Record is tela_core.Record


def test_old_module_as_attribute_of_the_package() -> None:
    sys.modules.pop("tela_core.errors", None)
    tela_core.__dict__.pop("errors", None)
    with pytest.warns(TelaDeprecationWarning):
        mod = tela_core.errors
    assert mod.TelaError is tela_core.TelaError
    with pytest.raises(AttributeError):
        tela_core.no_such_module  # noqa: B018


def test_models_module_names_still_resolve() -> None:
    import tela_core.models
    from tela_core.models.resolve import resolve_model

    with pytest.warns(TelaDeprecationWarning, match="tela_core.models.resolve.resolve_model"):
        assert tela_core.models.resolve_model is resolve_model


def test_the_vector_cache_under_its_old_name_is_the_same_module() -> None:
    """``tela_core.models.embeddings`` (the name before 0.2) is ``vector_cache``, as an attribute too."""
    import tela_core.models
    from tela_core.models import vector_cache

    sys.modules.pop("tela_core.models.embeddings", None)
    tela_core.models.__dict__.pop("embeddings", None)
    with pytest.warns(TelaDeprecationWarning, match="use tela_core.models.vector_cache instead"):
        assert tela_core.models.embeddings is vector_cache


def test_load_router_shim_warns_and_returns_the_scorer(tiny_router) -> None:
    from tela_core.routing.artifact import load_router

    with pytest.warns(TelaDeprecationWarning, match=r"Router\.load"):
        scorer = load_router(tiny_router)
    ws = scorer.score(["What is 2 + 2?"])
    assert len(ws.w) == 1 and 0.0 <= float(ws.w[0]) <= 1.0


def test_tela_code_itself_uses_no_deprecated_path() -> None:
    """tela's own modules import only new paths: importing every module warns about nothing."""
    code = """
import importlib, pkgutil, warnings
from tela_core.infra.deprecation import TelaDeprecationWarning
warnings.simplefilter("error", TelaDeprecationWarning)
import tela_core, tela_plugins
for pkg in (tela_core, tela_plugins):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if m.name.endswith("pytest_plugin"):
            continue
        try:
            importlib.import_module(m.name)
        except ImportError as e:   # an optional extra not installed is not this test's business
            if "Deprecat" in str(e):
                raise
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_benchmarks_and_tests_ask_the_registry_for_the_family_kind_by_its_name() -> None:
    """bench/ and tests/ call ``reg.create("family", ...)``: the kind ``scorer`` is a deprecated
    alias (a warning per call). Only the tests of the alias itself, and the frozen 0.1 plugin,
    which must keep working unchanged, still say ``scorer``."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    alias_tests = {"tests/test_plugins.py", "tests/test_sources.py", "tests/test_deprecation.py"}
    call = re.compile(r"\.(?:create|get|names)\(\s*[\"']scorer[\"']")
    found = []
    for path in sorted([*root.glob("bench/**/*.py"), *root.glob("tests/**/*.py")]):
        rel = path.relative_to(root).as_posix()
        if rel in alias_tests or rel.startswith("tests/frozen/"):
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}" for m in call.finditer(text)]
    assert not found, "the deprecated kind 'scorer' (use 'family'): " + ", ".join(found)
