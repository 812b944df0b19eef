"""Every command that reads a user's file, over a table of bad inputs: missing, empty, a directory,
unreadable, malformed, wrong-typed, too deep, huge numbers, NaN, non-UTF-8, a lone surrogate, and
a byte order mark (which is accepted).

For each bad case a user must get exit code 2, one ``Error:`` line naming the file (and the line,
where the problem has one), no traceback, and the output left as it was (docs/reliability.md).
Malformed records are also generated at random (hypothesis) and fed to the JSONL reader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tela_core.data import sample_path
from tela_core.testkit.helpers import TelaCli

SAMPLE_LINES = sample_path().read_bytes().splitlines(keepends=True)
GOOD = b"".join(SAMPLE_LINES[:60])  # 60 seed-JSONL records with outcomes
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
PAIR = ("--set", f"family.weak={WEAK}", "--set", f"family.strong={STRONG}")


def _bad_line(obj_text: str) -> bytes:
    return GOOD + obj_text.encode("utf-8") + b"\n"


_FIRST = json.loads(SAMPLE_LINES[0])
BAD_LINE_NO = 61

#: kind -> (content: bytes | "<missing>" | "<dir>" | "<unreadable>", line of the problem or None)
JSONL_CASES: dict[str, tuple[Any, int | None]] = {
    "missing": ("<missing>", None),
    "empty": (b"", None),
    "blank-lines": (b"\n \n\t\n", None),
    "directory": ("<dir>", None),
    "malformed": (_bad_line('{"messages": [{"role": "user"'), BAD_LINE_NO),
    "wrong-typed": (_bad_line('{"messages": "hello", "prompt": 5}'), BAD_LINE_NO),
    "not-an-object": (_bad_line("[1, 2, 3]"), BAD_LINE_NO),
    "too-deep": (_bad_line('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"), BAD_LINE_NO),
    "huge-int": (_bad_line(json.dumps({**_FIRST, "outcomes": None})[:-1] + ', "n": ' + "9" * 5000 + "}"), BAD_LINE_NO),
    "huge-float": (_bad_line(json.dumps({**_FIRST, "costs": {"m": 1}}).replace('"m": 1', '"m": 1e400')), BAD_LINE_NO),
    "nan": (_bad_line(json.dumps({**_FIRST, "outcomes": {WEAK: 0.5, STRONG: 1}}).replace("0.5", "NaN")), BAD_LINE_NO),
    "infinity-cost": (_bad_line(json.dumps({**_FIRST, "costs": {WEAK: 0.5}}).replace("0.5", "Infinity")), BAD_LINE_NO),
    "non-utf8": (GOOD + b'{"prompt": "caf\xe9"}\n', BAD_LINE_NO),
    "lone-surrogate": (
        _bad_line(json.dumps({**_FIRST, "prompt": "x"}).replace('"prompt": "x"', '"prompt": "a\\ud800b"')),
        BAD_LINE_NO,
    ),
}
BOM = b"\xef\xbb\xbf" + GOOD

#: command name -> argv builder (input path, output path, router dir). Output is what must not change.
COMMANDS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "data-check": lambda f, o, r: ["data", "check", str(f)],
    "data-sample": lambda f, o, r: ["data", "sample", "--n", "5", str(f), str(o)],
    "data-convert": lambda f, o, r: ["data", "convert", str(f), str(o)],
    "data-preview": lambda f, o, r: ["data", "preview", "--formatter", "role-prefix", "--n", "100", str(f)],
    "run": lambda f, o, r: ["run", "--family", "length", "--data", str(f), "--output", str(o), *PAIR],
    "zoo": lambda f, o, r: [
        "zoo",
        "--families",
        "length",
        "--data",
        str(f),
        "--output",
        str(o),
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    ],
    "eval": lambda f, o, r: ["eval", "--router", str(r), "--data", str(f), "--output", str(o)],
    "calibrate": lambda f, o, r: ["calibrate", "--router", str(r), "--data", str(f), "--strong-share", "0.3"],
    "route-file": lambda f, o, r: ["route", "--router", str(r), "--file", str(f)],
}
#: (command, case) pairs that are not bad input for that command: `tela route --file` and
#: `tela calibrate` read a line that does not start with { or " as the prompt text itself
READ_AS_TEXT = {("route-file", "not-an-object"), ("calibrate", "not-an-object")}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory, tela_cli: TelaCli) -> Path:
    """A length router (not the kit's tiny_router: these cases need one that scores without a model)."""
    out = tmp_path_factory.mktemp("router") / "len"
    res = tela_cli("run", "--family", "length", "--data", sample_path(), "--output", out, *PAIR)
    assert res.exit_code == 0, res.output
    return out


pytestmark = pytest.mark.usefixtures("isolated_cache")  # every test writes to a cache of its own


def _make(path: Path, content: Any) -> Path:
    if content == "<missing>":
        return path
    if content == "<dir>":
        path.mkdir()
        return path
    path.write_bytes(content)
    return path


def _snapshot(*roots: Path) -> dict[str, bytes]:
    snap: dict[str, bytes] = {}
    for root in roots:
        if root.is_file():
            snap[str(root)] = root.read_bytes()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                snap[str(p)] = p.read_bytes() if p.is_file() else b"<dir>"
    return snap


def check_error(res: Any, path: Path, line: int | None) -> str:
    """Exit 2, exactly one ``Error:`` line that names ``path`` (and ``line``), no traceback."""
    out = res.output
    assert res.exit_code == 2, out
    assert "Traceback" not in out and res.exception is None or isinstance(res.exception, SystemExit), out
    errors = [x for x in out.splitlines() if x.startswith("Error: ")]
    assert len(errors) == 1, out
    assert str(path) in errors[0], errors[0]
    if line is not None:
        assert f"{path}:{line}:" in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("kind", sorted(JSONL_CASES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_jsonl_input(command: str, kind: str, tmp_path: Path, router: Path, tela_cli: TelaCli) -> None:
    content, line = JSONL_CASES[kind]
    src = _make(tmp_path / ("in" if content == "<dir>" else "in.jsonl"), content)
    out = tmp_path / "out"
    before = _snapshot(router, tmp_path / "out")
    siblings = sorted(p.name for p in tmp_path.iterdir())
    res = tela_cli(*COMMANDS[command](src, out, router))
    if (command, kind) in READ_AS_TEXT:
        assert res.exit_code == 0, res.output
        return
    check_error(res, src, line)
    assert _snapshot(router, tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # no stray stage, lock or temp file


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_byte_order_mark_is_accepted(command: str, tmp_path: Path, router: Path, tela_cli: TelaCli) -> None:
    """A UTF-8 BOM (Windows editors write one) reads as if it were not there."""
    plain = _make(tmp_path / "plain.jsonl", GOOD)
    bom = _make(tmp_path / "bom.jsonl", BOM)
    results = []
    for src in (plain, bom):
        out = tmp_path / f"out-{src.stem}"
        res = tela_cli(*COMMANDS[command](src, out, router))
        assert res.exit_code == 0, res.output
        results.append(res.output.replace(str(src), "IN").replace(str(out), "OUT"))
    if command in ("route-file", "data-check", "data-preview"):
        assert results[0] == results[1]


CSV_HEADER = f"prompt,{WEAK},{STRONG}\n"
CSV_GOOD = CSV_HEADER + "".join(f'"What is {i} + {i}?",{i % 3 == 0},True\n' for i in range(40))
CSV_CASES: dict[str, tuple[Any, int | None]] = {
    "empty": (b"", 1),
    "no-prompt-column": (b"question,a,b\nq,True,False\n", 1),
    "wrong-typed": ((CSV_GOOD + '"q",maybe,True\n').encode(), 42),
    "ragged": ((CSV_GOOD + '"q",True\n').encode(), 42),
    "non-utf8": (CSV_GOOD.encode() + b'"caf\xe9",True,True\n', 42),
}


@pytest.mark.parametrize("kind", sorted(CSV_CASES))
@pytest.mark.parametrize("command", ["data-check", "eval", "zoo", "run"])
def test_bad_outcome_csv(command: str, kind: str, tmp_path: Path, router: Path, tela_cli: TelaCli) -> None:
    content, line = CSV_CASES[kind]
    src = _make(tmp_path / "mmlu_x.csv", content)
    res = tela_cli(*COMMANDS[command](src, tmp_path / "out", router))
    check_error(res, src, line)
    assert not (tmp_path / "out").exists()


def test_outcome_csv_with_bom_reads_like_without(tmp_path: Path, tela_cli: TelaCli) -> None:
    plain = _make(tmp_path / "a.csv", CSV_GOOD.encode())
    bom = _make(tmp_path / "b.csv", b"\xef\xbb\xbf" + CSV_GOOD.encode())
    outs = [tela_cli("data", "check", "--json", p) for p in (plain, bom)]
    assert outs[0].exit_code == outs[1].exit_code == 0
    assert outs[0].output == outs[1].output


ROUTER_CASES: dict[str, Any] = {
    "missing": "<missing>",
    "empty-dir": "<emptydir>",
    "a-file": b"{}",
    "manifest-malformed": b'{"scorer": "length",',
    "manifest-wrong-typed": b'{"scorer": 5, "tela_artifact": 1}',
    "manifest-not-object": b"[1, 2]",
    "manifest-too-deep": b'{"scorer": "length", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "manifest-non-utf8": b'{"scorer": "l\xe9ngth", "tela_artifact": 1}',
    "manifest-unknown-family": b'{"scorer": "no-such-family", "tela_artifact": 1}',
}


@pytest.mark.parametrize("kind", sorted(ROUTER_CASES))
@pytest.mark.parametrize("command", ["route", "eval", "calibrate"])
def test_bad_router_dir(command: str, kind: str, tmp_path: Path, tela_cli: TelaCli) -> None:
    content = ROUTER_CASES[kind]
    r = tmp_path / "router"
    if content == "<emptydir>":
        r.mkdir()
    elif kind == "a-file":
        r.write_bytes(content)
    elif content != "<missing>":
        r.mkdir()
        (r / "tela.json").write_bytes(content)
    data = _make(tmp_path / "d.jsonl", GOOD)
    argv = {
        "route": ["route", "--router", str(r), "what is 2 + 2?"],
        "eval": ["eval", "--router", str(r), "--data", str(data), "--output", str(tmp_path / "out")],
        "calibrate": ["calibrate", "--router", str(r), "--data", str(data), "--strong-share", "0.5"],
    }[command]
    before = _snapshot(r)
    res = tela_cli(*argv)
    check_error(res, r, None)
    assert _snapshot(r) == before and not (tmp_path / "out").exists()


CONFIG_CASES: dict[str, tuple[str, Any, int | None]] = {
    "missing": ("run.yaml", "<missing>", None),
    "directory": ("run.yaml", "<dir>", None),
    "malformed-yaml": ("run.yaml", b"epochs: [1, 2\nbatch_size: 3\n", None),
    "not-a-mapping": ("run.yaml", b"- 1\n- 2\n", None),
    "non-utf8": ("run.yaml", b"epochs: 1\nnote: caf\xe9\n", None),
    "malformed-toml": ("run.toml", b"epochs = \n", None),
    "too-deep-yaml": ("run.yaml", b"x: " + b"[" * 5_000 + b"]" * 5_000 + b"\n", None),
}


@pytest.mark.parametrize("kind", sorted(CONFIG_CASES))
def test_bad_run_config_file(kind: str, tmp_path: Path, tela_cli: TelaCli) -> None:
    name, content, line = CONFIG_CASES[kind]
    cfg = _make(tmp_path / name, content)
    out = tmp_path / "out"
    res = tela_cli("run", "--config", cfg, "--family", "length", "--data", sample_path(), "--output", out)
    check_error(res, cfg, line)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# Unreadable files: root reads any file, so when the tests run as root the CLI runs in a child
# without the capabilities that let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
# ------------------------------------------------------------------------------------------------

_UNREADABLE_SCRIPT = r"""
import json, sys
from tela_core.testkit.helpers import run_cli
results = []
for argv in json.loads(sys.argv[1]):
    r = run_cli(*argv)
    results.append({"code": r.exit_code, "output": r.output})
print(json.dumps(results))
"""


def _drop_root_file_access() -> None:
    """In the child before exec: drop the two capabilities from the bounding set (prctl
    PR_CAPBSET_DROP), so that root, too, is refused a mode-0 file."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_input_and_read_only_output(tmp_path: Path, router: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD)
    os.chmod(src, 0)
    rdir = tmp_path / "routerdir"
    shutil.copytree(router, rdir)
    os.chmod(rdir / "length.json", 0)
    cmds = {name: build(src, tmp_path / f"out-{name}", router) for name, build in COMMANDS.items()}
    cmds["route-router"] = ["route", "--router", str(rdir), "q"]
    cmds["config"] = [
        "run",
        "--config",
        str(src),
        "--family",
        "length",
        "--data",
        str(sample_path()),
        "--output",
        str(tmp_path / "out-config"),
    ]
    # a read-only directory (mode 0555) as the place to write
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    good = tmp_path / "good.jsonl"
    good.write_bytes(GOOD)
    for name in ("data-sample", "data-convert", "run", "zoo", "eval"):
        cmds[f"{name}-readonly"] = COMMANDS[name](good, readonly / "out", router)
    os.chmod(readonly, 0o555)
    env = dict(os.environ)  # TELA_CACHE: this test's isolated cache
    preexec = _drop_root_file_access if os.geteuid() == 0 else None
    proc = subprocess.run(
        [sys.executable, "-c", _UNREADABLE_SCRIPT, json.dumps(list(cmds.values()))],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=preexec,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (name, _argv), r in zip(cmds.items(), results):
        assert r["code"] == 2, (name, r["output"])
        assert "Traceback" not in r["output"], (name, r["output"])
        errs = [x for x in r["output"].splitlines() if x.startswith("Error: ")]
        named = str(readonly / "out") if name.endswith("-readonly") else (str(src), str(rdir))
        assert len(errs) == 1 and any(n in errs[0] for n in ([named] if isinstance(named, str) else named)), (
            name,
            r["output"],
        )
        assert not (tmp_path / f"out-{name}").exists()
    assert list(readonly.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Random malformed records (hypothesis)
# ------------------------------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_record_like = st.fixed_dictionaries(
    {},
    optional={
        "messages": st.one_of(
            _json_values,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "role": st.sampled_from(["system", "user", "assistant", "bot", 3]),
                        "content": st.one_of(st.text(max_size=30), st.sampled_from(["[[3]]", "[[9]]", " "])),
                    },
                ),
                max_size=3,
            ),
        ),
        "prompt": _json_values,
        "outcomes": st.one_of(_json_values, st.dictionaries(st.text(max_size=5), st.floats(), max_size=3)),
        "costs": _json_values,
        "group": _json_values,
        "id": _json_values,
    },
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=_record_like, garbage=st.binary(max_size=40), which=st.sampled_from(["obj", "garbage"]))
def test_random_malformed_records_never_crash_the_reader(tmp_path: Path, obj: Any, garbage: bytes, which: str) -> None:
    """Whatever a line holds, the JSONL reader yields a record or raises InputError naming the
    file and line 2: never another exception."""
    from tela_core.data.records import iter_jsonl, validate_seed_object
    from tela_core.infra.errors import InputError

    f = tmp_path / "h.jsonl"
    line = json.dumps(obj).encode() if which == "obj" else garbage.replace(b"\n", b" ")
    f.write_bytes(SAMPLE_LINES[0] + line + b"\n")
    try:
        for n, o in iter_jsonl(f):
            validate_seed_object(o, f, n)
    except InputError as e:
        assert e.path == str(f) and e.line == 2, str(e)
