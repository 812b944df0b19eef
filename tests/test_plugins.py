"""The plugin system: entry-point discovery, the registry's errors, env-var controls, and one
``test_hook_<name>`` per hook spec (tests/test_docs.py checks that each hook has one).

In-process plugins are registered with the test kit's :func:`tela_core.testkit.helpers.registered_plugin`
(removed when the block ends, so a test can check what is left after it); anything that needs a
real distribution (entry points, env vars read by a fresh process, import-time failures) runs
``tela`` in a subprocess.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest

from tela_core import (
    Backend,
    DuplicateComponentError,
    Formatted,
    Formatter,
    Policy,
    Scorer,
    Scores,
    Source,
    TelaDeprecationWarning,
    TelaError,
    UnknownComponentError,
    hookimpl,
)
from tela_core.cli.main import get_cli
from tela_core.plugins.discovery import RENAMED_BUILTINS, _extra_plugins, get_registry, reset
from tela_core.testkit.helpers import TelaCli, registered_plugin

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_FORMATTERS = {"role-prefix", "chat-template"}


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Every test starts and ends with a registry built from the installed plugins only."""
    assert not _extra_plugins, f"a test leaked in-process plugins: {_extra_plugins}"
    reset()
    try:
        yield
    finally:
        reset()


def registering(hook: str, *classes: type) -> Any:
    """A plugin object whose ``hook`` registers ``classes``."""

    def impl(self: Any, register: Any) -> None:
        for cls in classes:
            register(cls)

    impl.__name__ = hook
    return type("InProcessPlugin", (), {hook: hookimpl(impl)})()


def by_name(listing: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in listing}


def run_tela(
    *args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    """``tela ARGS`` in a fresh interpreter (entry points and env vars are read at start-up)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TELA_") or k == "TELA_CACHE"}
    full_env["COLUMNS"] = "200"
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    code = "import sys; from tela_core.cli.main import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], env=full_env, capture_output=True, text=True, timeout=60)


def fake_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed-looking distribution in ``root``: ``*.dist-info`` with METADATA, entry points
    in group ``tela``, and the modules they point to."""
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tela]\n{eps}")
    for mod, src in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))


class EchoFormatter(Formatter):
    """Test formatter: the last user message, verbatim."""

    name = "test-echo"

    def format(self, messages: Sequence[Any], tokenizer: Any = None) -> Formatted:
        return Formatted(prompt=messages[-1]["content"], completion="")


# -- builtins through entry points ------------------------------------------------------------


def test_builtins_load_through_the_tela_entry_point_group():
    import importlib.metadata as md

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["tela"]
    installed = {ep.name: ep.value for ep in md.entry_points(group="tela") if ep.dist and ep.dist.name == "tela"}
    assert installed == declared, "installed entry points differ from pyproject.toml: rerun `make install`"
    misnamed = {n: v for n, v in declared.items() if v != f"tela_plugins.{n.replace('-', '_')}"}
    assert not misnamed, f"a builtin's entry-point name is its folder's name (- for _): {misnamed}"
    reg = get_registry()
    for name in declared:
        info = reg.plugins[name]
        assert info.dist == "tela" and info.version
        assert info.error is None, f"builtin plugin {name!r} is broken: {info.error}"
    assert reg.entry("source", "jsonl").plugin == "jsonl"
    assert {reg.entry("formatter", n).plugin for n in BUILTIN_FORMATTERS} == {"formatters"}


def test_plugins_list_json_shape_and_kind_filter(tela_cli):
    listing = tela_cli.json("plugins", "list", "--json")
    assert isinstance(listing, list) and listing
    for p in listing:
        assert {"name", "version", "hooks", "provides"} <= p.keys()
        assert isinstance(p["hooks"], list) and isinstance(p["provides"], dict)
        assert all(h.startswith("tela_register_") for h in p["hooks"])
    plugins = by_name(listing)
    assert plugins["jsonl"]["provides"] == {"source": ["jsonl"]}
    assert plugins["jsonl"]["hooks"] == ["tela_register_sources"]
    assert set(plugins["formatters"]["provides"]["formatter"]) == BUILTIN_FORMATTERS

    formatters = tela_cli.json("plugins", "list", "--json", "--kind", "formatter")
    assert formatters and all(set(p["provides"]) == {"formatter"} for p in formatters)
    names = {n for p in formatters for n in p["provides"]["formatter"]}
    assert BUILTIN_FORMATTERS <= names
    assert "jsonl" not in by_name(formatters)


def test_example_plugin_is_listed(tela_cli):
    plugins = by_name(tela_cli.json("plugins", "list", "--json"))
    assert "example" in plugins, "install it: .venv/bin/pip install -e examples/tela-example-plugin"
    ex = plugins["example"]
    assert ex["distribution"] == "tela-example-plugin" and ex["version"] == "0.1.0"
    assert ex["provides"] == {"formatter": ["question-only"]} and not ex["broken"]
    fmt = get_registry().create("formatter", "question-only")
    out = fmt.format([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "[[1]]"}])
    assert (out.prompt, out.completion) == ("Q: 2+2?\nScore: ", "[[1]]")


# -- registry errors --------------------------------------------------------------------------


def test_duplicate_name_is_an_error_naming_both_plugins(tela_cli):
    class Impostor(EchoFormatter):
        name = "role-prefix"

    with registered_plugin(registering("tela_register_formatters", Impostor), "impostor") as reg:
        with pytest.raises(DuplicateComponentError) as exc:
            reg.entry("formatter", "role-prefix")
        msg = str(exc.value)
        assert "'formatters' and 'impostor'" in msg and "TELA_DISABLE_PLUGINS" in msg
        listed = by_name(tela_cli.json("plugins", "list", "--json"))
        assert listed["impostor"]["broken"] and "'formatters' and 'impostor'" in listed["impostor"]["error"]
        assert not listed["formatters"]["broken"]
        assert reg.entry("formatter", "chat-template").plugin == "formatters"  # others unaffected


def test_unknown_name_lists_the_registered_ones():
    reg = get_registry()
    with pytest.raises(UnknownComponentError) as exc:
        reg.entry("formatter", "no-such-formatter")
    assert exc.value.exit_code == 2
    assert "unknown formatter 'no-such-formatter'" in str(exc.value)
    for name in BUILTIN_FORMATTERS:
        assert name in str(exc.value)
    with pytest.raises(TelaError, match="unknown component kind 'widget'"):
        reg.entry("widget", "x")


def test_create_validates_options_with_the_options_model():
    reg = get_registry()
    src = reg.create("source", "jsonl", {"require_label": False})
    assert src.options.require_label is False
    with pytest.raises(TelaError, match=r"bad options for source 'jsonl': bogus: unknown option \(options: "):
        reg.create("source", "jsonl", {"bogus": 1})


def test_register_rejects_a_class_of_the_wrong_kind_and_names_the_plugin():
    class NotAFormatter(Policy):
        name = "misfiled"

    with registered_plugin(registering("tela_register_formatters", NotAFormatter), "misfiling") as reg:
        info = reg.plugins["misfiling"]
        assert info.error and "'misfiling'" in info.error and "is a policy, registered as a formatter" in info.error
        assert "misfiled" not in reg.names("formatter") and "misfiled" not in reg.names("policy")


def test_a_failing_hook_is_named_and_the_others_still_load():
    class Boom:
        @hookimpl
        def tela_register_formatters(self, register):
            raise RuntimeError("kaboom")

    with registered_plugin(Boom(), "boom") as reg:
        assert "plugin 'boom' is broken: RuntimeError: kaboom" in reg.plugins["boom"].error
        assert BUILTIN_FORMATTERS <= set(reg.names("formatter"))
        with pytest.raises(UnknownComponentError, match=r"broken plugins not loaded: boom"):
            reg.entry("formatter", "whatever-boom-had")


def test_a_plugin_implementing_an_unknown_hook_is_reported(tela_cli):
    class Typo:
        @hookimpl
        def tela_register_formater(self, register):  # sic
            register(EchoFormatter)

    with registered_plugin(Typo(), "typo") as reg:
        err = reg.plugins["typo"].error
        assert err and "'typo'" in err and "unknown hook(s): tela_register_formater" in err
        assert "tela_register_formatters" in err  # the message lists the real hooks
        assert "test-echo" not in reg.names("formatter")
        listed = by_name(tela_cli.json("plugins", "list", "--json"))
        assert listed["typo"]["broken"] and listed["typo"]["hooks"] == []


def test_a_hook_function_without_hookimpl_is_reported():
    class Forgot:
        def tela_register_formatters(self, register):
            register(EchoFormatter)

    with registered_plugin(Forgot(), "forgot") as reg:
        assert "defines tela_register_formatters without @hookimpl" in reg.plugins["forgot"].error


def test_a_hook_with_a_wrong_argument_name_is_reported():
    class WrongArg:
        @hookimpl
        def tela_register_formatters(self, reg):
            reg(EchoFormatter)

    with registered_plugin(WrongArg(), "wrong-arg") as reg:
        err = reg.plugins["wrong-arg"].error
        assert err and "'wrong-arg'" in err and "reg" in err


# -- third-party distributions (subprocess) ---------------------------------------------------


def test_a_plugin_that_fails_to_import_is_shown_broken_and_does_not_take_tela_down(tmp_path):
    fake_distribution(
        tmp_path,
        "tela-broken-demo",
        {"broken-demo": "tela_broken_demo"},
        {"tela_broken_demo": 'raise ImportError("tela_broken_demo needs frobnicate")\n'},
    )
    # A second distribution reusing a builtin's entry-point name and component name.
    fake_distribution(
        tmp_path,
        "tela-dup-demo",
        {"jsonl": "tela_dup_demo"},
        {
            "tela_dup_demo": """
            from tela_core import Source, hookimpl

            class OtherJsonl(Source):
                name = "jsonl"

                def read(self, path):
                    return iter(())

            @hookimpl
            def tela_register_sources(register):
                register(OtherJsonl)
        """
        },
    )
    res = run_tela("plugins", "list", "--json", pythonpath=tmp_path)
    assert res.returncode == 0, res.stderr
    plugins = by_name(json.loads(res.stdout))
    broken = plugins["broken-demo"]
    assert broken["broken"] and broken["distribution"] == "tela-broken-demo" and broken["version"] == "0.0.1"
    assert "plugin 'broken-demo' (distribution tela-broken-demo) is broken" in broken["error"]
    assert "ImportError: tela_broken_demo needs frobnicate" in broken["error"]
    dup = plugins["tela-dup-demo:jsonl"]
    assert dup["broken"] and "'jsonl' and 'tela-dup-demo:jsonl'" in dup["error"]
    assert not plugins["jsonl"]["broken"] and plugins["jsonl"]["provides"] == {"source": ["jsonl"]}
    assert not plugins["formatters"]["broken"]

    table = run_tela("plugins", "list", pythonpath=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "broken-demo" in table.stdout and "BROKEN" in table.stdout and "frobnicate" in table.stdout
    helped = run_tela("--help", pythonpath=tmp_path)
    assert helped.returncode == 0 and "plugins" in helped.stdout


def test_env_vars_in_a_fresh_process():
    listed = lambda env: by_name(json.loads(run_tela("plugins", "list", "--json", env=env).stdout))  # noqa: E731
    assert "example" not in listed({"TELA_LOAD_PLUGINS": ""})
    assert "example" in listed({"TELA_LOAD_PLUGINS": "tela-example-plugin"})
    disabled = listed({"TELA_DISABLE_PLUGINS": "example,formatters"})
    assert "example" not in disabled and "formatters" not in disabled and "jsonl" in disabled


@pytest.mark.parametrize(
    "env, present, absent",
    [
        ({"TELA_LOAD_PLUGINS": ""}, {"jsonl", "formatters"}, {"example"}),
        ({"TELA_LOAD_PLUGINS": "tela-example-plugin"}, {"jsonl", "example"}, set()),
        ({"TELA_LOAD_PLUGINS": "tela_example_plugin"}, {"example"}, set()),  # _ and - alike
        ({"TELA_LOAD_PLUGINS": "example"}, {"example"}, set()),  # entry-point name
        ({"TELA_LOAD_PLUGINS": "someone-else"}, {"jsonl"}, {"example"}),
        ({"TELA_DISABLE_PLUGINS": "example"}, {"jsonl"}, {"example"}),
        ({"TELA_DISABLE_PLUGINS": "Tela-Example-Plugin"}, {"jsonl"}, {"example"}),  # by distribution
        ({"TELA_DISABLE_PLUGINS": " formatters , jsonl"}, {"example"}, {"formatters", "jsonl"}),
        ({"TELA_DISABLE_PLUGINS": "tela"}, {"example"}, {"jsonl", "formatters"}),  # all builtins
    ],
)
def test_load_and_disable_env_vars(monkeypatch, env, present, absent):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset()
    plugins = get_registry().plugins
    assert present <= plugins.keys()
    assert not (absent & plugins.keys())


def test_a_disabled_builtin_is_an_unknown_name(monkeypatch):
    monkeypatch.setenv("TELA_DISABLE_PLUGINS", "formatters")
    reset()
    with pytest.raises(UnknownComponentError) as exc:
        get_registry().entry("formatter", "role-prefix")
    assert "registered formatters:" in str(exc.value)


@pytest.mark.parametrize("old, new", sorted(RENAMED_BUILTINS.items()))
def test_a_builtin_s_name_before_0_2_still_disables_it_with_a_warning(monkeypatch, old, new):
    """``TELA_DISABLE_PLUGINS=role-prefix`` (a 0.1 user's setting) still disables the formatters."""
    assert new in {ep.name for ep in md.entry_points(group="tela")} and old not in {
        ep.name for ep in md.entry_points(group="tela")
    }
    monkeypatch.setenv("TELA_DISABLE_PLUGINS", old.upper().replace("-", "_"))  # matched as any name is
    reset()
    with pytest.warns(TelaDeprecationWarning, match=f"'{old}' is deprecated: use '{new}' instead"):
        plugins = get_registry().plugins
    assert new not in plugins and "jsonl" in plugins


# -- no heavy imports -------------------------------------------------------------------------

HEAVY = (
    "torch",
    "transformers",
    "deepspeed",
    "peft",
    "trl",
    "sklearn",
    "matplotlib",
    "sentence_transformers",
    "datasets",
    "accelerate",
)

_IMPORT_PROBE = """
import json, sys, traceback
HEAVY = set(sys.argv[1].split(","))
culprits = {}

class Spy:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in culprits:
            frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            culprits[top] = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return None

sys.meta_path.insert(0, Spy())
import tela_core
from tela_core.cli.main import main
for args in (["--help"], ["plugins", "list"], ["plugins", "list", "--json"]):
    try:
        main(args)
    except SystemExit as e:
        assert e.code in (0, None), (args, e.code)
print("PROBE" + json.dumps(culprits))
"""


def test_help_and_plugins_list_import_no_heavy_library():
    res = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr
    culprits = json.loads(res.stdout.rpartition("PROBE")[2])
    assert culprits == {}, f"heavy modules imported at start-up (module -> first importer): {culprits}"


# -- one test per hook (tests/test_docs.py checks they exist) ---------------------------------


def _provides(plugin_name: str) -> dict[str, list[str]]:
    return by_name(TelaCli().json("plugins", "list", "--json"))[plugin_name]["provides"]


def test_hook_tela_register_sources(tmp_path):
    class LinesSource(Source):
        """One prompt per line."""

        name = "test-lines"

        def read(self, path: Path):
            from tela_core import Record

            for line in Path(path).read_text().splitlines():
                yield Record(prompt=line)

    with registered_plugin(registering("tela_register_sources", LinesSource), "lines") as reg:
        assert _provides("lines") == {"source": ["test-lines"]}
        assert reg.entry("source", "test-lines").description == "One prompt per line."
        f = tmp_path / "p.txt"
        f.write_text("a\nb\n")
        assert [r.prompt for r in reg.create("source", "test-lines").read(f)] == ["a", "b"]
        assert reg.plugins["lines"].hooks == ["tela_register_sources"]


def test_hook_tela_register_formatters(tela_cli):
    with registered_plugin(registering("tela_register_formatters", EchoFormatter), "echo") as reg:
        assert _provides("echo") == {"formatter": ["test-echo"]}
        out = reg.create("formatter", "test-echo").format([{"role": "user", "content": "hi"}])
        assert out == Formatted("hi", "")
        kinds = tela_cli.json("plugins", "list", "--json", "--kind", "formatter")
        assert "echo" in by_name(kinds)


def test_hook_tela_register_backends(tmp_path):
    class CopyBackend(Backend):
        name = "test-copy"
        description = "copies the training file"

        def train(self, job):
            job.output_dir.mkdir(parents=True, exist_ok=True)
            (job.output_dir / "train.jsonl").write_text(job.train_file.read_text())
            return job.output_dir

    from tela_core import TrainJob

    with registered_plugin(registering("tela_register_backends", CopyBackend), "copy") as reg:
        assert _provides("copy") == {"backend": ["test-copy"]}
        train = tmp_path / "t.jsonl"
        train.write_text('{"prompt": "p", "completion": "[[1]]"}\n')
        job = TrainJob(
            model="m", output_dir=tmp_path / "out", train_file=train, eval_file=None, formatter="role-prefix"
        )
        out = reg.create("backend", "test-copy").train(job)
        assert (out / "train.jsonl").read_text() == train.read_text()


def test_hook_tela_register_scorers():
    import numpy as np

    class ConstScorer(Scorer):
        name = "test-const"

        def load(self, artifact_dir):
            pass

        def score(self, prompts):
            return Scores(w=np.full(len(prompts), 0.25))

    with registered_plugin(registering("tela_register_scorers", ConstScorer), "const") as reg:
        assert _provides("const") == {"scorer": ["test-const"]}  # 0.1's JSON name, until tela 0.3
        assert by_name(TelaCli().json("plugins", "list", "--json"))["const"]["components"] == {"family": ["test-const"]}
        scorer = reg.create("family", "test-const")
        assert scorer.uses_backend is False
        assert scorer.score(["a", "b"]).w.tolist() == [0.25, 0.25]


def test_the_family_kind_is_called_family_and_scorer_still_works_with_a_warning():
    """The kind users name (``tela run --family``) is the registry's kind, in errors and in
    ``tela plugins``; ``scorer``, its name in 0.1's code, warns at the plugin's own line."""
    import warnings

    import numpy as np

    class OldStyle(Scorer):
        name = "test-old-style"
        kind = "scorer"  # what a 0.1 class may say explicitly

        def load(self, artifact_dir, context=None):
            pass

        def score(self, prompts):
            return Scores(w=np.full(len(prompts), 0.5))

    with registered_plugin(registering("tela_register_scorers", OldStyle), "old-style") as reg:
        assert reg.entry("family", "test-old-style").kind == "family"
        with pytest.raises(
            UnknownComponentError, match=r"^unknown family 'nope'; registered families: .*test-old-style"
        ):
            reg.create("family", "nope")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert isinstance(reg.create("scorer", "test-old-style"), OldStyle)
            assert "test-old-style" in reg.names("scorer")
        assert [(w.category, Path(w.filename).name) for w in caught] == [
            (TelaDeprecationWarning, "test_plugins.py")
        ] * 2
        assert "the component kind 'scorer' is deprecated: use 'family' instead" in str(caught[0].message)
        shown = TelaCli()("plugins", "show", "scorer", "test-old-style")
        assert shown.stdout.startswith("family test-old-style (plugin old-style)")


def test_hook_tela_register_policies():
    from pydantic import BaseModel

    class CutOptions(BaseModel):
        t: float = 0.5

    class CutPolicy(Policy):
        name = "test-cut"
        Options = CutOptions

        def choose(self, scores, models):
            return [models[-1] if w >= self.options.t else models[0] for w in scores.w]

    import numpy as np

    with registered_plugin(registering("tela_register_policies", CutPolicy), "cut") as reg:
        assert _provides("cut") == {"policy": ["test-cut"]}
        pol = reg.create("policy", "test-cut", {"t": 0.3})
        assert pol.choose(Scores(w=np.array([0.1, 0.4])), ["weak", "strong"]) == ["weak", "strong"]
        assert reg.entry("policy", "test-cut").options_schema()["properties"]["t"]["default"] == 0.5


def test_hook_tela_register_commands(tela_cli):
    class Hello:
        @hookimpl
        def tela_register_commands(self, cli):
            @cli.command()
            @click.argument("who")
            def hello(who):
                """Say hello (test plugin)."""
                click.echo(f"hello {who}")

    with registered_plugin(Hello(), "hello-cmd"):
        res = tela_cli("hello", "tela")
        assert res.exit_code == 0 and res.output == "hello tela\n"
        assert "Say hello" in tela_cli("--help").output
        assert _provides("hello-cmd") == {"command": ["hello"]}
        assert "hello-cmd" in by_name(tela_cli.json("plugins", "list", "--json", "--kind", "command"))
    assert "hello" not in get_cli().commands  # removed with its plugin


def test_a_plugin_command_cannot_replace_a_core_command(tela_cli):
    class Hijack:
        @hookimpl
        def tela_register_commands(self, cli):
            @cli.command("plugins")
            def hijacked():
                click.echo("hijacked")

    with registered_plugin(Hijack(), "hijack"):
        res = tela_cli("plugins", "list", "--json")
        assert res.exit_code == 0 and "hijacked" not in res.output
        info = by_name(json.loads(res.stdout))["hijack"]
        assert info["broken"] and "command 'plugins' is registered by two plugins: 'tela' and 'hijack'" in info["error"]


def test_a_failing_commands_hook_is_named_and_tela_still_runs(tela_cli):
    class BadCommands:
        @hookimpl
        def tela_register_commands(self, cli):
            raise RuntimeError("no commands today")

    with registered_plugin(BadCommands(), "bad-commands"):
        res = tela_cli("plugins", "list", "--json")
        assert res.exit_code == 0
        info = by_name(json.loads(res.stdout))["bad-commands"]
        assert info["broken"] and "RuntimeError: no commands today" in info["error"]
