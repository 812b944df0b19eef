"""One helper per job (issue 27, item 5).

- ``tela eval`` and ``tela zoo`` show the same random and oracle baselines, from one
  :func:`tela_core.eval.baselines`, with cost curves when the data has costs;
- a zoo rerun replaces a family's router whole: interrupted while replacing it, the old router
  stays (never a half-deleted folder, never none).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tela_core.data.records import Record, seed_record
from tela_core.eval import OutcomeArrays, baselines, evaluate_scores, oracle_scores, outcome_arrays, random_baseline
from tela_core.eval.zoo import run_zoo, split_for_zoo
from tela_core.infra.io import remove_stale_partials
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
        prompt = (f"Prove the statement number {i} about groups, rings and fields in full detail, step by step."
                  if hard else f"What is {i} plus one?")
        weak_ok = float(rng.random() < (0.3 if hard else 0.9))
        strong_ok = float(rng.random() < 0.95)
        tokens = len(prompt.split())
        out.append(seed_record(prompt, None, outcomes={WEAK: weak_ok, STRONG: strong_ok},
                               costs={WEAK: 1e-6 * tokens, STRONG: 3e-5 * tokens}, id=f"q{i}"))
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
    assert base.oracle == evaluate_scores(oracle_scores(data.weak, data.strong), data.weak, data.strong, name="oracle",
                                          **costs)
    assert [ev.name for ev in base] == ["random", "oracle"]
    assert data.weak_cost is not None and data.strong_cost is not None
    for ev in base:  # the cost of a query at each strong-call share, from all-weak to all-strong
        assert ev.cost is not None and ev.cost_fine is not None
        assert ev.cost[0] == pytest.approx(float(data.weak_cost.mean()))
        assert ev.cost[-1] == pytest.approx(float(data.strong_cost.mean()))
    # without costs the metrics are the same numbers, and no cost curve is made up
    plain = baselines(OutcomeArrays(WEAK, STRONG, data.weak, data.strong))
    assert [(e.apgr, e.cpt50, e.cpt80, e.auc, e.pgr_grid) for e in plain] == [
        (e.apgr, e.cpt50, e.cpt80, e.auc, e.pgr_grid) for e in base]
    assert all(e.cost is None for e in plain)


def test_zoo_and_eval_show_the_same_baselines_costs_included(tmp_path: Path, tela_cli: TelaCli) -> None:
    records = _records()
    zoo = run_zoo(records, ["length"], tmp_path / "zoo", weak=WEAK, strong=STRONG)
    _train, held_out = split_for_zoo(records, None)  # the prompts the zoo judged every family on
    r = tela_cli("eval", "--router", "random", "--data", _write_jsonl(held_out, tmp_path / "held_out.jsonl"),
                 "-o", tmp_path / "eval", "--weak-model", WEAK, "--strong-model", STRONG)
    assert r.exit_code == 0, r.output
    shown_by_eval = {e["name"]: e for e in json.loads((tmp_path / "eval" / "report.json").read_text())["routers"]}
    saved_by_zoo = {b["family"]: b for b in json.loads((tmp_path / "zoo" / "results.json").read_text())["baselines"]}
    assert list(saved_by_zoo) == ["random", "oracle"] and set(shown_by_eval) == {"random", "oracle"}
    for name, row in saved_by_zoo.items():
        assert row["evaluation"] == shown_by_eval[name], name
        assert row["evaluation"]["cost"] and row["evaluation"]["cost_fine"], name
        assert (row["apgr"], row["cpt50"], row["cpt80"], row["auc"]) == tuple(
            shown_by_eval[name][k] for k in ("apgr", "cpt50", "cpt80", "auc"))
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
