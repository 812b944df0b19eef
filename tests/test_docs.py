"""Meta-tests: the plugin contract lives in docs/plugins.md and cannot drift from the code.

After datasette's tests/test_docs.py: every hook spec is documented with its exact signature and
has a ``test_hook_<name>`` test; every component method, error and env var a plugin author needs
is documented; the guide's code examples compile and its hook examples register cleanly.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from tela_core import components, hookspecs
from tela_core.infra import errors
from tela_core.plugins.discovery import get_registry, reset
from tela_core.testkit.helpers import registered_plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_MD = ROOT / "docs" / "plugins.md"
INDEX_MD = ROOT / "docs" / "index.md"


def _hook_specs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "tela_spec")
    }


HOOKS = _hook_specs()


def _signature(name: str) -> str:
    return f"{name}({', '.join(HOOKS[name].parameters)})"


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    nxt = re.search(rf"^{level} ", text[start + len(heading) + 2 :], flags=re.M)
    return text[start : start + len(heading) + 2 + nxt.start()] if nxt else text[start:]


@pytest.fixture(scope="module")
def plugins_md() -> str:
    return PLUGINS_MD.read_text(encoding="utf-8")


def test_there_are_hooks():
    assert {
        "tela_register_sources",
        "tela_register_formatters",
        "tela_register_backends",
        "tela_register_scorers",
        "tela_register_policies",
        "tela_register_commands",
    } <= HOOKS.keys()


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_its_exact_signature(plugins_md, hook):
    assert f"\n### {_signature(hook)}\n" in plugins_md, f"docs/plugins.md needs a '### {_signature(hook)}' section"


def test_no_documented_hook_is_missing_from_the_specs(plugins_md):
    documented = re.findall(r"^### (tela_\w+)\(", plugins_md, flags=re.M)
    assert documented and set(documented) <= HOOKS.keys()


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test(hook):
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests, f"write test_hook_{hook} in tests/test_plugins.py"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_each_hook_section_has_an_example_implementing_it(plugins_md, hook):
    section = _section(plugins_md, f"### {_signature(hook)}")
    assert re.search(rf"@hookimpl\ndef {hook}\(", section), f"the {hook} section needs an example"


def test_component_methods_are_documented(plugins_md):
    """Every public method and optional capability a base class declares (a class attribute, or an
    annotated instance attribute such as ``Source.stats``) is in docs/plugins.md."""
    assert "stats" in vars(components.Source).get("__annotations__", {})  # annotations are covered too
    for cls in (
        components.Source,
        components.Formatter,
        components.Backend,
        components.Scorer,
        components.Policy,
        components.Upstream,
        components.Judge,
    ):
        declared = list(vars(cls)) + list(vars(cls).get("__annotations__", {}))
        public = [n for n in dict.fromkeys(declared) if not n.startswith("_") and n != "kind"]
        assert public, cls
        for member in public:
            assert f"`{cls.__name__}.{member}" in plugins_md, f"document {cls.__name__}.{member}"
    for name in (
        "name",
        "description",
        "Options",
        "NoOptions",
        "TrainJob",
        "Scores",
        "Formatted",
        "Record",
        "JudgeItem",
        "JudgeRequest",
        "Verdict",
    ):
        assert f"`{name}" in plugins_md, name


def test_trainjob_fields_are_documented(plugins_md):
    section = _section(plugins_md, "### Backend")
    for f in components.TrainJob.__dataclass_fields__:
        assert f"`{f}`" in section, f"TrainJob.{f}"


def test_errors_are_documented(plugins_md):
    for name in errors.__all__:
        assert f"`{name}" in plugins_md, name


def test_env_vars_are_documented(plugins_md):
    import tela_core.plugins.discovery as plugins_mod

    env_vars = set(re.findall(r"TELA_[A-Z_]+", plugins_mod.__doc__ or ""))
    assert env_vars >= {"TELA_LOAD_PLUGINS", "TELA_DISABLE_PLUGINS"}
    for var in env_vars:
        assert f"`{var}" in _section(plugins_md, "## Environment variables"), var


def test_python_examples_compile(plugins_md):
    blocks = _code_blocks(plugins_md, "python")
    assert len(blocks) >= 8
    for i, block in enumerate(blocks):
        compile(block, f"docs/plugins.md block {i}", "exec")


def test_toml_example_declares_the_entry_point(plugins_md):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    (toml,) = _code_blocks(plugins_md, "toml")
    eps = tomllib.loads(toml)["project"]["entry-points"]["tela"]
    assert eps == {"example": "tela_example_plugin"}
    real = tomllib.loads((ROOT / "examples/tela-example-plugin/pyproject.toml").read_text())
    assert real["project"]["entry-points"]["tela"] == eps


def test_hook_examples_register_cleanly(plugins_md):
    """Each hook section's example, run as a plugin module, loads and registers its component."""
    reset()
    for hook in sorted(HOOKS):
        block = _code_blocks(_section(plugins_md, f"### {_signature(hook)}"), "python")[0]
        module = types.ModuleType(f"docs_example_{hook}")
        exec(compile(block, f"docs/plugins.md ({hook})", "exec"), module.__dict__)
        with registered_plugin(module, f"docs-{hook}") as reg:  # one at a time: each alone in the registry
            info = reg.plugins[f"docs-{hook}"]
            assert info.error is None, info.error
            assert info.hooks == [hook]
            if hook != "tela_register_commands":
                assert info.components, f"the {hook} example registers nothing"


def test_tutorial_code_is_the_example_plugin(plugins_md):
    """The tutorial shows the example package's real code, so it cannot rot."""
    tutorial = _code_blocks(_section(plugins_md, "### The package"), "python")[0]
    real = (ROOT / "examples/tela-example-plugin/tela_example_plugin/__init__.py").read_text()
    for line in tutorial.strip().splitlines():
        assert line in real.splitlines(), f"tutorial line not in the example plugin: {line!r}"


def test_user_guide_mentions_every_top_level_command():
    from tela_core.cli.main import get_cli

    index = INDEX_MD.read_text(encoding="utf-8")
    builtin = {"tela_core"} | {d.name for d in (ROOT / "plugins").iterdir() if d.is_dir()}
    ours = {
        name: cmd
        for name, cmd in get_cli().commands.items()
        if (getattr(cmd.callback, "__module__", "") or "tela_core").split(".")[0] in builtin
    }
    assert {"run", "eval", "serve"} <= set(ours)  # the filter keeps tela's own commands
    for name in ours:  # a third-party plugin's command is its own docs' business
        assert f"tela {name}" in index, f"docs/index.md does not mention `tela {name}`"


def test_scorer_and_policy_examples_work_end_to_end(plugins_md, tmp_path, register_plugin):
    """The scorer example trains, saves its options and pair, and loads through the Router API;
    the policy example is then picked by name, as a user would with --policy."""
    from tela_core import Record, Router

    for hook in ("tela_register_scorers", "tela_register_policies"):
        block = _code_blocks(_section(plugins_md, f"### {_signature(hook)}"), "python")[0]
        module = types.ModuleType(f"docs_e2e_{hook}")
        exec(compile(block, f"docs/plugins.md ({hook})", "exec"), module.__dict__)
        register_plugin(module, f"docs-e2e-{hook}")
    recs = [Record(prompt="x" * (10 + 7 * i), outcomes={"big": 1.0, "small": float(i % 3 != 0)}) for i in range(30)]
    scorer = get_registry().create("family", "prompt-length", {})
    scorer.fit(recs, tmp_path / "r", {})
    router = Router.load(tmp_path / "r")
    assert router.models == ["small", "big"]  # resolved by tela's one rule: lower mean is weak
    short, long_ = "x" * 5, "x" * 10_000
    assert router.route([short, long_]) == ["small", "big"]
    picked = Router.load(tmp_path / "r", policy="strong-if-above", policy_options={"threshold": 0.0})
    assert picked.route([short]) == ["big"]


def test_family_sdk_example_trains_and_loads(plugins_md, tmp_path, register_plugin):
    """The family-SDK example (FamilyScorer + TargetOptions) trains with the pair handed over in
    ``config``, writes a manifest that restores its options, loads through the Router API and
    routes; a damaged artifact file is one TelaError naming it."""
    from tela_core import Record, Router, TelaError
    from tela_core.routing.artifact import read_manifest
    from tela_core.routing.family import FamilyScorer, TargetOptions

    (block,) = _code_blocks(_section(plugins_md, "### The family SDK"), "python")
    assert "from tela_core.routing.family import FamilyScorer, TargetOptions" in block
    module = types.ModuleType("docs_family_sdk")
    exec(compile(block, "docs/plugins.md (family SDK)", "exec"), module.__dict__)
    assert issubclass(module.KeywordScorer, FamilyScorer) and issubclass(module.KeywordOptions, TargetOptions)
    register_plugin(module, "docs-family-sdk")
    # "prove" prompts are the ones the small model gets wrong; a third model is ignored by the pair
    recs = [
        Record(
            prompt=("prove that " if i % 2 else "what is ") + f"item {i}",
            outcomes={"small": float(i % 2 == 0), "big": 1.0, "other": 0.5},
        )
        for i in range(20)
    ]
    scorer = get_registry().create("family", "keyword-rate", {"keywords": ["prove"]})
    out = scorer.fit(recs, tmp_path / "r", {"weak": "small", "strong": "big", "seed": 0})
    manifest = read_manifest(out)
    assert manifest["scorer_options"]["keywords"] == ["prove"]
    assert (manifest["weak"], manifest["strong"], manifest["train_records"]) == ("small", "big", 20)
    router = Router.load(out)
    assert router.models == ["small", "big"]
    assert router.route(["Prove it", "hello"]) == ["big", "small"]
    (out / "rates.json").write_text("{")
    with pytest.raises(TelaError, match="rates.json: damaged router file"):
        Router.load(out)


#: a placeholder left for a number or a sentence still to write, in capitals (BENCH-SUMMARY, TODO, TBD, FIXME)
PLACEHOLDER = re.compile(r"\b(?:BENCH-[A-Z][A-Z-]*|TODO|TBD|FIXME)\b")


def test_no_doc_holds_a_placeholder():
    """A user reads the docs as written: none under docs/ (nor the README) still holds a placeholder."""
    found = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])
        for i, line in enumerate(p.read_text(encoding="utf-8").split("\n"), start=1)
        if PLACEHOLDER.search(line)
    ]
    assert not found, "\n".join(found)
