"""One helper per job (issue 27, items 5 and 6).

- ``tela eval`` and ``tela zoo`` show the same random and oracle baselines, from one
  :func:`tela_core.eval.baselines`, with cost curves when the data has costs;
- a zoo rerun replaces a family's router whole: interrupted while replacing it, the old router
  stays (never a half-deleted folder, never none);
- the kinds a plugin registers are declared once (``tela_core.components.REGISTERED``): the hook
  specs, the registry's tables and ``KINDS`` derive from it, datasets included.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tela_core
from tela_core import components, hookspecs
from tela_core.data.records import Record, seed_record
from tela_core.eval import OutcomeArrays, baselines, evaluate_scores, oracle_scores, outcome_arrays, random_baseline
from tela_core.eval.zoo import run_zoo, split_for_zoo
from tela_core.infra.io import remove_stale_partials
from tela_core.plugins.registry import HOOK_KINDS
from tela_core.testkit.helpers import TelaCli

WEAK, STRONG = "weak-llm", "strong-llm"

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _records(n: int = 300) -> list[Record]:
    """Outcome records with both models' costs: long prompts are the hard ones (the weak model
    fails them more often), so ``length`` has something to learn; costs vary per prompt."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        hard = i % 3 == 0
        prompt = (
            f"Prove the statement number {i} about groups, rings and fields in full detail, step by step."
            if hard
            else f"What is {i} plus one?"
        )
        weak_ok = float(rng.random() < (0.3 if hard else 0.9))
        strong_ok = float(rng.random() < 0.95)
        tokens = len(prompt.split())
        out.append(
            seed_record(
                prompt,
                None,
                outcomes={WEAK: weak_ok, STRONG: strong_ok},
                costs={WEAK: 1e-6 * tokens, STRONG: 3e-5 * tokens},
                id=f"q{i}",
            )
        )
    return out


def _write_jsonl(records: list[Record], path: Path) -> Path:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records), encoding="utf-8")
    return path


# -- one baselines() -------------------------------------------------------------------------


def test_baselines_are_random_and_oracle_with_their_costs() -> None:
    data = outcome_arrays(_records(200), WEAK, STRONG)
    base = baselines(data)
    costs: dict[str, Any] = {"weak_cost": data.weak_cost, "strong_cost": data.strong_cost}
    assert base.random == random_baseline(data.weak, data.strong, **costs)
    assert base.oracle == evaluate_scores(
        oracle_scores(data.weak, data.strong), data.weak, data.strong, name="oracle", **costs
    )
    assert [ev.name for ev in base] == ["random", "oracle"]
    assert data.weak_cost is not None and data.strong_cost is not None
    for ev in base:  # the cost of a query at each strong-call share, from all-weak to all-strong
        assert ev.cost is not None and ev.cost_fine is not None
        assert ev.cost[0] == pytest.approx(float(data.weak_cost.mean()))
        assert ev.cost[-1] == pytest.approx(float(data.strong_cost.mean()))
    # without costs the metrics are the same numbers, and no cost curve is made up
    plain = baselines(OutcomeArrays(WEAK, STRONG, data.weak, data.strong))
    assert [(e.apgr, e.cpt50, e.cpt80, e.auc, e.pgr_grid) for e in plain] == [
        (e.apgr, e.cpt50, e.cpt80, e.auc, e.pgr_grid) for e in base
    ]
    assert all(e.cost is None for e in plain)


def test_zoo_and_eval_show_the_same_baselines_costs_included(tmp_path: Path, tela_cli: TelaCli) -> None:
    records = _records()
    zoo = run_zoo(records, ["length"], tmp_path / "zoo", weak=WEAK, strong=STRONG)
    _train, held_out = split_for_zoo(records, None)  # the prompts the zoo judged every family on
    r = tela_cli(
        "eval",
        "--router",
        "random",
        "--data",
        _write_jsonl(held_out, tmp_path / "held_out.jsonl"),
        "-o",
        tmp_path / "eval",
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    )
    assert r.exit_code == 0, r.output
    shown_by_eval = {e["name"]: e for e in json.loads((tmp_path / "eval" / "report.json").read_text())["routers"]}
    saved_by_zoo = {b["family"]: b for b in json.loads((tmp_path / "zoo" / "results.json").read_text())["baselines"]}
    assert list(saved_by_zoo) == ["random", "oracle"] and set(shown_by_eval) == {"random", "oracle"}
    for name, row in saved_by_zoo.items():
        assert row["evaluation"] == shown_by_eval[name], name
        assert row["evaluation"]["cost"] and row["evaluation"]["cost_fine"], name
        assert (row["apgr"], row["cpt50"], row["cpt80"], row["auc"]) == tuple(
            shown_by_eval[name][k] for k in ("apgr", "cpt50", "cpt80", "auc")
        )
    length = zoo.families[0].evaluation  # a family is replayed with the same costs, under its own name
    assert length["name"] == "length" and length["cost"] and length["cost"][0] == shown_by_eval["random"]["cost"][0]


# -- a rerun replaces a router whole ---------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_zoo_rerun_killed_while_it_deletes_the_old_router_leaves_a_whole_router(tmp_path: Path, monkeypatch) -> None:
    records = _records()
    out = tmp_path / "zoo"
    run_zoo(records, ["length"], out, weak=WEAK, strong=STRONG)
    final = out / "routers" / "length"
    before = _files(final)
    real_rmtree = shutil.rmtree

    def rmtree_killed_halfway(path: Any, *args: Any, **kwargs: Any) -> None:
        """Deletes one file of the router being replaced, then the process is interrupted."""
        files = [p for p in Path(path).rglob("*") if p.is_file()]
        if Path(path).parent == final.parent and files:
            files[0].unlink()
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree_killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        run_zoo(records, ["length"], out, weak=WEAK, strong=STRONG)
    monkeypatch.undo()
    after = _files(final)
    assert sorted(after) == sorted(before)  # every file of a router (the new one), none missing
    assert json.loads(after["tela.json"])["scorer"] == "length"


def test_a_zoo_rerun_interrupted_between_the_renames_keeps_the_old_router(tmp_path: Path, monkeypatch) -> None:
    records = _records()
    out = tmp_path / "zoo"
    run_zoo(records, ["length"], out, weak=WEAK, strong=STRONG)
    final = out / "routers" / "length"
    (final / "marker").write_text("the old router")
    before = _files(final)
    real_replace = os.replace

    def interrupted_move_into_place(src: Any, dst: Any) -> None:
        if Path(dst) == final and Path(src).name.startswith(".length.partial-"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_move_into_place)
    with pytest.raises(KeyboardInterrupt):
        run_zoo(records, ["length"], out, weak=WEAK, strong=STRONG)
    monkeypatch.undo()
    assert _files(final) == before


def test_the_old_dir_of_a_replace_killed_between_its_renames_is_put_back(tmp_path: Path) -> None:
    """A kill between replace_dir's two renames leaves FINAL missing and its old dir aside: the next
    writer's remove_stale_partials puts it back instead of deleting it."""
    final = tmp_path / "router"
    old = tmp_path / ".router.old-1234abcd"
    old.mkdir()
    (old / "tela.json").write_text("{}")
    (tmp_path / ".router.partial-5678abcd").mkdir()
    remove_stale_partials(final)
    assert (final / "tela.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router"]


# -- kinds declared once ---------------------------------------------------------------------


def test_every_register_hook_kind_and_list_derives_from_the_one_table() -> None:
    rows = components.REGISTERED
    assert components.KINDS == tuple(k.kind for k in rows if k.base is not None)
    assert HOOK_KINDS == {k.hook: k.kind for k in rows}
    for k in rows:
        spec = getattr(hookspecs, k.hook)
        assert hasattr(spec, "tela_spec") and list(inspect.signature(spec).parameters) == ["register"], k.hook
        doc = inspect.getdoc(spec) or ""
        assert doc.startswith(inspect.cleandoc(k.doc)) and f":since: {k.since}" in doc, k.hook
        if k.base is not None:  # a component kind: its base class is public where plugins import it
            assert k.base.kind == k.kind
            assert k.base.__name__ in components.__all__ and k.base.__name__ in tela_core.__all__
    assert "tela_register_commands" not in HOOK_KINDS and hasattr(hookspecs.tela_register_commands, "tela_spec")


WIDGET_CLASS = '''
class Widget(Component):
    """Turns knobs."""

    kind = "widget"

'''
WIDGET_ROW = '''    KindSpec.of(Widget, "tela_register_widgets", "9.9", """Register widgets."""),
'''
USE_A_WIDGET = r"""
from tela_core import hookimpl
from tela_core.cli.plugins_cmd import LIST_KINDS
from tela_core.components import KINDS, Widget
from tela_core.plugins.discovery import add_plugin, get_registry

class Knob(Widget):
    "A knob."
    name = "knob"

class Plugin:
    @hookimpl
    def tela_register_widgets(self, register):
        register(Knob)

add_plugin(Plugin(), "widgets")
reg = get_registry()
print(KINDS[-1], "widget" in LIST_KINDS, reg.get("widget", "knob").__name__, reg.plugins["widgets"].components,
      reg.plugins["widgets"].error)
"""


def test_a_new_kind_is_its_base_class_and_one_row_in_the_table(tmp_path: Path) -> None:
    """Add a kind to a copy of tela_core by editing components.py alone (its base class, one row):
    the hook spec, the registry's table, KINDS and ``tela plugins list --kind`` follow, and a plugin
    registers a widget."""
    core = Path(tela_core.__file__).parent
    shutil.copytree(core, tmp_path / "tela_core", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "tela_core" / "components.py"
    text = path.read_text(encoding="utf-8")
    banner = "\n\n# " + "-" * 96 + "\n# The kinds:"
    dataset_row = re.search(r"^    KindSpec\(\s*\"dataset\"", text, re.M)  # however the formatter wraps it
    assert banner in text and dataset_row is not None
    text = text[: dataset_row.start()] + WIDGET_ROW + text[dataset_row.start() :]
    path.write_text(text.replace(banner, "\n\n" + WIDGET_CLASS.rstrip("\n") + banner), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", USE_A_WIDGET], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )  # not the checkout: python -c puts the working dir first
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "widget True Knob [('widget', 'knob')] None"


def test_a_dataset_two_plugins_register_names_both_as_a_component_would(register_plugin) -> None:
    from tela_core.data.catalogue import DatasetEntry, RemoteFile
    from tela_core.infra.errors import DuplicateComponentError
    from tela_core.plugins.discovery import get_registry

    entry = DatasetEntry(
        name="twice",
        description="d",
        origin="https://example.org",
        license="MIT",
        revision=None,
        files=(RemoteFile(path="a.csv", url="https://example.org/a.csv", sha256=None),),
        source="routellm-csv",
        data="a.csv",
    )

    class One:
        @tela_core.hookimpl
        def tela_register_datasets(self, register: Any) -> None:
            register(entry)

    class Two(One):
        pass

    register_plugin(One(), "one")
    register_plugin(Two(), "two")
    reg = get_registry()
    with pytest.raises(DuplicateComponentError) as e:
        reg.dataset("twice")
    assert "one" in str(e.value) and "two" in str(e.value)
    assert reg.plugins["two"].error and not reg.plugins["one"].error
