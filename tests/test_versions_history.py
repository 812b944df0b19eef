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
from tela_core.testkit.helpers import one_error_line, run_cli


def _folder(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "router"
    src.mkdir()
    (src / "tela.json").write_text("{}", encoding="utf-8")
    live = tmp_path / "live"
    vs.init(live)
    for _ in range(n):
        vs.add_version(live, src)
    return live


def _live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int, n: int) -> Path:
    """A versions folder of ``n`` versions whose ``versions.json`` keeps the last ``kept`` steps."""
    monkeypatch.setattr(vs, "HISTORY_KEPT", kept)
    return _folder(tmp_path, n)


def _killed(path: Path, data: object, **kw: object) -> None:
    """``atomic_write_json`` of a process killed before versions.json was written."""
    raise KeyboardInterrupt("killed before versions.json was written")


def _steps(live: Path) -> list[tuple[int, str]]:
    return [(h["step"], h["action"]) for h in vs.iter_history(live)]


def test_versions_json_keeps_the_last_steps_and_older_ones_move_to_history_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _live(tmp_path, monkeypatch, kept=3, n=4)
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
    live = _live(tmp_path, monkeypatch, kept=2, n=3)
    vs.set_current(live, "v1", "promote")
    vs.set_current(live, "v2", "promote")
    before = (live / vs.VERSIONS_FILE).read_text()

    monkeypatch.setattr(vs, "atomic_write_json", _killed)
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


def test_steps_without_a_number_in_a_hand_edited_versions_json_are_kept_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person editing versions.json by hand may add or renumber steps: moving them must lose none,
    and the next step is numbered after all of them (before: unnumbered steps were hidden from
    iter_history and dropped from both files when moved)."""
    live = _live(tmp_path, monkeypatch, kept=3, n=3)
    vs.set_current(live, "v1", "promote")
    raw = json.loads((live / vs.VERSIONS_FILE).read_text())
    raw["history"] += [{"time": "t", "action": "note", "said": f"by hand {i}"} for i in (1, 2)]
    (live / vs.VERSIONS_FILE).write_text(json.dumps(raw))
    assert [h.get("said") for h in vs.iter_history(live)] == [None, "by hand 1", "by hand 2"]
    vs.set_current(live, "v2", "promote")
    vs.set_current(live, "v3", "promote")
    vs.note_step(live, "refuse")
    got = [(h.get("step"), h.get("said"), h["action"]) for h in vs.iter_history(live)]
    assert got == [
        (1, None, "promote"),
        (None, "by hand 1", "note"),
        (None, "by hand 2", "note"),
        (4, None, "promote"),
        (5, None, "promote"),
        (6, None, "refuse"),
    ]
    moved = [json.loads(x) for x in (live / vs.HISTORY_FILE).read_text().splitlines()]
    assert [h.get("said") for h in moved] == [None, "by hand 1", "by hand 2"]


def test_repeated_kills_between_the_two_writes_leave_each_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _live(tmp_path, monkeypatch, kept=1, n=3)
    vs.set_current(live, "v1", "promote")
    vs.note_step(live, "refuse", said="by hand")  # numbered, then renumbered by hand below
    raw = json.loads((live / vs.VERSIONS_FILE).read_text())
    raw["history"][-1].pop("step")
    (live / vs.VERSIONS_FILE).write_text(json.dumps(raw))
    real = vs.atomic_write_json

    for _ in range(3):  # killed three times over between the two writes of the same move
        monkeypatch.setattr(vs, "atomic_write_json", _killed)
        with pytest.raises(KeyboardInterrupt):
            vs.set_current(live, "v2", "promote")
        monkeypatch.setattr(vs, "atomic_write_json", real)
        assert [h["action"] for h in vs.iter_history(live)] == ["promote", "refuse"]
    # a writer killed inside an atomic write leaves its temp file; the next step's recover removes them
    for name in (vs.VERSIONS_FILE, vs.HISTORY_FILE):
        (live / f".{name}.k1ll3d.tmp").write_text("half", encoding="utf-8")
    vs.recover(live)
    assert not list(live.glob(".*.tmp"))
    vs.set_current(live, "v2", "promote")
    vs.set_current(live, "v3", "promote")
    assert [(h.get("step"), h["action"]) for h in vs.iter_history(live)] == [
        (1, "promote"),
        (None, "refuse"),
        (3, "promote"),
        (4, "promote"),
    ]


@pytest.mark.parametrize(
    "spoilt, said",
    [
        (b'{"step": 1, "action": "promote"}\n{"step": 2, "act', ":2: not a step"),
        (b'{"step": 1, "action": "promote"}\n\xff\xfe\n', ": unreadable"),
    ],
)
def test_a_spoilt_history_jsonl_is_one_line_and_no_step_is_half_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoilt: bytes, said: str
) -> None:
    live = _live(tmp_path, monkeypatch, kept=2, n=2)
    vs.set_current(live, "v1", "promote")
    vs.set_current(live, "v2", "promote")
    (live / vs.HISTORY_FILE).write_bytes(spoilt)  # truncated by hand, or not text
    before = {p.name: p.read_bytes() for p in live.rglob("*") if p.is_file()}
    res = run_cli("rollback", "--router", live)
    line = one_error_line(res)
    assert f"{live / vs.HISTORY_FILE}{said}" in line, line
    # nothing written: no record, pending or final, and versions.json as it was
    assert {p.name: p.read_bytes() for p in live.rglob("*") if p.is_file()} == before


def test_a_hand_edited_step_with_an_odd_record_does_not_stop_a_rollback(tmp_path: Path) -> None:
    """versions.json's history is a log a person may edit; a step's "record" that is no string
    (a list, say) made every later promote and rollback a traceback (recover hashed it)."""
    live = _folder(tmp_path, 2)
    vs.set_current(live, "v1", "promote")
    vs.set_current(live, "v2", "promote")
    raw = json.loads((live / vs.VERSIONS_FILE).read_text())
    raw["history"][0]["record"] = ["by hand"]
    (live / vs.VERSIONS_FILE).write_text(json.dumps(raw))
    vs.write_record(vs.next_record_path(live, "promote", "v2"), {"action": "promote"})  # records/ exists
    res = run_cli("rollback", "--router", live, "--reason", "hand-edited history")
    assert res.exit_code == 0, res.output
    assert vs.read_state(live).current == "v1" and [h["action"] for h in vs.iter_history(live)][-1] == "rollback"


def test_records_past_the_ten_thousandth_are_numbered_on_not_overwritten(tmp_path: Path) -> None:
    """An hourly loop writes a record a step: after 9999 records the numbers grow a digit, and each
    new record must still be numbered after the last (before: 5-digit names were not counted, so
    every refusal after the 10,000th was written over "10000-refuse.json")."""
    live = _folder(tmp_path, 1)
    vs.write_record(vs.next_record_path(live, "refuse", None), {"n": 1})
    (live / vs.RECORDS_DIR / "0001-refuse.json").rename(live / vs.RECORDS_DIR / "9999-refuse.json")
    names = []
    for i in range(3):
        path = vs.next_record_path(live, "refuse", None)
        vs.write_record(path, {"n": i})
        names.append(path.name)
    assert names == ["10000-refuse.json", "10001-refuse.json", "10002-refuse.json"]
