"""A versions folder's history stays bounded: ``versions.json`` keeps the last steps, older ones
move to ``history.jsonl``, and rollback works whatever was moved (``tela_core.routing.versions``).

Every ``tela serve`` replica reads ``versions.json`` whenever it changes, and a nightly loop adds a
step each turn; the file must not grow with every turn for ever. The version folders here are
bare ``tela.json`` files: the steps never load a router.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tela_core.routing import versions as vs
from tela_core.testkit.helpers import run_cli


def _folder(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "router"
    src.mkdir()
    (src / "tela.json").write_text("{}", encoding="utf-8")
    live = tmp_path / "live"
    vs.init(live)
    for _ in range(n):
        vs.add_version(live, src)
    return live


def _steps(live: Path) -> list[tuple[int, str]]:
    return [(h["step"], h["action"]) for h in vs.iter_history(live)]


def test_versions_json_keeps_the_last_steps_and_older_ones_move_to_history_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vs, "HISTORY_KEPT", 3)
    live = _folder(tmp_path, 4)
    for v in ("v1", "v2", "v3"):
        vs.set_current(live, v, "promote")
    vs.note_step(live, "refuse", record="records/0004-refuse.json")
    vs.set_current(live, "v4", "promote")
    vs.set_current(live, "v3", "rollback")
    vs.set_current(live, "v2", "rollback")
    state = json.loads((live / vs.VERSIONS_FILE).read_text())
    assert [h["step"] for h in state["history"]] == [5, 6, 7]
    assert state["current"] == "v2" and state["earlier"] == ["v1"]
    moved = [json.loads(x) for x in (live / vs.HISTORY_FILE).read_text().splitlines()]
    assert [(h["step"], h["action"]) for h in moved] == [(1, "promote"), (2, "promote"), (3, "promote"), (4, "refuse")]
    assert moved[3]["record"] == "records/0004-refuse.json"
    want = [(1, "promote"), (2, "promote"), (3, "promote"), (4, "refuse"), (5, "promote"), (6, "rollback")]
    assert _steps(live) == [*want, (7, "rollback")]
    # tela rollback still goes back through every earlier version, numbering its step after the last
    res = run_cli("rollback", "--router", live, "--reason", "bounded history")
    assert res.exit_code == 0, res.output
    assert vs.read_state(live).current == "v1" and _steps(live)[-1] == (8, "rollback")
    assert [h["step"] for h in vs.read_state(live).history] == [6, 7, 8]
    assert "first version" in run_cli("rollback", "--router", live).output


def test_a_step_killed_between_the_two_writes_counts_each_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vs, "HISTORY_KEPT", 2)
    live = _folder(tmp_path, 3)
    vs.set_current(live, "v1", "promote")
    vs.set_current(live, "v2", "promote")
    before = (live / vs.VERSIONS_FILE).read_text()

    def killed(path: Path, data: object, **kw: object) -> None:
        raise KeyboardInterrupt("killed before versions.json was written")

    monkeypatch.setattr(vs, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        vs.set_current(live, "v3", "promote")
    monkeypatch.undo()
    monkeypatch.setattr(vs, "HISTORY_KEPT", 2)
    # history.jsonl got step 1, versions.json still holds it: the step was not taken, and step 1 counts once
    assert (live / vs.VERSIONS_FILE).read_text() == before and vs.read_state(live).current == "v2"
    assert _steps(live) == [(1, "promote"), (2, "promote")]
    vs.set_current(live, "v3", "promote")
    vs.set_current(live, "v2", "rollback")
    moved = [json.loads(x)["step"] for x in (live / vs.HISTORY_FILE).read_text().splitlines()]
    assert moved == [1, 2] and [h["step"] for h in vs.read_state(live).history] == [3, 4]
    assert _steps(live) == [(1, "promote"), (2, "promote"), (3, "promote"), (4, "rollback")]
