"""The ``hf`` source and its presets (``routellm-judge``, ``arena``, ``routerbench``) on small fixtures
in each dataset's real schema, with the label mapping asserted row by row.

Stand-in: the Hugging Face hub cannot be reached here, so "offline mode with a populated cache" is
built the way an online ``load_dataset("routellm/gpt4_dataset")`` leaves it: the parquet builder
prepares the arrow files under ``HF_DATASETS_CACHE/routellm___gpt4_dataset/default/...`` (the test
writes them from fixture files), and the load runs with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from tela_core.infra.errors import InputError, TelaError
from tela_core.plugins.discovery import get_registry
from tela_core.testkit.helpers import TelaCli, one_error_line

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own Hugging Face datasets cache, and the hub is off whatever the
    environment said when ``datasets`` was first imported (both read these at call time)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def source(name: str, **options: Any) -> Any:
    return get_registry().create("source", name, options)


# ------------------------------------------------------------------------------------------------
# routellm/gpt4_dataset: prompt, source, gpt4_response, mixtral_response, mixtral_score
# ------------------------------------------------------------------------------------------------

JUDGE = {
    "prompt": [
        "What is 2 + 2?",
        "Prove the twin prime conjecture.",
        "Write a haiku about rain.",
        "Summarise this contract clause.",
        "Translate 'cat' into French.",
    ],
    "source": ["[lmsys-chat-1m]", "[sharegpt]", "[ultrachat]", "[flan_v2_niv2]", "[evol_instruct]"],
    "gpt4_response": ["4", "This is open.", "Rain taps...", "The clause says...", "chat"],
    "mixtral_response": ["4", "Proof: ...", "Drops fall...", "It means...", "chat"],
    "mixtral_score": [5, 1, 4, 2, 3],
}


def write_judge(tmp_path: Path, rows: dict[str, list[Any]] = JUDGE) -> Path:
    f = tmp_path / "gpt4_train.parquet"
    pq.write_table(pa.table(rows), f)
    return f


def test_judge_label_is_mixtral_score_row_by_row(tmp_path: Path) -> None:
    recs = list(source("routellm-judge").read(write_judge(tmp_path)))
    assert [r.label for r in recs] == JUDGE["mixtral_score"]
    assert [r.prompt for r in recs] == JUDGE["prompt"]
    assert [r.group for r in recs] == ["lmsys-chat-1m", "sharegpt", "ultrachat", "flan_v2_niv2", "evol_instruct"]
    for r, k in zip(recs, JUDGE["mixtral_score"]):  # exactly the seed's training example
        assert [m["role"] for m in r.messages] == ["system", "user", "assistant"]
        assert r.messages[1]["content"] == f"[Question]\n{r.prompt}\n\nPrediction:\n"
        assert r.messages[2]["content"] == f"[[{k}]]"


def test_judge_is_detected_and_checked_from_the_cli(tmp_path: Path, tela_cli: TelaCli) -> None:
    result = tela_cli("data", "check", write_judge(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "routellm-judge"
    assert summary["labels"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}


def test_judge_bad_score_names_dataset_split_and_row(tmp_path: Path, tela_cli: TelaCli) -> None:
    rows = {**JUDGE, "mixtral_score": [5, 1, 7, 2, 3]}
    f = write_judge(tmp_path, rows)
    with pytest.raises(InputError) as e:
        list(source("routellm-judge").read(f))
    assert str(e.value) == f"{f} (split train): row 2: column 'mixtral_score': expected a score 1..5, got 7"
    line = one_error_line(tela_cli("data", "check", f, "--source", "routellm-judge"))
    assert "(split train): row 2:" in line


def test_judge_missing_column_lists_the_columns(tmp_path: Path) -> None:
    rows = {k: v for k, v in JUDGE.items() if k != "mixtral_score"}
    f = write_judge(tmp_path, rows)
    with pytest.raises(InputError, match=r"no column 'mixtral_score' \(score_column\); columns: prompt, source"):
        list(source("routellm-judge").read(f))


def populate_hub_cache(cache: Path, tmp_path: Path, hub_id: str, splits: dict[str, Path]) -> None:
    """What an online ``load_dataset(hub_id)`` leaves in the datasets cache (see module doc)."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = hub_id.split("/")
    builder = Parquet(
        cache_dir=str(tmp_path / "build"),
        dataset_name=name,
        config_name="default",
        hash="0" * 16,
        data_files=DataFilesDict.from_patterns({s: [str(p)] for s, p in splits.items()}),
    )
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir).parents[1]  # .../<name>/<config id>/
    target = cache / f"{namespace}___{name}" / "default"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(prepared), str(target))


def test_judge_hub_id_offline_reads_the_populated_cache(tmp_path: Path, _hf_cache: Path, tela_cli: TelaCli) -> None:
    train = write_judge(tmp_path)
    val = tmp_path / "val.parquet"
    pq.write_table(pa.table({k: v[:2] for k, v in JUDGE.items()}), val)
    populate_hub_cache(_hf_cache, tmp_path, "routellm/gpt4_dataset", {"train": train, "validation": val})
    recs = list(source("routellm-judge").read(Path("routellm/gpt4_dataset")))
    assert [r.label for r in recs] == JUDGE["mixtral_score"]
    recs = list(source("routellm-judge", split="validation").read(Path("routellm/gpt4_dataset")))
    assert [r.label for r in recs] == [5, 1]
    result = tela_cli("data", "check", "routellm/gpt4_dataset", "--source", "routellm-judge", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == 5


def test_hub_id_not_in_the_cache_offline_is_one_line(tela_cli: TelaCli) -> None:
    line = one_error_line(tela_cli("data", "check", "routellm/gpt4_dataset", "--source", "routellm-judge"))
    assert "routellm/gpt4_dataset: cannot load from the Hugging Face hub: offline (HF_HUB_OFFLINE=1)" in line
    assert "--data" in line


def test_tela_run_trains_on_the_judge_hub_id(tmp_path: Path, _hf_cache: Path, tela_cli: TelaCli) -> None:
    """The issue's command, `tela run --source routellm-judge --data routellm/gpt4_dataset`, with a
    family that trains in seconds (the label target: the judge's score decides)."""
    populate_hub_cache(_hf_cache, tmp_path, "routellm/gpt4_dataset", {"train": write_judge(tmp_path)})
    out = tmp_path / "router"
    result = tela_cli(
        "run",
        "--source",
        "routellm-judge",
        "--data",
        "routellm/gpt4_dataset",
        "--family",
        "length",
        "--set",
        "family.target=label",
        "--eval-fraction",
        "0",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["scorer"] == "length"
    assert "routellm/gpt4_dataset" in json.dumps(manifest)


# ------------------------------------------------------------------------------------------------
# hf: parquet / JSON / CSV / save_to_disk with a column mapping
# ------------------------------------------------------------------------------------------------

GENERIC = {
    "question": ["Capital of France?", "Integrate x^2.", "Name a prime."],
    "judge": [5, 2, 4],
    "big_ok": [True, True, False],
    "small_ok": [True, False, False],
    "big_usd": [0.01, 0.02, 0.015],
    "small_usd": [0.001, 0.002, 0.0015],
    "topic": ["geo", "math", "math"],
}
MAPPING = dict(
    prompt_column="question",
    score_column="judge",
    group_column="topic",
    outcome_columns={"big": "big_ok", "small": "small_ok"},
    cost_columns="big=big_usd,small=small_usd",
)


def write_generic(tmp_path: Path, fmt: str) -> Path:
    rows = [dict(zip(GENERIC, vals)) for vals in zip(*GENERIC.values())]
    f = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(GENERIC), f)
    elif fmt == "jsonl":
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import csv

        with f.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(GENERIC))
            w.writeheader()
            w.writerows(rows)
    return f


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_hf_reads_parquet_json_csv_through_the_mapping(tmp_path: Path, fmt: str) -> None:
    recs = list(source("hf", **MAPPING).read(write_generic(tmp_path, fmt)))
    assert [r.prompt for r in recs] == GENERIC["question"]
    assert [r.label for r in recs] == [5, 2, 4]
    assert [r.group for r in recs] == ["geo", "math", "math"]
    assert [r.outcomes for r in recs] == [
        {"big": 1.0, "small": 1.0},
        {"big": 1.0, "small": 0.0},
        {"big": 0.0, "small": 0.0},
    ]
    assert [r.costs["small"] for r in recs] == pytest.approx([0.001, 0.002, 0.0015])
    assert [r.id for r in recs] == ["train/0", "train/1", "train/2"]


def test_hf_label_from_outcomes_uses_the_seed_mapping(tmp_path: Path) -> None:
    opts = {**MAPPING, "score_column": None, "weak_model": "small", "strong_model": "big"}
    recs = list(source("hf", **opts).read(write_generic(tmp_path, "parquet")))
    # small right -> 5; small wrong, big right -> 1; both wrong -> 3
    assert [r.label for r in recs] == [5, 1, 3]


def test_hf_messages_column(tmp_path: Path) -> None:
    f = tmp_path / "chats.jsonl"
    chats = [
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "What is pi?"},
        ],
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "[Question]\nWhy?\n\nPrediction:\n"},
            {"role": "assistant", "content": "[[2]]"},
        ],
    ]
    f.write_text("".join(json.dumps({"messages": m}) + "\n" for m in chats))
    recs = list(source("hf", messages_column="messages", prompt_column=None).read(f))
    assert [r.prompt for r in recs] == ["What is pi?", "Why?"]
    assert [r.label for r in recs] == [None, 2]
    assert recs[1].messages == chats[1]  # a seed-format chat is kept as it is


def test_hf_save_to_disk_dataset_and_dict(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict({"prompt": ["a?", "b?"], "label": ["[[1]]", "[[5]]"]})
    one = tmp_path / "one"
    ds.save_to_disk(str(one))
    assert [r.label for r in source("hf", label_column="label").read(one)] == [1, 5]
    both = tmp_path / "both"
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(both))
    assert [r.label for r in source("hf", label_column="label", split="test").read(both)] == [5]
    with pytest.raises(TelaError, match="no split 'validation'; splits: train, test"):
        list(source("hf", label_column="label", split="validation").read(both))


def test_hf_bad_rows_name_dataset_split_and_row(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok?", "ok": 1}\n{"prompt": "", "ok": 1}\n')
    with pytest.raises(
        InputError, match=r"bad.jsonl \(split train\): row 1: column 'prompt': expected a non-empty question"
    ):
        list(source("hf", outcome_columns=["ok"]).read(f))
    f.write_text('{"prompt": "ok?", "ok": 1}\n{"prompt": "b?", "ok": 3}\n')
    with pytest.raises(InputError, match=r"row 1: column 'ok' \(ok\): expected an outcome in \[0, 1\]"):
        list(source("hf", outcome_columns=["ok"]).read(f))
    with pytest.raises(InputError, match="no column 'question'"):
        list(source("hf", prompt_column="question").read(f))
    with pytest.raises(InputError, match="file not found"):
        list(source("hf").read(tmp_path / "missing.parquet"))


# ------------------------------------------------------------------------------------------------
# arena: lmsys-arena-human-preference-55k
# ------------------------------------------------------------------------------------------------

ARENA_HEADER = "id,model_a,model_b,prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie\n"


def arena_csv(tmp_path: Path, battles: list[tuple[str, str, str, str]]) -> Path:
    """battles: (model_a, model_b, winner in a/b/tie, first turn)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    for i, (a, b, win, q) in enumerate(battles):
        w.writerow(
            [
                1000 + i,
                a,
                b,
                json.dumps([q, "and a follow-up"]),
                json.dumps(["x"]),
                json.dumps(["y"]),
                int(win == "a"),
                int(win == "b"),
                int(win == "tie"),
            ]
        )
    f = tmp_path / "train.csv"
    f.write_text(ARENA_HEADER + buf.getvalue())
    return f


def test_arena_model_pair_labels_row_by_row(tmp_path: Path) -> None:
    battles = [
        ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "a", "Hard proof?"),  # strong wins -> 1
        ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview", "a", "Easy sum?"),  # weak wins -> 5
        ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "tie", "Hello?"),  # tie -> 5
        ("gpt-4-1106-preview", "llama-2-70b-chat", "a", "Not this pair"),  # skipped
        ("mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview", "b", "Poem?"),  # strong wins -> 1
    ]
    src = source("arena", weak_model="mixtral-8x7b-instruct-v0.1", strong_model="gpt-4-1106-preview")
    recs = list(src.read(arena_csv(tmp_path, battles)))
    assert [r.prompt for r in recs] == ["Hard proof?", "Easy sum?", "Hello?", "Poem?"]
    assert [r.label for r in recs] == [1, 5, 5, 1]
    assert [r.outcomes for r in recs] == [
        {"gpt-4-1106-preview": 1.0, "mixtral-8x7b-instruct-v0.1": 0.0},
        {"gpt-4-1106-preview": 0.0, "mixtral-8x7b-instruct-v0.1": 1.0},
        {"gpt-4-1106-preview": 0.5, "mixtral-8x7b-instruct-v0.1": 0.5},
        {"gpt-4-1106-preview": 1.0, "mixtral-8x7b-instruct-v0.1": 0.0},
    ]
    assert [r.id for r in recs] == ["1000", "1001", "1002", "1004"]
    assert src.stats["other_battles_skipped"] == 1


def tiered_battles() -> list[tuple[str, str, str, str]]:
    """Six models in three clear strength bands; every pair meets, the stronger usually wins."""
    strength = {"s1": 3, "s2": 3, "m1": 2, "m2": 2, "w1": 1, "w2": 1}
    out = []
    names = list(strength)
    k = 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for rep in range(6):
                k += 1
                if strength[a] == strength[b]:
                    win = ("a", "b", "tie")[rep % 3]
                else:
                    better = "a" if strength[a] > strength[b] else "b"
                    win = better if rep < 5 else ("b" if better == "a" else "a")
                out.append((a, b, win, f"q{k}"))
    return out


def test_elo_tiers_group_models_and_label_strong_vs_weak(tmp_path: Path) -> None:
    from tela_plugins.hf.elo import elo_ratings, elo_tiers

    battles = tiered_battles()
    score = [{"a": 1.0, "b": 0.0, "tie": 0.5}[w] for _, _, w, _ in battles]
    ratings = elo_ratings([b[0] for b in battles], [b[1] for b in battles], score)
    assert set(list(ratings)[:2]) == {"s1", "s2"} and set(list(ratings)[-2:]) == {"w1", "w2"}
    assert elo_tiers(ratings, 3) == {"s1": 0, "s2": 0, "m1": 1, "m2": 1, "w1": 2, "w2": 2}
    src = source("arena", num_tiers=3, strong_tier=0, weak_tier=2)
    recs = list(src.read(arena_csv(tmp_path, battles)))
    assert src.stats["tier_0_strong"] == ["s1", "s2"] and src.stats["tier_2_weak"] == ["w1", "w2"]
    expected = []
    for a, b, win, q in battles:
        sides = {a[0], b[0]}
        if sides != {"s", "w"}:
            continue
        strong_won = (win == "a") == (a[0] == "s") and win != "tie"
        expected.append((q, 1 if strong_won else 5, 0.5 if win == "tie" else float(strong_won)))
    assert [(r.prompt, r.label, r.outcomes["tier-0"]) for r in recs] == expected
    assert all(set(r.outcomes) == {"tier-0", "tier-2"} for r in recs)


def test_elo_tiers_minimise_within_tier_variance() -> None:
    """The dynamic programme against brute force over every split of 7 ratings into 3 tiers."""
    import itertools

    import numpy as np

    from tela_plugins.hf.elo import elo_tiers

    ratings = dict(zip("abcdefg", [1300.0, 1290.0, 1200.0, 1180.0, 1175.0, 1000.0, 900.0]))
    got = elo_tiers(ratings, 3)
    xs = list(ratings.values())

    def cost(cuts: tuple[int, int]) -> float:
        i, j = cuts
        return float(np.var(xs[:i]) + np.var(xs[i:j]) + np.var(xs[j:]))

    best = min(itertools.combinations(range(1, 7), 2), key=cost)
    want = {m: (0 if k < best[0] else 1 if k < best[1] else 2) for k, m in enumerate(ratings)}
    assert got == want


def test_arena_malformed_rows_name_dataset_split_and_row(tmp_path: Path, tela_cli: TelaCli) -> None:
    f = arena_csv(tmp_path, [("m1", "m2", "a", "q"), ("m1", "m2", "b", "q")])
    f.write_text(f.read_text().replace(",0,1,0\n", ",1,1,0\n"))  # second battle: two winners
    with pytest.raises(InputError) as e:
        list(source("arena", weak_model="m1", strong_model="m2").read(f))
    assert str(e.value).startswith(
        f"{f} (split train): row 1: exactly one of winner_model_a, winner_model_b, winner_tie"
    )
    f = arena_csv(tmp_path, [("m1", "m2", "a", "q")])
    f.write_text(f.read_text().replace('""q"", ""and', '""q"" ""and'))  # no comma between turns: bad JSON
    line = one_error_line(
        tela_cli("data", "check", f, "--source", "arena", "--weak-model", "m1", "--strong-model", "m2")
    )
    assert "(split train): row 0: prompt is not a valid JSON list of turns" in line


def test_matrix_factorization_trains_on_arena_battles(tmp_path: Path, tela_cli: TelaCli) -> None:
    """RouteLLM's MF family learns from the strong-vs-weak outcomes the arena source builds."""
    out = tmp_path / "mf"
    result = tela_cli(
        "run",
        "--source",
        "arena",
        "--data",
        arena_csv(tmp_path, tiered_battles()),
        "--set",
        "source.num_tiers=3",
        "--family",
        "matrix-factorization",
        "--set",
        "family.epochs=20",
        "--eval-fraction",
        "0",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    models = json.loads((out / "models.json").read_text())["models"]
    assert sorted(models) == ["tier-0", "tier-2"]


# ------------------------------------------------------------------------------------------------
# routerbench: routerbench_0shot schema
# ------------------------------------------------------------------------------------------------

RB_MODELS = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat", "WizardLM/WizardLM-13B-V1.2"]


def routerbench_frame(n: int = 6) -> Any:
    import pandas as pd

    rows = []
    for i in range(n):
        row = {
            "sample_id": f"mmlu-astronomy.val.{i}",
            "prompt": str([f"Question {i}: which planet is largest?"]),
            "eval_name": "mmlu-astronomy" if i % 2 else "gsm8k",
        }
        quality = {RB_MODELS[0]: 1.0, RB_MODELS[1]: float(i % 2), RB_MODELS[2]: float(i % 3 == 0)}
        for m in RB_MODELS:
            row[m] = quality[m]
        for m in RB_MODELS:
            row[f"{m}|model_response"] = str(["Jupiter"])
        for k, m in enumerate(RB_MODELS):
            row[f"{m}|total_cost"] = 0.01 / (k + 1) * (1 + i / 10)
        row["oracle_model_to_route_to"] = RB_MODELS[1] if i % 2 else RB_MODELS[0]
        rows.append(row)
    return pd.DataFrame(rows)


def test_routerbench_outcomes_costs_and_labels_row_by_row(tmp_path: Path) -> None:
    f = tmp_path / "routerbench_0shot.parquet"
    routerbench_frame().to_parquet(f)
    recs = list(source("routerbench").read(f))
    assert [r.prompt for r in recs] == [f"Question {i}: which planet is largest?" for i in range(6)]
    assert [r.group for r in recs] == ["gsm8k", "mmlu-astronomy"] * 3
    assert [r.id for r in recs] == [f"mmlu-astronomy.val.{i}" for i in range(6)]
    assert all(set(r.outcomes) == set(RB_MODELS) == set(r.costs) for r in recs)
    assert [r.outcomes["mistralai/mixtral-8x7b-chat"] for r in recs] == [0, 1, 0, 1, 0, 1]
    assert recs[5].costs["gpt-4-1106-preview"] == pytest.approx(0.015)
    # weak mixtral right -> 5; wrong while gpt-4 right -> 1
    assert [r.label for r in recs] == [1, 5, 1, 5, 1, 5]


def test_routerbench_pickle_needs_the_users_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tela_cli: TelaCli
) -> None:
    f = tmp_path / "routerbench_0shot.pkl"
    routerbench_frame().to_pickle(f)
    line = one_error_line(tela_cli("data", "check", f))  # detected, and refused with the way out
    assert "a pickle can run code" in line and "TELA_ALLOW_PICKLE=1" in line
    with pytest.raises(InputError, match="pickle"):
        list(source("routerbench").read(f))
    assert len(list(source("routerbench", allow_pickle=True).read(f))) == 6
    monkeypatch.setenv("TELA_ALLOW_PICKLE", "1")
    out = tmp_path / "rb.jsonl"
    result = tela_cli("data", "convert", f, out, "--source", "routerbench")
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("TELA_ALLOW_PICKLE")
    assert json.loads(out.read_text().splitlines()[0])["costs"]["gpt-4-1106-preview"] == pytest.approx(0.01)


def test_routerbench_pickle_is_never_unpickled_without_the_flag(tmp_path: Path, tela_cli: TelaCli) -> None:
    """A pickle whose loading would run code: refused before any byte is unpickled."""
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self) -> Any:
            return (Path.touch, (marker,))

    f = tmp_path / "evil.pkl"
    f.write_bytes(pickle.dumps(Boom()))
    result = tela_cli("data", "check", f, "--source", "routerbench")
    assert result.exit_code == 2 and not marker.exists()


def test_routerbench_bad_row_names_dataset_split_and_row(tmp_path: Path) -> None:
    df = routerbench_frame()
    df.loc[3, "gpt-4-1106-preview|total_cost"] = -1.0
    f = tmp_path / "rb.parquet"
    df.to_parquet(f)
    with pytest.raises(
        InputError,
        match=r"rb.parquet \(split train\): row 3: column 'gpt-4-1106-preview\|total_cost': expected a cost >= 0",
    ):
        list(source("routerbench").read(f))


def test_eval_all_models_on_routerbench(tmp_path: Path, tela_cli: TelaCli) -> None:
    """`tela eval --all-models` judges an N-model router on RouterBench outcomes and costs."""
    f = tmp_path / "routerbench_0shot.parquet"
    routerbench_frame(12).to_parquet(f)
    router = tmp_path / "knn"
    trained = tela_cli(
        "run",
        "--source",
        "routerbench",
        "--data",
        f,
        "--family",
        "embedding-knn",
        "--set",
        "family.k=3",
        "--eval-fraction",
        "0",
        "--output",
        router,
    )
    assert trained.exit_code == 0, trained.output
    result = tela_cli(
        "eval",
        "--router",
        router,
        "--all-models",
        "--data",
        f,
        "--source",
        "routerbench",
        "-o",
        tmp_path / "ev",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"] == "routerbench" and sorted(report["models"]) == sorted(RB_MODELS)
