"""Imports run one way: CLI -> core; plugins -> core. The core imports no plugin and no CLI module,
CLI command modules do not reach into each other, and builtin plugins do not import each other
beyond the edges listed here (each one a debt with its reason; the list may only shrink)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "tela_core"
PLUGINS = ROOT / "plugins"

#: plugin -> plugin imports that remain, and why. A new edge fails the test; move shared code
#: into the core (tela_core.routing.targets, tela_core.data.detect, ... are where earlier ones went).
KNOWN_PLUGIN_EDGES: dict[tuple[str, str], str] = {}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(PLUGINS if path.is_relative_to(PLUGINS) else ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.level and not node.module:
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


BUILTINS = PLUGINS / "tela_plugins"


def builtin_plugins() -> set[str]:
    """The builtin plugins' module names: ``tela_plugins.NAME``."""
    return {f"tela_plugins.{p.name}" for p in BUILTINS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def plugin_of(mod: str) -> str:
    """``tela_plugins.NAME`` for any module of a builtin plugin (else the top-level package)."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "tela_plugins" else parts[0]


def test_core_imports_no_plugin_and_no_cli() -> None:
    plugins = builtin_plugins()
    bad = []
    for f in CORE.rglob("*.py"):
        # the test kit drives the CLI the way tests do (run_cli); nothing in the core imports it
        in_cli = f.is_relative_to(CORE / "cli") or f == CORE / "testkit" / "helpers.py"
        for line, mod in imports(f):
            top = mod.split(".")[0]
            if plugin_of(mod) in plugins or (top.startswith("tela_") and top != "tela_core"):
                bad.append(f"{f.relative_to(ROOT)}:{line} imports plugin {mod}")
            if not in_cli and mod.startswith("tela_core.cli"):
                bad.append(f"{f.relative_to(ROOT)}:{line} imports the CLI ({mod})")
    assert not bad, "\n".join(bad)


def test_cli_command_modules_do_not_import_each_other() -> None:
    shared = {"tela_core.cli.options", "tela_core.cli.tables", "tela_core.cli.paid_calls", "tela_core.cli"}
    bad = []
    for f in (CORE / "cli").glob("*.py"):
        me = f"tela_core.cli.{f.stem}"
        for line, mod in imports(f):
            if mod.startswith("tela_core.cli") and mod not in shared and mod != me and f.stem != "main":
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_builtin_plugins_import_no_other_plugin_beyond_the_known_edges() -> None:
    plugins = builtin_plugins()
    edges: dict[tuple[str, str], str] = {}
    for p in plugins:
        for f in (PLUGINS / p.replace(".", "/")).rglob("*.py"):
            for line, mod in imports(f):
                top = plugin_of(mod)
                if top in plugins and top != p:
                    edges.setdefault((p, top), f"{f.relative_to(ROOT)}:{line}")
    new = {e: where for e, where in edges.items() if e not in KNOWN_PLUGIN_EDGES}
    assert not new, "plugin imports another plugin: " + "; ".join(f"{a} -> {b} at {w}" for (a, b), w in new.items())
    gone = set(KNOWN_PLUGIN_EDGES) - set(edges)
    assert not gone, f"edges no longer there, remove them from KNOWN_PLUGIN_EDGES: {sorted(gone)}"


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    """The checks above are only as good as this reader: it must resolve relative imports."""
    f = CORE / "cli" / "eval_cmd.py"
    mods = {m for _, m in imports(f)}
    assert "tela_core.data.detect" in mods and "tela_core.cli.options" in mods


def test_core_root_holds_only_the_contract_and_folders() -> None:
    """tela_core reads as a map: the root keeps the plugin contract; everything else is in a folder
    named for its concern (issue 20). A new module goes into a folder, not the root."""
    root_modules = sorted(p.name for p in CORE.glob("*.py"))
    assert root_modules == ["__init__.py", "components.py", "hookspecs.py"], root_modules
    for d in CORE.iterdir():
        if d.is_dir() and (d / "__init__.py").exists():
            init = (d / "__init__.py").read_text(encoding="utf-8")
            assert init.lstrip().startswith('"""'), f"{d.relative_to(ROOT)}/__init__.py: say what lives there"


def test_builtins_install_as_one_top_level_package() -> None:
    """site-packages gets tela_core and tela_plugins, not one top-level package per builtin."""
    tops = sorted(p.name for p in PLUGINS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    assert tops == ["tela_plugins"], tops


#: module -> module imports that close a circle and remain, and why (the list may only shrink).
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}


def core_import_graph() -> dict[str, dict[str, str]]:
    """tela_core's modules and, for each, the tela_core modules it imports (any import: at the top,
    under TYPE_CHECKING or inside a function) with where. ``from pkg import name`` is an edge to
    ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``)."""

    def name_of(p: Path) -> str:
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name_of(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, dict[str, str]] = {}
    for mod, path in files.items():
        pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        edges: dict[str, str] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(pkg[: len(pkg) - node.level + 1]) if node.level else ""
                src = ".".join(x for x in (base, node.module or "") if x)
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in files else src for a in node.names]
            for t in targets:
                while t and t not in files:  # a name inside a module -> the module
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("tela_core"):
                    edges.setdefault(t, f"{path.relative_to(ROOT)}:{node.lineno}")
        graph[mod] = edges
    return graph


def test_tela_core_has_no_import_cycles() -> None:
    """No two tela_core modules import each other, directly or round a longer circle (issue 20):
    what two modules share goes into a third both import (as serve/server.py for app and proxy)."""
    graph = core_import_graph()
    assert graph["tela_core.serve.proxy"].keys() >= {"tela_core.serve.server"}  # the reader sees imports
    gone = [e for e in KNOWN_CYCLE_EDGES if e[1] not in graph.get(e[0], {})]
    assert not gone, f"edges no longer there, remove them from KNOWN_CYCLE_EDGES: {gone}"
    g = {m: {t for t in edges if (m, t) not in KNOWN_CYCLE_EDGES} for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    said = [
        " <-> ".join(c) + ": " + "; ".join(f"{a} -> {b} at {graph[a][b]}" for a in c for b in c if b in g[a])
        for c in cycles
    ]
    assert not cycles, "import cycles in tela_core:\n" + "\n".join(said)


def declared_layers() -> list[set[str]]:
    """The layer order ``tela_core/__init__.py``'s docstring writes down, lowest first: each layer a
    set of tela_core's top-level packages/modules (``infra < schema < components, hookspecs < ...``)."""
    doc = (CORE / "__init__.py").read_text(encoding="utf-8")
    start = doc.index("Layers, lowest first")
    block = doc[start:].split("\n\n")[1]  # the indented order after the sentence
    return [{name.strip() for name in layer.split(",")} for layer in " ".join(block.split()).split("<")]


#: (module, module it imports) that go up the declared layers and remain, and why (may only shrink).
KNOWN_UPWARD_EDGES: dict[tuple[str, str], str] = {}


def layer_of(module: str, rank: dict[str, int]) -> int | None:
    """The declared layer of a tela_core module (by its top-level package), None for the facade."""
    parts = module.split(".")
    return rank[parts[1]] if len(parts) > 1 else None


def test_the_layers_are_declared_for_every_package() -> None:
    layers = declared_layers()
    named = [n for layer in layers for n in layer]
    assert len(named) == len(set(named)), f"a package in two layers: {named}"
    have = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    have |= {p.stem for p in CORE.glob("*.py") if p.name != "__init__.py"}
    assert set(named) == have, (
        f"tela_core/__init__.py's layer order must name each package once: missing "
        f"{sorted(have - set(named))}, not there {sorted(set(named) - have)}"
    )
    assert named[0] == "infra" and "cli" in layers[-2] | layers[-1]


def test_imports_go_down_the_declared_layers() -> None:
    """Every import in tela_core, at the top, under TYPE_CHECKING or inside a function, goes to the
    importer's own layer or one below (issue 27): routing reads no data/ or serve/, the contract no
    stage. What two layers share goes down into the lower one (tela_core.schema holds Record)."""
    rank = {name: i for i, layer in enumerate(declared_layers()) for name in layer}
    graph = core_import_graph()
    up = {}
    for mod, edges in graph.items():
        mine = layer_of(mod, rank)
        for target, where in edges.items():
            theirs = layer_of(target, rank)
            if mine is not None and (theirs is None or theirs > mine):
                up[(mod, target)] = where
    new = {e: w for e, w in up.items() if e not in KNOWN_UPWARD_EDGES}
    assert not new, "imports up the layers of tela_core/__init__.py:\n" + "\n".join(
        f"{a} -> {b} at {w}" for (a, b), w in new.items()
    )
    gone = set(KNOWN_UPWARD_EDGES) - set(up)
    assert not gone, f"edges no longer there, remove them from KNOWN_UPWARD_EDGES: {sorted(gone)}"
    assert ("tela_core.routing.family", "tela_core.schema.records") in {(m, t) for m in graph for t in graph[m]}


#: imports that went up the layers until issue 27 moved what they needed down: each (module, the
#: package it must not import, where the needed thing lives now). The graph check above catches them
#: too; these say, when one comes back, where to import from instead.
GONE_UPWARD_EDGES = [
    ("tela_core.components", "tela_core.data", "Record, Message, checked_records: tela_core.schema.records"),
    ("tela_core.components", "tela_core.train", "NodeLaunch: tela_core.schema.launch"),
    ("tela_core.routing.operating_point", "tela_core.eval", "apgr and the other metrics: tela_core.routing.metrics"),
]


def test_the_plugin_contract_and_the_operating_point_import_nothing_above_them() -> None:
    """The contract (``components``) imports no stage: a plugin that subclasses ``Source`` or
    ``Backend`` does not load the data or training packages; the operating point, part of routing,
    takes its metric from routing, not from the evaluation layer above it."""
    graph = core_import_graph()
    back = [
        f"{mod} imports {target} at {where}; {instead}"
        for mod, package, instead in GONE_UPWARD_EDGES
        for target, where in graph[mod].items()
        if target == package or target.startswith(package + ".")
    ]
    assert not back, "\n".join(back)
