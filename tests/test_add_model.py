"""``tela run --add-to``: a model added to a trained N-model router without training it again (issue 28).

Data: what LLMRouter recorded of four real models on 300 questions (``examples/many-models/``: each
answer's score and token estimate). The routers are trained on three of the models; the fourth
(``llama-3.1-8b-instruct``) is added from its outcomes alone.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tela_core.testkit.helpers import one_error_line

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "examples" / "many-models" / "recorded"
PRICES = {"gemma-2-9b-it": 0.1, "qwen2.5-7b-instruct": 0.2, "llama-3.1-nemotron-51b-instruct": 0.9}
NEW, NEW_PRICE = "llama-3.1-8b-instruct", 0.2
PROMPT = "What is the capital of Australia?"


def _recorded() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for m in [*PRICES, NEW]:
        with gzip.open(RECORDED / f"{m}.jsonl.gz", "rt", encoding="utf-8") as fh:
            out[m] = [json.loads(line) for line in fh if line.strip()]
    return out


def _cost(row: dict[str, Any], price: float) -> float:
    u = row["token_usage"]
    return (u["input_tokens"] + u["output_tokens"]) * price / 1e6


def _records(rows: dict[str, list[dict[str, Any]]], models: dict[str, float], part: slice) -> list[dict[str, Any]]:
    first = next(iter(rows.values()))
    out = []
    for i in range(len(first))[part]:
        out.append(
            {
                "id": first[i]["global_index"],
                "prompt": first[i]["question"],
                "messages": [  # as tela judge writes a record: the prompt and the judge's label
                    {"role": "user", "content": first[i]["question"]},
                    {"role": "assistant", "content": "[[5]]"},
                ],
                "outcomes": {m: rows[m][i]["evaluation_result"]["score"] for m in models},
                "costs": {m: _cost(rows[m][i], p) for m, p in models.items()},
            }
        )
    return out


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tela_cli: Any) -> dict[str, Any]:
    """Routers of three models (kNN by `tela run` on judged records, MF and linear heads by their
    families) and the new model's records, built once."""
    from tela_core.data.records import Record
    from tela_core.plugins.discovery import get_registry
    from tela_core.routing.add_model import FAMILY_KIND

    d = tmp_path_factory.mktemp("add-model")
    rows = _recorded()
    train = _records(rows, PRICES, slice(0, 200))
    new = [
        {k: v for k, v in r.items()}
        for r in _records(rows, {NEW: NEW_PRICE}, slice(100, 300))  # half on trained prompts, half new
    ]
    reg = get_registry()
    recs = [Record(prompt=r["prompt"], outcomes=r["outcomes"], costs=r["costs"], id=r["id"]) for r in train]
    routers = {}
    train_file = _write(d / "train.jsonl", train)
    # records of 3 models and no pair named: tela run trains an N-model router (budget policy)
    r = tela_cli("run", "--data", train_file, "--family", "embedding-knn", "--set", "family.k=20", "-o", d / "knn")
    assert r.exit_code == 0, r.output
    routers["embedding-knn"] = d / "knn"
    for fam, opts in (("matrix-factorization", {"epochs": 60}), ("embedding-linear", {})):
        scorer = reg.create(FAMILY_KIND, fam, opts)
        scorer.fit(recs, d / fam, {})
        routers[fam] = d / fam
    pair = reg.create(FAMILY_KIND, "embedding-knn", {"k": 20})
    pair.fit(recs, d / "pair", {"weak": "gemma-2-9b-it", "strong": "llama-3.1-nemotron-51b-instruct"})
    return {
        "dir": d,
        "routers": routers,
        "pair": d / "pair",
        "new": _write(d / "new.jsonl", new),
        "new_rows": new,
        "train": train_file,
    }


@pytest.mark.parametrize("family", ["embedding-knn", "matrix-factorization", "embedding-linear"])
def test_add_a_model_keeps_the_router_and_predicts_the_new_one(
    family: str, data: dict[str, Any], tmp_path: Path, tela_cli: Any
) -> None:
    """The new router lists 4 models and the new one's cost; the old models' predicted quality is
    unchanged; the new model's is learnt (its mean near its mean outcome, higher where it was right);
    the router it came from is not touched."""
    import numpy as np

    from tela_core.routing.router import Router

    src = data["routers"][family]
    before = _files(src)
    r = tela_cli("run", "--add-to", src, "--data", data["new"], "-o", tmp_path / "v2")
    assert r.exit_code == 0, r.output
    assert _files(src) == before
    manifest = json.loads((tmp_path / "v2" / "tela.json").read_text())
    assert manifest["models"] == [*PRICES, NEW]
    (step,) = manifest["added_models"]
    assert step["model"] == NEW and step["records"] == 200 and step["from_version"]
    policy = json.loads((tmp_path / "v2" / "policy.json").read_text())
    assert set(policy["models"]) == {*PRICES, NEW}
    if family == "embedding-knn":  # trained by tela run: a budget policy, its λ found again with the new model
        assert policy["name"] == "budget", policy
        assert "the 200 prompts the new model was added from" in policy["options"]["calibration_data"]
        assert "λ found again with" in r.output
        assert "on 200 prompts (the prompts" in r.output and "held-out prompts" not in r.output  # it fit on them
    else:
        assert policy["name"] == "cost-aware", policy
    assert policy["options"]["costs"][NEW] == pytest.approx(
        np.mean([row["costs"][NEW] for row in data["new_rows"]]), rel=1e-6
    )
    old, new = Router.load(src), Router.load(tmp_path / "v2")
    prompts = [row["prompt"] for row in data["new_rows"]] + [PROMPT]
    q_old, q_new = old.scores(prompts), new.scores(prompts)
    assert list(q_new.models or ()) == [*PRICES, NEW]
    np.testing.assert_allclose(q_new.quality[:, :3], q_old.quality, atol=1e-6)  # type: ignore[index]
    pred = q_new.quality[:-1, 3]  # type: ignore[index]
    truth = np.array([row["outcomes"][NEW] for row in data["new_rows"]])
    assert abs(pred.mean() - truth.mean()) < 0.1
    assert pred[truth >= 0.5].mean() > pred[truth < 0.5].mean()
    assert new.decide([PROMPT])[0].model in [*PRICES, NEW]


def test_add_to_a_versions_folder_extends_its_current_version(
    data: dict[str, Any], tmp_path: Path, tela_cli: Any
) -> None:
    from tela_core.routing import versions

    live = tmp_path / "live"
    versions.init(live)
    name = versions.add_version(live, data["routers"]["embedding-knn"])
    versions.set_current(live, name, "promote")
    r = tela_cli("run", "--add-to", live, "--data", data["new"], "-o", tmp_path / "v2")
    assert r.exit_code == 0, r.output
    assert f"current version {name}" in r.output
    assert json.loads((tmp_path / "v2" / "tela.json").read_text())["added_models"][0]["from"] == str(live / name)
    assert versions.versions(live) == [name]  # the versions folder is not changed


def test_bad_add_to_is_one_line_and_writes_nothing(data: dict[str, Any], tmp_path: Path, tela_cli: Any) -> None:
    knn = data["routers"]["embedding-knn"]
    out = tmp_path / "out"
    rows = data["new_rows"]
    two_new = _write(tmp_path / "two.jsonl", [{**r, "outcomes": {**r["outcomes"], "another-model": 1.0}} for r in rows])
    no_cost = _write(tmp_path / "nocost.jsonl", [{k: v for k, v in r.items() if k != "costs"} for r in rows])
    cases = [
        (["--add-to", knn, "--data", data["train"]], "the records name no model the router lacks"),
        (["--add-to", knn, "--data", two_new], "name 2 models the router lacks"),
        (["--add-to", knn, "--data", no_cost], f"no record gives a cost for {NEW}"),
        (["--add-to", knn, "--data", data["new"], "--family", "embedding-knn"], "--family: not with --add-to"),
        (["--add-to", data["pair"], "--data", data["new"]], "routes the pair"),
        (["--add-to", tmp_path / "nowhere", "--data", data["new"]], "router directory not found"),
    ]
    for args, said in cases:
        line = one_error_line(tela_cli("run", *args, "-o", out))
        assert said in line, line
        assert not out.exists(), args
        assert not list(tmp_path.glob(".out.*")), args
    line = one_error_line(tela_cli("run", "--add-to", knn, "--data", data["new"], "-o", knn))
    assert "another folder than the router it extends" in line


def test_a_family_that_cannot_add_is_named_with_those_that_can(
    tiny_router: Path, data: dict[str, Any], tmp_path: Path, tela_cli: Any
) -> None:
    line = one_error_line(tela_cli("run", "--add-to", tiny_router, "--data", data["new"], "-o", tmp_path / "o"))
    assert "family 'score-token' cannot take a new model" in line
    assert "embedding-knn, embedding-linear, matrix-factorization" in line
    assert not (tmp_path / "o").exists()
