"""Outcome sources: RouteLLM CSVs, LLMRouter JSON, RouterArena folders; labels, costs, detection.

Small synthetic files pin the parsing and every error's file and line; the real data in
the public datasets (tela_core.testkit.helpers.public_data; skipped where absent) pins the counts its README states.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tela_core import InputError
from tela_core.data.detect import detect_source
from tela_core.data.prompts import SYSTEM_PROMPT, user_content
from tela_core.plugins.discovery import get_registry
from tela_core.testkit.helpers import TelaCli, needs_public_data, public_data

MMLU = public_data("routellm-mmlu") or Path("routellm-mmlu")
NIM9 = public_data("llmrouter", "llmrouter-nim9") or Path("llmrouter")
ARENA = public_data("routerarena", "routerarena-sub10") or Path("routerarena")
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
needs_data = needs_public_data("routellm-mmlu")


def source(name: str, **options: Any) -> Any:
    return get_registry().create("source", name, options)


def read(name: str, path: Path, **options: Any) -> list[Any]:
    return list(source(name, **options).records(path))


# ------------------------------------------------------------------------------------------------
# routellm-csv
# ------------------------------------------------------------------------------------------------

CSV = (
    f"prompt,{WEAK},{STRONG},gpt4_response\n"
    '"Which is prime?\nA. 4\nB. 5\nAnswer:",True,True,"B, because\n5 is prime"\n'  # lines 2-6
    "What is 1+1?,False,True,two\n"  # line 7
    "Hard one,False,False,idk\n"  # line 8
    "Tricky,True,False,hmm\n"  # line 9
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_routellm_csv_outcomes_labels_group_and_ignored_text_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "mmlu_anatomy.csv", CSV)
    recs = read("routellm-csv", f)
    assert [r.prompt for r in recs] == ["Which is prime?\nA. 4\nB. 5\nAnswer:", "What is 1+1?", "Hard one", "Tricky"]
    assert recs[0].outcomes == {WEAK: 1.0, STRONG: 1.0}  # the response-text column is not a model
    assert [r.label for r in recs] == [5, 1, 3, 5]
    assert {r.group for r in recs} == {"anatomy"}
    assert [r.id for r in recs] == ["anatomy/1", "anatomy/2", "anatomy/3", "anatomy/4"]
    assert recs[1].messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_content("What is 1+1?")},
        {"role": "assistant", "content": "[[1]]"},
    ]
    assert recs[1].messages[1]["content"] == "[Question]\nWhat is 1+1?\n\nPrediction:\n"


def test_label_mapping_is_configurable(tmp_path: Path) -> None:
    f = write(tmp_path / "mmlu_anatomy.csv", CSV)
    recs = read("routellm-csv", f, label_weak_right=4, label_only_strong_right=2, label_both_wrong=1)
    assert [r.label for r in recs] == [4, 2, 1, 4]
    # swapping the pair changes which model's answer the label judges
    recs = read("routellm-csv", f, weak_model=STRONG, strong_model=WEAK)
    assert [r.label for r in recs] == [5, 5, 3, 1]


def test_folder_groups_by_file_and_drops_contaminated(tmp_path: Path) -> None:
    write(tmp_path / "mmlu_b_subject.csv", CSV)
    write(tmp_path / "mmlu_a_subject.csv", f"prompt,{WEAK},{STRONG}\nX,True,True\nY,False,True\n")
    write(tmp_path / "contaminated_prompts.jsonl", json.dumps({"train_prompt": "y", "eval_prompt": "Y"}) + "\n")
    src = source("routellm-csv")
    recs = list(src.read(tmp_path))
    assert [(r.group, r.prompt) for r in recs][:2] == [
        ("a_subject", "X"),
        ("b_subject", "Which is prime?\nA. 4\nB. 5\nAnswer:"),
    ]
    assert len(recs) == 5 and src.stats["contaminated_dropped"] == 1
    assert len(read("routellm-csv", tmp_path, exclude_contaminated=False)) == 6


BAD_CSV = [
    ("wrong-field-count", CSV + "Short row,True\n", 10, "expected 4 fields"),
    (
        "bad-boolean",
        CSV.replace("Hard one,False,False", "Hard one,False,maybe"),
        8,
        "expected True or False, got 'maybe'",
    ),
    ("empty-prompt", CSV.replace("Hard one,", ","), 8, 'empty "prompt"'),
    ("no-prompt-column", "question,a,b\nx,True,False\n", 1, 'missing column "prompt"'),
    ("no-model-column", "prompt,text\nx,hello\n", 2, "no model columns"),
    ("non-utf8", CSV.encode() + b"caf\xe9,True,True,x\n", 10, "not valid UTF-8"),
    (
        "weak-model-missing",
        "prompt,a,b\nx,True,False\n",
        None,
        "weak model 'mistralai/Mixtral-8x7B-Instruct-v0.1' is not in the data",
    ),
]


@pytest.mark.parametrize("text,line,message", [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV])
def test_bad_csv_names_file_and_row_line(
    tmp_path: Path, text: str | bytes, line: int | None, message: str, tela_cli: TelaCli
) -> None:
    f = write(tmp_path / "mmlu_x.csv", text)
    out = tmp_path / "out.jsonl"
    result = tela_cli("data", "convert", f, out)
    assert result.exit_code == 2, result.output
    where = f"{f}:{line}: " if line is not None else f"{f}: "
    assert where in result.output and message in result.output
    assert not out.exists()


@needs_data
def test_real_routellm_folder_matches_known_counts() -> None:
    full = read("routellm-csv", MMLU, exclude_contaminated=False)
    assert len(full) == 14042
    assert len({r.group for r in full}) == 57
    # default: RouteLLM's 5 contaminated prompts dropped; the README's counts are of these 14,037
    src = source("routellm-csv")
    recs = list(src.read(MMLU))
    assert len(recs) == 14037 and src.stats["contaminated_dropped"] == 5
    weak = sum(r.outcomes[WEAK] for r in recs) / len(recs)
    strong = sum(r.outcomes[STRONG] for r in recs) / len(recs)
    assert round(weak, 3) == 0.681 and round(strong, 3) == 0.806
    both = sum(1 for r in recs if r.outcomes[WEAK] and r.outcomes[STRONG])
    only_strong = sum(1 for r in recs if not r.outcomes[WEAK] and r.outcomes[STRONG])
    only_weak = sum(1 for r in recs if r.outcomes[WEAK] and not r.outcomes[STRONG])
    assert (both, only_strong, only_weak) == (8816, 2496, 742)
    labels = [r.label for r in recs]
    assert (labels.count(5), labels.count(1), labels.count(3)) == (8816 + 742, 2496, 1983)
    from tela_core.data.sampling import MMLU_HELDOUT_SUBJECTS

    assert sum(1 for r in recs if r.group in MMLU_HELDOUT_SUBJECTS) == 3056  # docs/metrics.md


# ------------------------------------------------------------------------------------------------
# llmrouter-json
# ------------------------------------------------------------------------------------------------

PRICES = {
    "cheap": {"input_price": 0.1, "output_price": 0.2, "size": "7B"},
    "big": {"input_price": 0.9, "output_price": 1.8},
}


def llm_data(items: list[Any]) -> str:
    return json.dumps(items, indent=2)


def test_llmrouter_outcomes_and_estimated_costs(tmp_path: Path) -> None:
    items = [
        {"question": "x" * 40, "scores": {"cheap": 1.0, "big": 1.0, "unpriced": 0.0}},
        {"question": "Why?", "scores": {"cheap": 0.25, "big": 0.75, "unpriced": 1}},
    ]
    f = write(tmp_path / "train.json", llm_data(items))
    write(tmp_path / "default_llm.json", json.dumps(PRICES))
    recs = read("llmrouter-json", f, weak_model="cheap", strong_model="big")
    assert [r.label for r in recs] == [5, 1]
    assert recs[1].outcomes == {"cheap": 0.25, "big": 0.75, "unpriced": 1.0}
    # documented estimate: ceil(chars / 4) input tokens, 256 output tokens, $/M prices
    assert recs[0].costs == pytest.approx({"cheap": (10 * 0.1 + 256 * 0.2) / 1e6, "big": (10 * 0.9 + 256 * 1.8) / 1e6})
    assert recs[1].costs["cheap"] == pytest.approx((math.ceil(4 / 4) * 0.1 + 256 * 0.2) / 1e6)
    assert [r.id for r in recs] == ["train/0", "train/1"]
    # no price file: no costs
    (tmp_path / "default_llm.json").unlink()
    assert read("llmrouter-json", f, weak_model="cheap", strong_model="big")[0].costs is None


@pytest.mark.parametrize(
    "items,line,message",
    [
        (
            [{"question": "a", "scores": {"cheap": 1, "big": 0}}, {"question": "", "scores": {"cheap": 1, "big": 0}}],
            9,
            '"question"',
        ),
        (
            [{"question": "a", "scores": {"cheap": 1, "big": 0}}, {"question": "b", "scores": {"cheap": 2, "big": 0}}],
            9,
            "in [0, 1]",
        ),
        ([{"question": "a", "scores": {"cheap": 1, "big": 0}}, {"question": "b"}], 9, '"scores"'),
        (
            [{"question": "a", "scores": {"cheap": 1, "big": 0}}, {"question": "b", "scores": {"cheap": 1}}],
            9,
            "missing: ['big']",
        ),
        ([{"question": "a", "scores": {"cheap": 1, "big": 0}}, 3], 9, "expected an object"),
    ],
)
def test_llmrouter_bad_element_names_its_line(tmp_path: Path, items: list[Any], line: int, message: str) -> None:
    f = write(tmp_path / "d.json", llm_data(items))
    with pytest.raises(InputError) as e:
        read("llmrouter-json", f, weak_model="cheap", strong_model="big")
    assert str(e.value).startswith(f"{f}:{line}: ") and message in str(e.value)


def test_llmrouter_bad_json_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "d.json", '[\n {"question": "a", "scores": {"cheap": 1, "big": 0}},\n {"question": oops}\n]')
    with pytest.raises(InputError, match=r"d\.json:3: invalid JSON"):
        read("llmrouter-json", f, weak_model="cheap", strong_model="big")


@needs_public_data("llmrouter", "llmrouter-nim9")
def test_real_llmrouter_train_file() -> None:
    recs = read("llmrouter-json", NIM9 / "dcrouter_preprocessed_train.json")
    assert len(recs) == 5608
    assert len(recs[0].outcomes) == 9 and len(recs[0].costs) == 9
    assert read("llmrouter-json", NIM9 / "dcrouter_preprocessed_test.json")[-1].id.endswith("/499")


# ------------------------------------------------------------------------------------------------
# routerarena
# ------------------------------------------------------------------------------------------------


def arena_line(gid: str, score: float, cost: float | None, q: str = "Q?") -> str:
    ev: dict[str, Any] = {"score": score, "metric": "m"}
    if cost is not None:
        ev["inference_cost"] = cost
    return json.dumps(
        {
            "global_index": gid,
            "question": q + gid,
            "token_usage": {"input_tokens": 100, "output_tokens": 10},
            "evaluation_result": ev,
        }
    )


def make_arena(d: Path) -> Path:
    write(
        d / "cost.json",
        json.dumps({"weakm": {"input_token_price_per_million": 1, "output_token_price_per_million": 2}}),
    )
    write(
        d / "weakm.jsonl",
        "\n".join(
            [arena_line("GSM8K_1", 1.0, 0.5), arena_line("MMLU_x_2", 0.0, None), arena_line("AIME_3", -0.03, 0.1)]
        )
        + "\n",
    )
    write(
        d / "strongm.jsonl",
        "\n".join(
            [
                arena_line("AIME_3", 0.875, 0.2),
                arena_line("GSM8K_1", 1.0, 0.7),
                arena_line("MMLU_x_2", 1.0, 0.3),
                arena_line("ONLY_9", 1.0, 0.3),
            ]
        )
        + "\n",
    )
    return d


def test_routerarena_joins_on_global_index(tmp_path: Path) -> None:
    d = make_arena(tmp_path / "arena")
    src = source("routerarena", weak_model="weakm", strong_model="strongm")
    recs = list(src.read(d))
    # joined in the order of the first file by name (strongm.jsonl)
    assert [r.id for r in recs] == ["AIME_3", "GSM8K_1", "MMLU_x_2"]
    assert [r.group for r in recs] == ["AIME", "GSM8K", "MMLU_x"]
    assert recs[0].outcomes == {"strongm": 0.875, "weakm": 0.0}  # partial credit kept, negative clipped
    assert recs[1].costs == {"strongm": 0.7, "weakm": 0.5}
    assert recs[2].costs["weakm"] == pytest.approx((100 * 1 + 10 * 2) / 1e6)  # from token_usage + cost.json
    assert [r.label for r in recs] == [1, 5, 1]
    assert src.stats["skipped_answered_by_one_model"] == 1  # ONLY_9: one model, nothing to compare


def test_routerarena_bad_line(tmp_path: Path) -> None:
    d = make_arena(tmp_path / "arena")
    with (d / "strongm.jsonl").open("a") as fh:
        fh.write(json.dumps({"global_index": "Z_1", "question": "q", "evaluation_result": {"score": "high"}}) + "\n")
    with pytest.raises(InputError, match=r"strongm\.jsonl:5: .*numeric \"score\""):
        read("routerarena", d, weak_model="weakm", strong_model="strongm")


@needs_public_data("routerarena", "routerarena-sub10")
def test_real_routerarena() -> None:
    recs = read("routerarena", ARENA)
    assert len(recs) == 809
    gem = sum(r.outcomes["gemini-2.0-flash-001"] for r in recs) / len(recs)
    assert round(gem, 3) == 0.690
    assert all(set(r.costs) == {"claude-3-haiku-20240307", "gemini-2.0-flash-001"} for r in recs)


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------


def test_detect_source(tmp_path: Path) -> None:
    assert detect_source(write(tmp_path / "csvs" / "mmlu_a.csv", CSV)) == "routellm-csv"
    assert detect_source(tmp_path / "csvs") == "routellm-csv"
    j = write(tmp_path / "l" / "d.json", llm_data([{"question": "a", "scores": {"x": 1}}]))
    assert detect_source(j) == "llmrouter-json"
    assert detect_source(make_arena(tmp_path / "arena")) == "routerarena"
    assert detect_source(write(tmp_path / "seed.jsonl", "{}\n")) == "jsonl"
    with pytest.raises(InputError, match="cannot tell which source.*registered: .*routellm-csv"):
        detect_source(write(tmp_path / "x.txt", "hello"))


def test_options_are_validated() -> None:
    from tela_core import TelaError

    with pytest.raises(TelaError, match="label_weak_right"):
        source("routellm-csv", label_weak_right=7)


def test_detection_prefers_a_source_that_knows_the_schema(tmp_path: Path, register_plugin: Any) -> None:
    """routellm-csv claims any .csv at a low priority: a plugin's CSV source with its own schema
    wins detection without --source; two claims at the same top priority are an error."""
    from tela_core import Source, hookimpl
    from tela_core.data.detect import detect_source

    f = tmp_path / "widget.csv"
    f.write_text("question,widget_score\nWhat is 2+2?,5\n")

    class WidgetCsv(Source):
        name = "widget-csv"

        def sniff(self, path: Path) -> bool:
            return path.suffix == ".csv" and "widget_score" in path.read_text().splitlines()[0]

        def read(self, path: Path) -> Any:
            return iter(())

    class WidgetCsv2(WidgetCsv):
        name = "widget-csv-2"

    class One:
        @hookimpl
        def tela_register_sources(self, register):
            register(WidgetCsv)

    class Two:
        @hookimpl
        def tela_register_sources(self, register):
            register(WidgetCsv2)

    assert detect_source(f) == "routellm-csv"
    register_plugin(One(), "widget")
    assert detect_source(f) == "widget-csv"
    register_plugin(Two(), "widget2")
    with pytest.raises(InputError, match="several sources can read this .*widget-csv, widget-csv-2.*--source"):
        detect_source(f)
