"""Router versions: one router name served from a folder of versions, one of them current.

A *versions folder* holds each version a router name has had, as a router folder of its own
(``v1``, ``v2``, ...), and ``versions.json``, which says which one is current and how it got there::

    live/
      versions.json     {"tela_versions": 1, "current": "v2", "earlier": ["v1"], "history": [...]}
      history.jsonl     the steps older than versions.json's last HISTORY_KEPT, one per line
      v1/  v2/          router folders (tela.json, policy.json, the family's files), never changed
      records/          one JSON file per promotion, refusal or rollback (data, numbers, decision, why)

``versions.json`` is small and written atomically (a new file renamed over the old one), so a
reader sees the old state or the new one, never half of one: that rename *is* the promotion or the
rollback. ``earlier`` is the stack of versions that were current before (a rollback pops it); the
``history`` lists the last :data:`HISTORY_KEPT` steps (``promote``, ``refuse``, ``rollback``) with
their number, time, versions and record. Older steps move, oldest first, to ``history.jsonl``
(one JSON object per line, never changed once there), so ``versions.json`` - which every server
reads whenever it changes - stays small however many turns a loop runs. The move happens under the
folder's lock with each step: ``history.jsonl`` is replaced atomically with the moved steps added,
then ``versions.json``; a process killed between the two leaves steps in both, which readers
(:func:`iter_history`) and the next move count once, by step number. Rollback needs only
``current`` and ``earlier``, which are kept whole.

:meth:`tela_core.routing.router.Router.load` and ``tela serve`` accept a versions folder and load
its current version; ``tela serve`` follows the file (its modification time, polled) and reloads
a router whose current version changed. ``tela promote`` and ``tela rollback`` change it
(:mod:`tela_core.cli.promote_cmd`). Writers hold the folder's lock (``.NAME.lock`` beside it).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json

__all__ = [
    "VERSIONS_FILE",
    "HISTORY_FILE",
    "HISTORY_KEPT",
    "RECORDS_DIR",
    "FORMAT",
    "VersionsState",
    "is_versions_dir",
    "read_state",
    "resolve",
    "current_dir",
    "add_version",
    "set_current",
    "note_step",
    "write_record",
    "record_step",
    "recover",
    "next_record_path",
    "versions_lock",
    "iter_history",
]

VERSIONS_FILE = "versions.json"
HISTORY_FILE = "history.jsonl"
#: steps kept in versions.json; older ones are moved to history.jsonl
HISTORY_KEPT = 100
RECORDS_DIR = "records"
FORMAT = 1
_NAME = re.compile(r"v([1-9][0-9]*)")  # used with fullmatch: "v1\n" is no name
_RECORD = re.compile(r"([0-9]{4,})-")  # a record's number


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class VersionsState:
    """What ``versions.json`` says: the current version (None before the first promotion), the
    versions current before it (most recent last) and every step taken."""

    current: str | None = None
    earlier: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"tela_versions": FORMAT, "current": self.current, "earlier": self.earlier, "history": self.history}


def is_versions_dir(path: str | Path) -> bool:
    """Whether ``path`` is a versions folder (has ``versions.json``, is no router itself)."""
    p = Path(path)
    return (p / VERSIONS_FILE).is_file() and not (p / "tela.json").exists()


def read_state(folder: str | Path) -> VersionsState:
    """Read and check ``versions.json``; a one-line :class:`TelaError` naming the file otherwise."""
    p = Path(folder) / VERSIONS_FILE
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TelaError(f"{Path(folder)}: not a versions folder (no {VERSIONS_FILE})") from None
    except (ValueError, RecursionError, OSError) as e:
        said = " ".join(str(e).split()) or type(e).__name__
        raise TelaError(f"{p}: unreadable: {said[:200]}") from None
    if not isinstance(raw, dict) or raw.get("tela_versions") != FORMAT:
        raise TelaError(f"{p}: not a tela versions file (expected 'tela_versions': {FORMAT})")
    current, earlier, history = raw.get("current"), raw.get("earlier", []), raw.get("history", [])
    if current is not None and not (isinstance(current, str) and _NAME.fullmatch(current)):
        raise TelaError(f"{p}: 'current' must be a version name such as v1, got {current!r:.80}")
    if not isinstance(earlier, list) or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in earlier):
        raise TelaError(f"{p}: 'earlier' must be a list of version names")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise TelaError(f"{p}: 'history' must be a list of steps")
    return VersionsState(current, list(earlier), list(history))


def _step_no(step: Mapping[str, Any]) -> int:
    n = step.get("step")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _read_moved(folder: Path) -> list[dict[str, Any]]:
    """The steps in ``history.jsonl`` (oldest first); a line that is no JSON object is an error
    naming the file and line (the file is only ever replaced whole, so it is one written by hand)."""
    p = folder / HISTORY_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise TelaError(f"{p}: unreadable: {' '.join(str(e).split())[:200]}") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            step = json.loads(line)
        except (ValueError, RecursionError):
            step = None
        if not isinstance(step, dict):
            raise TelaError(f"{p}:{i}: not a step (a JSON object per line)")
        out.append(step)
    return out


def _overlap(moved: list[dict[str, Any]], steps: list[dict[str, Any]]) -> int:
    """How many of ``steps``' first steps are ``moved``'s last ones: those a process killed between
    the two writes of a move left in both files (compared whole, so a step without a number, or
    numbered by hand, is neither lost nor counted twice)."""
    for k in range(min(len(moved), len(steps)), 0, -1):
        if moved[-k:] == steps[:k]:
            return k
    return 0


def _write_state(folder: Path, state: VersionsState) -> None:
    """Write ``versions.json`` (atomically), first moving the steps beyond the last
    :data:`HISTORY_KEPT` to ``history.jsonl`` (module doc). The caller holds the folder's lock."""
    keep = max(1, int(HISTORY_KEPT))
    if len(state.history) > keep:
        older, state.history = state.history[:-keep], state.history[-keep:]
        moved = _read_moved(folder)
        new = older[_overlap(moved, older) :]  # a kill between the two writes left the others moved
        if new:
            from tela_core.infra.io import atomic_write_text, json_line

            lines = "".join(json_line(h, nonfinite="null") + "\n" for h in [*moved, *new])
            atomic_write_text(folder / HISTORY_FILE, lines)
    atomic_write_json(folder / VERSIONS_FILE, state.to_json())


def _next_step(folder: Path, state: VersionsState) -> int:
    """The number of the next step: after every step's number, in ``versions.json`` or moved out of
    it, and after the count of steps (steps without a number, added by hand, count too)."""
    moved = _read_moved(folder)
    steps = [*moved, *state.history[_overlap(moved, state.history) :]]
    return max(len(steps), *(_step_no(h) for h in steps)) + 1 if steps else 1


def resolve(path: str | Path) -> tuple[Path, str | None]:
    """(the router folder to load, the version name): a versions folder gives its current
    version's folder and name; any other path is itself, with no name."""
    p = Path(path)
    if not is_versions_dir(p):
        return p, None
    state = read_state(
        p
    )  # read once: a promotion between two reads would pair one version's name with another's folder
    return _current_dir(p, state), state.current


def current_dir(folder: str | Path) -> Path:
    """The current version's router folder; a clear error when there is none yet."""
    folder = Path(folder)
    return _current_dir(folder, read_state(folder))


def _current_dir(folder: Path, state: VersionsState) -> Path:
    if state.current is None:
        raise TelaError(f"{folder}: no current version yet; promote one with `tela promote`")
    return version_dir(folder, state.current, f"{folder / VERSIONS_FILE}: current version")


def version_dir(folder: str | Path, version: str, what: str | None = None) -> Path:
    """The folder of ``version``, which must be a folder *inside* ``folder``: a version that is a
    link to elsewhere (made by hand) is refused, so loading never leaves the versions folder."""
    folder = Path(folder)
    what = what or f"{folder}: version"
    d = folder / version
    if d.is_symlink():
        raise TelaError(
            f"{what} {version} is a link ({d} -> {os.readlink(d)}), not a folder of its own; versions are "
            "copied in by tela promote"
        )
    if not d.is_dir():
        raise TelaError(f"{what} {version} has no folder {d}")
    return d


def versions(folder: str | Path) -> list[str]:
    """The version folders present, oldest first."""
    found = [(int(m.group(1)), c.name) for c in Path(folder).iterdir() if (m := _NAME.fullmatch(c.name)) and c.is_dir()]
    return [name for _, name in sorted(found)]


def init(folder: str | Path) -> VersionsState:
    """Make ``folder`` a versions folder (created if missing; an existing one is left as it is)."""
    folder = Path(folder)
    if (folder / "tela.json").exists():
        raise TelaError(f"{folder}: is a router folder, not a versions folder; give a new folder to hold its versions")
    if (folder / VERSIONS_FILE).exists():
        return read_state(folder)
    if folder.is_dir() and any(folder.iterdir()):
        raise TelaError(f"{folder}: not empty and not a versions folder (no {VERSIONS_FILE}); give a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    state = VersionsState()
    _write_state(folder, state)
    return state


def add_version(folder: str | Path, router_dir: str | Path) -> str:
    """Copy the router in ``router_dir`` into ``folder`` as the next version (``vN``), whole or
    not at all (copied beside, then renamed); return its name. It is not made current."""
    folder, src = Path(folder), Path(router_dir)
    if not (src / "tela.json").is_file():
        raise TelaError(f"{src}: not a tela router (no tela.json)")
    check_not_inside(folder, src)
    # numbered after every name that looks like a version (a stray file ``v2`` included), never onto one
    taken = [int(m.group(1)) for c in folder.iterdir() if (m := _NAME.fullmatch(c.name))]
    n = max(taken, default=0) + 1
    name = f"v{n}"
    tmp = folder / f".{name}.incoming"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        shutil.copytree(src, tmp, symlinks=False, ignore=shutil.ignore_patterns(".score-cache", ".*.lock"))
    except (OSError, shutil.Error) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        said = " ".join(str(e).split())
        raise TelaError(f"{src}: could not be copied into {folder} as {name}: {said[:200]}") from None
    os.replace(tmp, folder / name)
    return name


def check_not_inside(folder: str | Path, router_dir: str | Path) -> None:
    """Refuse a versions folder inside the router it would copy (the copy would copy itself)."""
    f, src = Path(os.path.realpath(folder)), Path(os.path.realpath(router_dir))
    if f == src or src in f.parents:
        raise TelaError(
            f"{folder}: the versions folder is inside the candidate {router_dir}, which would copy itself into "
            "itself; keep the versions folder outside the router folders (e.g. beside them)"
        )


def set_current(
    folder: str | Path, version: str, action: str, record: str | None = None, **extra: Any
) -> VersionsState:
    """Make ``version`` current, in one atomic write of ``versions.json``, with a history step.
    ``action`` ``promote`` pushes the old current onto ``earlier``; ``rollback`` pops it."""
    folder = Path(folder)
    state = read_state(folder)
    version_dir(folder, version)
    before = state.current
    if action == "promote":
        if before is not None:
            state.earlier.append(before)
    elif action == "rollback":
        if not state.earlier or state.earlier[-1] != version:
            raise TelaError(f"{folder}: {version} is not the version before {before}")
        state.earlier.pop()
    else:  # pragma: no cover - callers pass one of the two
        raise ValueError(action)
    state.current = version
    step = {"step": _next_step(folder, state), "time": _now(), "action": action, "from": before, "to": version}
    if record is not None:
        step["record"] = record
    step.update(extra)
    state.history.append(step)
    _write_state(folder, state)
    return state


def note_step(folder: str | Path, action: str, record: str | None = None, **extra: Any) -> VersionsState:
    """Add a step that changes no version (a refused candidate) to the history."""
    folder = Path(folder)
    state = read_state(folder)
    step = {"step": _next_step(folder, state), "time": _now(), "action": action, "current": state.current}
    if record is not None:
        step["record"] = record
    step.update(extra)
    state.history.append(step)
    _write_state(folder, state)
    return state


def next_record_path(folder: str | Path, action: str, version: str | None) -> Path:
    """``records/NNNN-ACTION[-VERSION].json``, numbered after the records already there (at least
    four digits: the 10,000th record is ``10000-...``, and the one after it ``10001-...``)."""
    rd = Path(folder) / RECORDS_DIR
    taken = [int(m.group(1)) for p in rd.glob("*.json") if (m := _RECORD.match(p.name))] if rd.is_dir() else []
    n = max(taken, default=0) + 1  # after the last, even if an earlier record was removed
    return rd / f"{n:04d}-{action}{'-' + version if version else ''}.json"


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write a promotion record (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, dict(record))


def _pending(path: Path) -> Path:
    return path.with_name(f".{path.name}.pending")


def record_step(path: Path, record: Mapping[str, Any], step: Callable[[], VersionsState]) -> VersionsState:
    """Write ``record`` at ``path`` and take ``step`` (the write of ``versions.json`` that names it)
    as one: the record goes to a hidden pending file first, then the step, then the record is
    renamed into place. A process killed in between leaves a pending file, which :func:`recover`
    puts in place when ``versions.json`` names it and removes otherwise: no record of a step that
    was not taken."""
    pending = _pending(path)
    write_record(pending, record)
    state = step()
    os.replace(pending, path)
    return state


def recover(folder: str | Path) -> list[str]:
    """Finish or undo the records an interrupted step left (the lock held): what was done."""
    from tela_core.infra.io import remove_stale_temp_files

    _read_moved(Path(folder))  # a history.jsonl spoilt by hand: said now, before a step half-taken
    for name in (VERSIONS_FILE, HISTORY_FILE):  # written only under the lock: a temp file is a killed writer's
        remove_stale_temp_files(Path(folder) / name)
    rd = Path(folder) / RECORDS_DIR
    if not rd.is_dir():
        return []
    named = {h.get("record") for h in read_state(folder).history if isinstance(h.get("record"), str)}
    done = []
    for p in sorted(rd.glob(".*.json.pending")):
        final = p.with_name(p.name[1 : -len(".pending")])
        if f"{RECORDS_DIR}/{final.name}" in named:
            os.replace(p, final)
            done.append(f"finished {final.name}")
        else:
            p.unlink()
            done.append(f"removed {p.name}")
    return done


def versions_lock(folder: str | Path) -> Any:
    """The writer's lock of ``folder`` (:func:`tela_core.infra.locks.output_lock`): one promote or
    rollback at a time; another fails at once naming the holder."""
    from tela_core.infra.locks import output_lock

    # the folder's real path: ``live`` and a link to it are one folder, so they must be one lock
    return output_lock(Path(os.path.realpath(folder)))


def iter_history(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Every step taken, oldest first: those moved to ``history.jsonl``, then ``versions.json``'s
    (a step in both, left by a kill between the two writes, once)."""
    folder = Path(folder)
    state = read_state(folder)
    moved = _read_moved(folder)
    yield from moved
    yield from state.history[_overlap(moved, state.history) :]
