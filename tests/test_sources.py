"""Training one router on several sources (issue 21): repeated --data/--source/--weight and a
run config's mix:, --protocol on tela run, tela data split, a model map per source, an honest
error when the sources share no model, the pair a router records and tela eval's note when it is
judged on another pair, families that hold nothing out, and `tela plugins show family NAME`.

Real data only: the bundled MMLU samples (tela_core/data/*.jsonl, always here) and, where the
test kit finds them, RouteLLM's MMLU outcomes and LLMRouter's outcomes (skipped cleanly without).
A file "of other models" is a bundled sample whose model names are renamed: the outcomes are
still the real ones, only the names differ, which is the whole point of a model map.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tela_core import Backend, hookimpl
from tela_core.data import sample_path
from tela_core.data.mix import SourceSpec, read_mix, weigh
from tela_core.infra.errors import TelaError
from tela_core.routing.router import Router
from tela_core.routing.targets import resolve_pair
from tela_core.testkit.helpers import (
    build_tiny_router,
    needs_public_data,
    one_error_line,
    public_data,
    registered_plugin,
    run_cli,
)
from tela_core.train import RunConfig, resolve_config

SAMPLE = sample_path()  # 400 training-side MMLU prompts, Mixtral (weak) / GPT-4 (strong)
HELDOUT = sample_path("mmlu_heldout_sample.jsonl")  # 300 prompts of the 15 held-out subjects
MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
MMLU = public_data("routellm-mmlu")
NIM9 = public_data("llmrouter", "llmrouter-nim9")
FAMILY = "prompt-features"  # a family that trains itself in about a second


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def renamed(src: Path, out: Path, names: dict[str, str], extra: str | None = None) -> Path:
    """``src`` with its models renamed (``extra``: a third model, a copy of the strong one's outcomes)."""
    rows = []
    for obj in lines(src):
        obj["outcomes"] = {names[m]: v for m, v in obj["outcomes"].items()}
        if extra:
            obj["outcomes"][extra] = obj["outcomes"][names[GPT4]]
        rows.append(json.dumps(obj))
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def manifest(router: Path) -> dict:
    return json.loads((router / "tela.json").read_text())


# ------------------------------------------------------------------------------------------------
# several --data, weights
# ------------------------------------------------------------------------------------------------


def test_two_files_of_one_pair_train_one_router_with_weights(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = run_cli(
        "run", "--family", FAMILY, "--data", SAMPLE, "--data", HELDOUT, "--weight", "1", "--weight", "2", "-o", out
    )
    assert r.exit_code == 0, r.output
    m = manifest(out)
    data = m["data"]
    assert data["source"] == "mix" and data["records"] == 700
    assert [s["train"] for s in data["sources"]] == [400, 600]  # weight 2: every held-out record twice
    assert m["train_records"] == 1000 and data["eval"] == 0  # a self-training family holds nothing out
    assert all((s["weak"], s["strong"]) == (MIXTRAL, GPT4) for s in data["sources"])
    assert m["trained_pairs"] == [[MIXTRAL, GPT4]] and Router.load(out).models == [MIXTRAL, GPT4]


def test_a_fractional_weight_draws_the_same_rows_with_the_seed() -> None:
    records = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(6)]
    origins = [0] * 10 + [1] * 6
    once, where = weigh(records, origins, [0.5, 1.5], seed=42)
    assert once == weigh(records, origins, [0.5, 1.5], seed=42)[0]  # deterministic
    a = [x for x in once if x.startswith("a")]
    b = [x for x in once if x.startswith("b")]
    assert len(a) == 5 and len(set(a)) == 5  # half of a, drawn without replacement
    assert len(b) == 9 and set(b) == {f"b{i}" for i in range(6)}  # all of b once, then 3 again
    assert where == [0] * 5 + [1] * 9
    assert weigh(records, origins, [0.5, 1.5], seed=7)[0] != once  # the seed decides which rows


def test_a_weight_that_rounds_a_source_to_no_rows_says_so_and_leaves_its_pair_out(tmp_path: Path) -> None:
    """0.4 x one record rounds to 0 training rows: a note names the source, and the manifest does not
    claim the router was trained on that source's pair."""
    one = tmp_path / "one.jsonl"
    renamed(HELDOUT, tmp_path / "all.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"})
    row = next(r for r in lines(tmp_path / "all.jsonl") if r["outcomes"]["small-x"] != r["outcomes"]["big-y"])
    one.write_text(json.dumps(row) + "\n", encoding="utf-8")
    out = tmp_path / "r"
    r = run_cli(
        "run",
        "--family",
        FAMILY,
        "--data",
        SAMPLE,
        "--data",
        one,
        "--weight",
        "1",
        "--weight",
        "0.4",
        "--set",
        "family.target=label",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    notes = [x for x in r.stderr.splitlines() if "0 training rows" in x]
    assert len(notes) == 1 and f"{one} (source2)" in notes[0] and "weight 0.4" in notes[0], r.stderr
    m = manifest(out)
    assert [s["train"] for s in m["data"]["sources"]] == [400, 0]
    assert m["trained_pairs"] == [[MIXTRAL, GPT4]]


def test_one_source_config_keeps_its_fingerprint() -> None:
    """Routers trained before mixes existed must still resume/report 'done' with the same command."""
    import hashlib

    cfg = RunConfig.build({"data": SAMPLE, "output": "o"})
    d = cfg.model_dump(
        mode="json",
        exclude={
            "output",
            "hostfile",
            "nnodes",
            "node_rank",
            "master_addr",
            "master_port",
            "rdzv_endpoint",
            "mix",
            "protocol",
            "operating_point",
        },
    )
    d["data"] = str(SAMPLE.resolve())
    assert cfg.fingerprint() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def test_the_split_of_a_backend_family_is_the_seeds_split() -> None:
    """Mixing goes through indices, so one source with eval fraction 0.1 splits exactly as before."""
    from tela_core.train.data import read_data, split_mix, split_records

    cfg = RunConfig.build({"data": SAMPLE, "output": "o", "sample": 300})
    mix = read_data(cfg)
    train, evals, _ = split_mix(cfg, mix, holds_out=True)
    old_train, old_evals = split_records(cfg, mix.records)
    assert [r.id for r in train] == [r.id for r in old_train] and [r.id for r in evals] == [r.id for r in old_evals]
    assert len(evals) == 30


# ------------------------------------------------------------------------------------------------
# the model map; sources that share no model
# ------------------------------------------------------------------------------------------------


def test_sources_of_different_pairs_train_on_roles_and_the_router_says_so(tmp_path: Path) -> None:
    other = renamed(SAMPLE, tmp_path / "other.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"}, extra="big-z")
    out = tmp_path / "r"
    # three models in the second source: which is the pair cannot be guessed
    line = one_error_line(run_cli("run", "--family", FAMILY, "--data", HELDOUT, "--data", other, "-o", out))
    assert "source2" in line and "small-x, big-y, big-z" in line and "--set source2.models.weak=NAME" in line, line
    assert not out.exists()
    r = run_cli(
        "run",
        "--family",
        FAMILY,
        "--data",
        HELDOUT,
        "--data",
        other,
        "--set",
        "source2.models.weak=small-x",
        "--set",
        "source2.models.strong=big-z",
        "--set",
        "family.target=label",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "different model pairs" in r.output and "'weak' and 'strong'" in r.output
    m = manifest(out)
    assert m["trained_pairs"] == [[MIXTRAL, GPT4], ["small-x", "big-z"]]
    assert m["data"]["sources"][1]["models"] == {"weak": "small-x", "strong": "big-z"}
    assert m["data"]["models_by_role"] is True
    assert Router.load(out).models == ["weak", "strong"]  # what it really routes between, said plainly


def test_a_model_map_naming_a_model_the_source_lacks_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "r"
    line = one_error_line(
        run_cli(
            "run",
            "--family",
            FAMILY,
            "--data",
            SAMPLE,
            "--data",
            HELDOUT,
            "--set",
            "source2.models.weak=gpt-5",
            "-o",
            out,
        )
    )
    assert "gpt-5" in line and MIXTRAL in line and GPT4 in line and "source2" in line, line
    assert not out.exists()


@needs_public_data("routellm-mmlu")
def test_an_outcome_source_lacking_a_mapped_model_names_the_option_of_the_command(tmp_path: Path) -> None:
    """tela run has no --weak-model: its error names the source's model map; eval and zoo keep --weak-model."""
    assert MMLU is not None
    csv = MMLU / "mmlu_anatomy.csv"
    line = one_error_line(
        run_cli(
            "run",
            "--family",
            FAMILY,
            "--data",
            SAMPLE,
            "--data",
            csv,
            "--set",
            "source2.models.weak=nope",
            "-o",
            tmp_path / "r",
        )
    )
    assert "weak model 'nope' is not in the data" in line and line.endswith("(--set source2.models.weak=NAME)"), line
    assert "--weak-model" not in line
    line = one_error_line(
        run_cli("run", "--family", FAMILY, "--data", csv, "--set", "source.models.strong=nope", "-o", tmp_path / "r")
    )
    assert line.endswith("(--set source.models.strong=NAME)"), line
    line = one_error_line(
        run_cli("zoo", "--families", "length", "--data", csv, "--weak-model", "nope", "-o", tmp_path / "z")
    )
    assert "weak model 'nope' is not in the data" in line and line.endswith("(--weak-model)"), line
    assert not (tmp_path / "r").exists() and not (tmp_path / "z").exists()


def test_records_that_share_no_model_get_an_error_naming_each_set(tmp_path: Path) -> None:
    """One file holding two datasets of different models: not 'the data has no per-model outcomes'."""
    other = renamed(HELDOUT, tmp_path / "o.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"})
    both = tmp_path / "both.jsonl"
    both.write_text(SAMPLE.read_text(encoding="utf-8") + other.read_text(encoding="utf-8"), encoding="utf-8")
    line = one_error_line(run_cli("run", "--family", FAMILY, "--data", both, "-o", tmp_path / "r"))
    assert "no per-model outcomes" not in line
    assert f"400 records have {GPT4}, {MIXTRAL}" in line and "300 records have big-y, small-x" in line, line
    assert "--data A --data B" in line and "--set sourceN.models.weak=NAME" in line, line  # what fixes it
    with pytest.raises(TelaError, match="name no model in common"):
        resolve_pair(read_mix([SourceSpec(data=both)]).records)


@needs_public_data("llmrouter", "llmrouter-nim9")
def test_mmlu_and_llmrouter_train_one_router(tmp_path: Path) -> None:
    assert NIM9 is not None
    train = NIM9 / "dcrouter_preprocessed_train.json"
    out = tmp_path / "r"
    r = run_cli(
        "run",
        "--family",
        FAMILY,
        "--data",
        SAMPLE,
        "--data",
        train,
        "--source",
        "jsonl",
        "--source",
        "llmrouter-json",
        "--weight",
        "1",
        "--weight",
        "0.5",
        "--set",
        "source2.models.strong=qwen2.5-7b-instruct",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    m = manifest(out)
    assert m["trained_pairs"] == [[MIXTRAL, GPT4], ["gemma-2-9b-it", "qwen2.5-7b-instruct"]]
    assert [s["train"] for s in m["data"]["sources"]] == [400, 2804]
    # the map is the source's pair: its labels follow it, and a name it lacks is the source's one line
    line = one_error_line(
        run_cli(
            "run",
            "--family",
            FAMILY,
            "--data",
            SAMPLE,
            "--data",
            train,
            "--set",
            "source2.models.strong=gpt-4o",
            "-o",
            tmp_path / "bad",
        )
    )
    assert "gpt-4o" in line and "qwen2.5-7b-instruct" in line, line


# ------------------------------------------------------------------------------------------------
# a run config's mix:
# ------------------------------------------------------------------------------------------------


def test_mix_in_a_run_config_file(tmp_path: Path) -> None:
    other = renamed(HELDOUT, tmp_path / "o.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"})
    conf = tmp_path / "run.yaml"
    conf.write_text(
        f"family: {FAMILY}\n"
        "mix:\n"
        f"  - data: {SAMPLE}\n"
        f"  - data: {other}\n"
        "    source: jsonl\n"
        "    weight: 0.5\n"
        "    models: {weak: small-x}\n",
        encoding="utf-8",
    )
    out = tmp_path / "r"
    r = run_cli("run", "--config", conf, "--set", "source2.models.strong=big-y", "-o", out)
    assert r.exit_code == 0, r.output
    srcs = manifest(out)["data"]["sources"]
    assert [s["train"] for s in srcs] == [400, 150] and srcs[1]["models"] == {"weak": "small-x", "strong": "big-y"}
    cfg = resolve_config(conf, {"output": out}, ["source.require_label=false"])
    assert [s.source_options for s in cfg.sources()] == [{"require_label": False}] * 2  # source. applies to all


@pytest.mark.parametrize(
    "entry, said",
    [
        (
            "    wieght: 2\n",
            "mix entry 2: unknown key 'wieght'; valid keys: data, source, source_options, models, weight, protocol",
        ),
        ("    weight: true\n", "mix entry 2: weight: must be a positive number"),
    ],
)
def test_a_bad_mix_entry_of_a_config_file_is_named_by_file_and_entry(tmp_path: Path, entry: str, said: str) -> None:
    """The user wrote the key in the file: the error names the file and the entry, never a flag (--wieght)."""
    conf = tmp_path / "run.yaml"
    conf.write_text(f"family: {FAMILY}\nmix:\n  - data: {SAMPLE}\n  - data: {HELDOUT}\n{entry}", encoding="utf-8")
    out = tmp_path / "r"
    line = one_error_line(run_cli("run", "--config", conf, "-o", out))
    assert line.startswith(f"Error: {conf}: {said}"), line
    assert "--wieght" not in line and "--weight" not in line
    assert not out.exists()
    with pytest.raises(ValueError, match="positive number"):
        SourceSpec(data=SAMPLE, weight=True)  # not read as 1.0, from Python either


BAD = {
    "counts": (["--data", "A", "--data", "B", "--source", "jsonl"], ["--data is given 2", "--source 1"]),
    "weights": (["--data", "A", "--data", "B", "--weight", "2"], ["--data is given 2", "--weight 1"]),
    "weight 0": (["--data", "A", "--data", "B", "--weight", "0", "--weight", "1"], ["--weight (source1)", "positive"]),
    "weight < 0": (
        ["--data", "A", "--data", "B", "--weight", "1", "--weight", "-2"],
        ["--weight (source2)", "positive"],
    ),
    "one weight": (["--data", "A", "--weight", "2"], ["nothing to weigh"]),
    "source3": (["--data", "A", "--data", "B", "--set", "source3.models.weak=x"], ["source3", "2 sources"]),
    "map role": (["--data", "A", "--data", "B", "--set", "source1.models.cheap=x"], ["source1", "weak and strong"]),
    "unknown source": (
        ["--data", "A", "--data", "B", "--source", "jsonl", "--source", "nope"],
        ["nope", "jsonl", "routellm-csv", "llmrouter-json"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mix_options_are_one_line_and_write_nothing(case: str, tmp_path: Path) -> None:
    argv, said = BAD[case]
    argv = [str(SAMPLE) if a == "A" else str(HELDOUT) if a == "B" else a for a in argv]
    out = tmp_path / "r"
    line = one_error_line(run_cli("run", "--family", FAMILY, *argv, "-o", out))
    assert all(s in line for s in said), line
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# --protocol on tela run; tela data split
# ------------------------------------------------------------------------------------------------


@pytest.fixture()
def sample_with_heldout(tmp_path: Path) -> Path:
    """The bundled training-side and held-out-subject samples in one file: MMLU as a user has it."""
    both = tmp_path / "mmlu.jsonl"
    both.write_text(SAMPLE.read_text(encoding="utf-8") + HELDOUT.read_text(encoding="utf-8"), encoding="utf-8")
    return both


def test_data_split_writes_sides_that_run_and_eval_read_as_they_are(tmp_path: Path, sample_with_heldout: Path) -> None:
    out = tmp_path / "split"
    r = run_cli("data", "split", "--protocol", "mmlu-heldout", "-o", out, sample_with_heldout)
    assert r.exit_code == 0, r.output
    info = json.loads((out / "split.json").read_text())
    train, evals = lines(out / "train.jsonl"), lines(out / "eval.jsonl")
    assert info["train"] == len(train) == 400 and info["eval"] == len(evals) <= 300
    assert {o["group"] for o in train}.isdisjoint({o["group"] for o in evals})
    assert all(o["outcomes"] and o["messages"][-1]["role"] == "assistant" for o in train)
    # tela run --protocol trains on exactly the rows of train.jsonl
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        run_cli(
            "run", "--family", FAMILY, "--data", sample_with_heldout, "--protocol", "mmlu-heldout", "-o", a
        ).exit_code
        == 0
    )
    assert run_cli("run", "--family", FAMILY, "--data", out / "train.jsonl", "-o", b).exit_code == 0
    assert (
        manifest(a)["train_prompts"] == manifest(b)["train_prompts"]
        and manifest(a)["data"]["protocol"] == "mmlu-heldout"
    )
    # and tela eval reads eval.jsonl as it reads the protocol's held-out side
    e1, e2 = tmp_path / "e1", tmp_path / "e2"
    assert run_cli("eval", "--router", "oracle", "--data", out / "eval.jsonl", "-o", e1).exit_code == 0
    assert (
        run_cli(
            "eval", "--router", "oracle", "--data", sample_with_heldout, "--protocol", "mmlu-heldout", "-o", e2
        ).exit_code
        == 0
    )
    r1, r2 = (json.loads((e / "report.json").read_text()) for e in (e1, e2))
    assert r1["n"] == r2["n"] == len(evals) and r1["routers"][0]["apgr"] == r2["routers"][0]["apgr"]


def test_data_split_refuses_what_it_cannot_do_in_one_line(tmp_path: Path, sample_with_heldout: Path) -> None:
    out = tmp_path / "split"
    assert "--protocol is required" in one_error_line(run_cli("data", "split", "-o", out, sample_with_heldout))
    line = one_error_line(run_cli("data", "split", "--protocol", "mmlu-heldout", "-o", out, SAMPLE))
    assert str(SAMPLE) in line and "held-out" in line, line
    assert not out.exists()
    assert run_cli("data", "split", "--protocol", "mmlu-heldout", "-o", out, sample_with_heldout).exit_code == 0
    before = (out / "train.jsonl").read_bytes()
    assert "--force" in one_error_line(
        run_cli("data", "split", "--protocol", "mmlu-heldout", "-o", out, sample_with_heldout)
    )
    assert (out / "train.jsonl").read_bytes() == before


@needs_public_data("routellm-mmlu")
def test_run_protocol_on_routellm_mmlu_trains_on_the_42_training_subjects(tmp_path: Path) -> None:
    assert MMLU is not None
    out = tmp_path / "r"
    r = run_cli("run", "--family", FAMILY, "--data", MMLU, "--protocol", "mmlu-heldout", "-o", out)
    assert r.exit_code == 0, r.output
    m = manifest(out)
    assert m["data"]["sources"][0]["records"] == m["train_records"] == 10903  # 14,037 read; 3,056 held out, 78 repeats
    assert m["weak"] == MIXTRAL and m["strong"] == GPT4


# ------------------------------------------------------------------------------------------------
# what a label-trained router records, and tela eval on another pair
# ------------------------------------------------------------------------------------------------


def test_eval_notes_a_pair_the_router_was_not_trained_on(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert (
        run_cli("run", "--family", FAMILY, "--data", SAMPLE, "--set", "family.target=label", "-o", out).exit_code == 0
    )
    m = manifest(out)
    assert (m["weak"], m["strong"]) == (MIXTRAL, GPT4) and Router.load(out).models == [MIXTRAL, GPT4]
    same = run_cli("eval", "--router", out, "--data", HELDOUT, "-o", tmp_path / "same")
    assert same.exit_code == 0 and "note:" not in same.stderr, same.output
    other = renamed(HELDOUT, tmp_path / "o.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"})
    r = run_cli("eval", "--router", out, "--data", other, "-o", tmp_path / "other")
    assert r.exit_code == 0, r.output  # a warning, not a refusal: the metrics replay this data's outcomes
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and f"trained on {MIXTRAL} / {GPT4}" in notes[0] and "small-x (weak)" in notes[0], r.stderr
    report = json.loads((tmp_path / "other" / "report.json").read_text())
    assert report["trained_pairs"] == [[MIXTRAL, GPT4]] and report["pair_note"] == notes[0]


# ------------------------------------------------------------------------------------------------
# families that hold nothing out; tela plugins show family
# ------------------------------------------------------------------------------------------------


def test_a_self_training_family_uses_every_record_and_refuses_an_eval_fraction(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert run_cli("run", "--family", FAMILY, "--data", SAMPLE, "-o", out).exit_code == 0
    m = manifest(out)
    assert m["train_records"] == 400 and m["data"]["eval"] == 0 and m["data"]["eval_fraction"] == 0.0
    line = one_error_line(
        run_cli("run", "--family", FAMILY, "--data", SAMPLE, "--eval-fraction", "0.2", "-o", tmp_path / "x")
    )
    assert "--eval-fraction" in line and FAMILY in line, line
    assert (
        run_cli("run", "--family", FAMILY, "--data", SAMPLE, "--eval-fraction", "0", "-o", tmp_path / "y").exit_code
        == 0
    )


def test_plugins_show_takes_family_and_its_former_name_scorer() -> None:
    fam = run_cli("plugins", "show", "family", "embedding-knn", "--json")
    sco = run_cli("plugins", "show", "scorer", "embedding-knn", "--json")
    assert fam.exit_code == sco.exit_code == 0 and json.loads(fam.stdout) == json.loads(sco.stdout)
    assert json.loads(fam.stdout)["kind"] == "family" and "'scorer' is called 'family'" in sco.stderr
    assert run_cli("plugins", "show", "family", "length").stdout.startswith("family length ")
    listed = json.loads(run_cli("plugins", "list", "--kind", "family", "--json").stdout)
    knn = next(p for p in listed if "embedding-knn" in p["components"].get("family", []))
    assert set(knn["components"]) == {"family"}
    assert knn["provides"] == {"scorer": knn["components"]["family"]}  # 0.1's name, until tela 0.3
    line = one_error_line(run_cli("plugins", "show", "family", "nope"))
    assert "nope" in line and "embedding-knn" in line


# ------------------------------------------------------------------------------------------------
# a backend-trained family (score-token's path): weights on the training rows only
# ------------------------------------------------------------------------------------------------


class RowsBackend(Backend):
    """Writes a tiny (untrained) score-token router so the run completes: what is under test is the
    rows tela hands a backend, and the manifest tela writes after."""

    name = "test-mix-rows"
    description = "writes a tiny router"

    def train(self, job: Any) -> Path:
        tiny = build_tiny_router(job.output_dir.parent / (job.output_dir.name + "-tiny"))
        for f in Path(tiny).iterdir():
            if f.is_file() and f.name not in ("tela.json", "policy.json"):
                shutil.copy2(f, job.output_dir / f.name)
        return job.output_dir


class RowsPlugin:
    @hookimpl
    def tela_register_backends(self, register: Any) -> None:
        register(RowsBackend)


def test_a_backend_run_weighs_training_rows_and_never_copies_an_eval_row(tmp_path: Path, tiny_model: Path) -> None:
    other = renamed(HELDOUT, tmp_path / "o.jsonl", {MIXTRAL: "small-x", GPT4: "big-y"})
    out = tmp_path / "r"
    with registered_plugin(RowsPlugin(), "mix-rows"):
        r = run_cli(
            "run",
            "--data",
            SAMPLE,
            "--data",
            other,
            "--weight",
            "1",
            "--weight",
            "2",
            "--backend",
            "test-mix-rows",
            "--model",
            tiny_model,
            "-o",
            out,
        )
    assert r.exit_code == 0, r.output
    m = manifest(out)
    train, evals = lines(out / ".tela" / "train.jsonl"), lines(out / ".tela" / "eval.jsonl")
    a, b2 = (s["train"] for s in m["data"]["sources"])
    assert len(evals) == m["data"]["eval"] == 70 and len(train) == a + b2 == m["data"]["train"]
    assert a + b2 // 2 == 630 and b2 % 2 == 0  # 700 records, 10% held out, the second source's rows twice
    assert not {e["id"] for e in evals} & {t["id"] for t in train}
    assert m["trained_pairs"] == [[MIXTRAL, GPT4], ["small-x", "big-y"]]
    assert (m["weak"], m["strong"]) == ("weak", "strong") and Router.load(out).models == ["weak", "strong"]
