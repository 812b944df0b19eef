"""One CLI vocabulary: an option that several commands share means, spells and explains itself the
same way on each, and a flag that a command's mode cannot use is refused with one line, not dropped."""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from tela_core.cli.main import get_cli
from tela_core.cli.options import HELP, parse_named_routers
from tela_core.data.protocols import names as protocol_names
from tela_core.testkit.helpers import one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[1]
WEAK, STRONG = "weak-llm", "strong-llm"

#: the shared options (by their long name) -> their key in tela_core.cli.options.HELP
SHARED = {
    "--output": "output",
    "--source": "source",
    "--protocol": "protocol",
    "--json": "json",
    "--set": "set",
    "--force": "force",
    "--weak-model": "weak_model",
    "--strong-model": "strong_model",
    "--no-cache": "no_cache",
    "--trust-remote-code": "trust_remote_code",
    "--score-batch-size": "score_batch_size",
    "--policy": "policy",
    "--processes": "processes",
    "--hostfile": "hostfile",
    "--nnodes": "nnodes",
    "--node-rank": "node_rank",
    "--master-addr": "master_addr",
    "--master-port": "master_port",
    "--rdzv-endpoint": "rdzv_endpoint",
}


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every tela command (groups walked into), as ``"data check"`` -> command; plugin commands left out
    (their options are their authors')."""
    for name, cmd in sorted(group.commands.items()):
        if not (cmd.callback is None or cmd.callback.__module__.startswith("tela_core.cli")):
            continue
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def _shape(opt: click.Option) -> dict[str, Any]:
    """What a user meets of an option: its spellings, type, flag-ness, multiplicity, help."""
    info = opt.to_info_dict()
    return {k: info[k] for k in ("opts", "secondary_opts", "type", "is_flag", "multiple", "help", "hidden")}


def _paired_with_repeated_data(cmd: click.Command, opt: click.Option) -> bool:
    """``--source`` is repeatable exactly where ``--data`` is (tela run: one per --data, in order)."""
    data = next((p for p in cmd.params if isinstance(p, click.Option) and "--data" in p.opts), None)
    return opt.opts == ["--source"] and opt.multiple and data is not None and data.multiple


def test_shared_options_have_one_name_type_and_help_wherever_they_appear() -> None:
    seen: dict[str, dict[str, list[str]]] = {}
    for where, cmd in _commands(get_cli()):
        for p in cmd.params:
            long = [o for o in p.opts if o.startswith("--")]
            if isinstance(p, click.Option) and long and long[0] in SHARED:
                info = _shape(p)
                if _paired_with_repeated_data(cmd, p):
                    info["multiple"] = False  # the same option, once per source
                shape = json.dumps(info, sort_keys=True, default=str)
                seen.setdefault(long[0], {}).setdefault(shape, []).append(where)
                assert p.help == HELP[SHARED[long[0]]], f"tela {where} {long[0]}: help is not the shared one"
    differing = {opt: shapes for opt, shapes in seen.items() if len(shapes) > 1}
    assert not differing, json.dumps(differing, indent=1)
    # the vocabulary is really shared: each option on the commands the issue names
    on = {opt: next(iter(shapes.values())) for opt, shapes in seen.items()}
    assert {"run", "eval", "zoo", "demo"} <= set(on["--output"])
    assert {"eval", "zoo", "calibrate"} <= set(on["--protocol"])
    assert {"run", "eval", "zoo", "calibrate", "data check"} <= set(on["--source"])
    assert {"run", "zoo", "route", "eval", "calibrate", "data preview"} <= set(on["--set"])
    assert {"route", "eval", "calibrate", "zoo", "serve", "run"} <= set(on["--trust-remote-code"])
    assert {"run", "eval", "zoo", "calibrate", "route"} <= set(on["--processes"]) & set(on["--rdzv-endpoint"])
    assert json.loads(next(iter(seen["--output"])))["opts"] == ["--output", "-o"]


def test_set_help_examples_name_sections_their_commands_take() -> None:
    """--set's help is shared, so each example says which commands it is for, and those take its section
    (it once showed policy.threshold=0.3 on tela run, which refuses a policy section)."""
    examples = re.findall(r"--set ([\w-]+)\.\S+ \(([^)]*)\)", HELP["set"])
    assert len(examples) == len(re.findall(r"--set [\w-]+\.", HELP["set"])), HELP["set"]  # each names its commands
    commands = dict(_commands(get_cli()))
    for section, names in examples:
        for name in names.split(", "):
            opt = next(p for p in commands[name].params if isinstance(p, click.Option) and "--set" in p.opts)
            assert section in str(opt.metavar), f"tela {name} --set {opt.metavar}: no {section} section"


def test_protocol_is_a_choice_of_the_registered_protocols_everywhere() -> None:
    for argv in (
        ["eval", "--router", "random", "--data", "d", "-o", "o"],
        ["zoo", "--data", "d", "--families", "length", "-o", "o"],
        ["calibrate", "--router", "r", "--data", "d", "--strong-share", "0.5"],
    ):
        line = one_error_line(run_cli(argv[0], "--protocol", "no-such-split", *argv[1:]))
        assert "no-such-split" in line and all(name in line for name in protocol_names()), line


def _outcomes(folder: Path, n: int = 60) -> Path:
    """Two subjects of RouteLLM-style per-subject CSVs: the weak model fails the hard one's prompts."""
    folder.mkdir()
    for subject, hard in (("algebra", True), ("geography", False)):
        with open(folder / f"mmlu_{subject}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["prompt", WEAK, STRONG])
            for i in range(n):
                q = f"Solve {i}x + 3 = {2 * i + 7} for x." if hard else f"Which country is city {i} in?"
                w.writerow([f"{q}\nA. one\nB. two\nAnswer:", (not hard) or i % 5 == 0, hard or i % 4 != 0])
    return folder


def test_zoo_takes_dash_o_and_a_router_as_a_plain_directory(tmp_path: Path, tiny_router: Path) -> None:
    """`-o` works on zoo as on run and eval; `--router DIR` is named after its folder."""
    import shutil

    data = _outcomes(tmp_path / "data")
    router = Path(shutil.copytree(tiny_router, tmp_path / "my-router"))  # the kit's router, under a name zoo must use
    out = tmp_path / "zoo"
    r = run_cli(
        "zoo",
        "--data",
        data,
        "--families",
        "length",
        "--router",
        router,
        "-o",
        out,
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    )
    assert r.exit_code == 0, r.output
    rows = {f["family"] for f in json.loads((out / "results.json").read_text())["families"]}
    assert rows == {"length", "my-router"}


def test_named_routers_take_dir_or_name_equals_dir() -> None:
    assert parse_named_routers(["runs/knn", "st=runs/mmlu"]) == {
        "knn": Path("runs/knn").resolve(),
        "st": Path("runs/mmlu").resolve(),
    }
    from tela_core.infra.errors import TelaError

    with pytest.raises(TelaError, match="given twice"):
        parse_named_routers(["a/knn", "b/knn"])


REFUSED = {
    "eval --all-models --weak-model": (
        ["eval", "--router", "random", "--all-models", "--weak-model", WEAK],
        "--all-models",
        "--weak-model",
    ),
    "eval --all-models --strong-model": (
        ["eval", "--router", "random", "--all-models", "--strong-model", STRONG],
        "--all-models",
        "--strong-model",
    ),
    "eval baseline --no-cache": (["eval", "--router", "random", "--no-cache"], "baseline", "--no-cache"),
    "eval baseline --policy": (["eval", "--router", "oracle", "--policy", "threshold"], "baseline", "--policy"),
    "eval baseline --trust-remote-code": (
        ["eval", "--router", "random", "--trust-remote-code"],
        "baseline",
        "--trust-remote-code",
    ),
    "calibrate --traffic --protocol": (
        ["calibrate", "--router", "r", "--traffic", "log.jsonl", "--strong-share", "0.5", "--protocol", "mmlu-heldout"],
        "--traffic",
        "--protocol",
    ),
    "calibrate --data --traffic-router": (
        ["calibrate", "--router", "r", "--data", "d.jsonl", "--strong-share", "0.5", "--traffic-router", "knn"],
        "--data",
        "--traffic-router",
    ),
    "route --threshold --policy": (
        ["route", "--router", "r", "--threshold", "0.3", "--policy", "threshold", "hi"],
        "--threshold",
        "--policy",
    ),
    "zoo --set without --families": (["zoo", "--router", "r", "--set", "length.k=1"], "--families", "--set"),
    "zoo --trust-remote-code without --router": (
        ["zoo", "--families", "length", "--trust-remote-code"],
        "--router",
        "--trust-remote-code",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_flag_the_mode_cannot_use_is_refused_with_one_line(case: str, tmp_path: Path) -> None:
    argv, mode, flag = REFUSED[case]
    out = tmp_path / "out"
    if argv[0] in ("eval", "zoo"):
        argv = [*argv, "--data", str(tmp_path / "data"), "-o", str(out)]
    line = one_error_line(run_cli(*argv))
    assert mode in line and f"does not take {flag}" in line, line
    assert not out.exists()


def test_the_environment_trust_variable_is_not_a_refused_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TELA_TRUST_REMOTE_CODE=1 in a user's shell must not make every baseline eval fail."""
    monkeypatch.setenv("TELA_TRUST_REMOTE_CODE", "1")
    r = run_cli(
        "eval",
        "--router",
        "random",
        "--data",
        _outcomes(tmp_path / "data"),
        "-o",
        tmp_path / "out",
        "--weak-model",
        WEAK,
        "--strong-model",
        STRONG,
    )
    assert r.exit_code == 0, r.output


def test_old_spellings_still_work_with_a_note(tmp_path: Path) -> None:
    r = run_cli("zoo", "--data", tmp_path, "--families", "length", "--option", "nope.k=1", "-o", tmp_path / "o")
    assert "note: --option is now --set" in r.output
    assert "--set for 'nope'" in one_error_line(r)  # read as --set, and checked as such


def test_no_records_is_one_error_everywhere(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    lines = {
        one_error_line(run_cli("data", "check", empty)),
        one_error_line(run_cli("eval", "--router", "random", "--data", empty, "-o", tmp_path / "e")),
        one_error_line(run_cli("zoo", "--data", empty, "--families", "length", "-o", tmp_path / "z")),
        one_error_line(run_cli("run", "--data", empty, "--family", "length", "-o", tmp_path / "r")),
    }
    assert len(lines) == 1 and f"{empty}: no records" in lines.pop()


def test_exit_code_2_without_patching_click() -> None:
    """tela's exit code 2 comes from its own exception class; click's own ClickException keeps 1."""
    assert click.ClickException.exit_code == 1
    line = one_error_line(run_cli("plugins", "show", "formatter", "no-such-formatter"))
    assert "registered formatters" in line


def test_plugins_import_hookimpl_from_one_place() -> None:
    """`from tela_core import hookimpl`, as docs/plugins.md says, in every builtin and example plugin."""
    bad = []
    for f in [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module != "tela_core"
                and any(a.name == "hookimpl" for a in node.names)
            ):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports hookimpl from {node.module}")
    assert not bad, "\n".join(bad)


def test_help_examples_keep_their_line_continuations() -> None:
    """An example split over lines with ``\\`` shows as two lines in --help (a docstring that is not
    raw eats a lone backslash-newline, gluing the lines together with a run of spaces)."""
    glued = [
        f"tela {where}: {line.strip()}"
        for where, cmd in _commands(get_cli())
        for line in (cmd.help or "").splitlines()
        if line.lstrip().startswith("tela ") and "      " in line.strip()
    ]
    assert not glued, glued
