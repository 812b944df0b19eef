"""`tela serve` over three models, end to end: route with every model's predicted quality, fall back
by it, shadow a few of the models not chosen, and turn the shadow log into N-model records.

A real `tela serve` process on loopback serves an `embedding-knn` router (default embedder) trained
on 400 prompts of LLMRouter's public 9-model data, three of its models kept (cheap -> strong). The
upstreams are a STAND-IN for remote model APIs (tela_core.testkit.replay_upstream, not a model):
an OpenAI-compatible server on loopback that answers each of the three models with a recorded
answer per prompt whose score is that model's real outcome on the prompt in the data, and plays a
judge model that rates an answer from its recorded score. Clients are the real `openai` package.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from serve_support import TelaServe, free_port, get, metric  # noqa: E402

from tela_core.serve.shadow import ShadowSampler  # noqa: E402
from tela_core.testkit.helpers import public_data, run_cli  # noqa: E402
from tela_core.testkit.replay_upstream import Recorded, ReplayUpstream  # noqa: E402

MODELS = ["gemma-2-9b-it", "llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct"]  # cheap -> strong
UPSTREAMS = ["small", "mid", "big"]
UP = dict(zip(MODELS, UPSTREAMS))
MODEL_OF = dict(zip(UPSTREAMS, MODELS))

nim9 = public_data("llmrouter-nim9", "llmrouter")
pytestmark = pytest.mark.skipif(nim9 is None, reason="needs LLMRouter's public data (tela data get llmrouter)")


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedding-knn router over three models, policy cost-aware at λ = 0 (best predicted quality)."""
    from tela_core.plugins import get_registry
    from tela_core.routing.artifact import read_policy, write_policy

    assert nim9 is not None
    tmp = tmp_path_factory.mktemp("nmodel")
    src = get_registry().create("source", "llmrouter-json", {})
    records = list(src.records(nim9 / "dcrouter_preprocessed_train.json"))[:400]
    data = tmp / "records.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for r in records:
            obj = r.to_json()
            obj["outcomes"] = {m: obj["outcomes"][m] for m in MODELS}
            obj["costs"] = {m: obj["costs"][m] for m in MODELS}
            f.write(json.dumps(obj) + "\n")
    d = tmp / "knn3"
    res = run_cli(
        "run",
        "--family",
        "embedding-knn",
        "--data",
        data,
        "--output",
        d,
        "--set",
        "family.k=20",
        "--set",
        f"source.models.weak={MODELS[0]}",
        "--set",
        f"source.models.strong={MODELS[-1]}",
    )
    assert res.exit_code == 0, res.output
    costs = read_policy(d)["options"]["costs"]
    write_policy(d, "cost-aware", {"lam": 0.0, "costs": costs}, MODELS)
    return d


@pytest.fixture(scope="module")
def prompts() -> list[tuple[str, dict[str, float]]]:
    """40 short held-out questions and each model's real outcome on them."""
    assert nim9 is not None
    rows = json.loads((nim9 / "dcrouter_preprocessed_test.json").read_text(encoding="utf-8"))
    out = [(r["question"], {m: float(r["scores"][m]) for m in MODELS}) for r in rows if len(r["question"]) < 600]
    return out[:40]


@pytest.fixture(scope="module")
def upstream(prompts: list[tuple[str, dict[str, float]]]) -> Iterator[ReplayUpstream]:
    recorded = {
        m: {
            q: Recorded(f"{m} answer {i}: {'right' if o[m] >= 0.5 else 'wrong'}", 40, 12, o[m])
            for i, (q, o) in enumerate(prompts)
        }
        for m in MODELS
    }
    with ReplayUpstream(recorded, judges=["judge"]) as up:
        yield up


@pytest.fixture(scope="module")
def served(router_dir: Path, upstream: ReplayUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tela_plugins.outcomes.llmrouter import load_prices

    assert nim9 is not None
    prices = load_prices(nim9 / "default_llm.json")
    tmp = tmp_path_factory.mktemp("served")
    config = {
        "routers": {"nm": {"path": str(router_dir), "upstreams": UPSTREAMS}},
        "upstreams": {
            u: {"base_url": upstream.base_url, "model": m, "price_input": prices[m][0], "price_output": prices[m][1]}
            for u, m in zip(UPSTREAMS, MODELS)
        },
        "decision_log": str(tmp / "decisions.jsonl"),
        "shadow": 1.0,
        "shadow_log": str(tmp / "shadow.jsonl"),
        "shadow_models": 1,
        "shadow_sampling": "uncertainty",
        "log_prompts": True,
        "fallback_models": 2,
    }
    cfg = tmp / "serve.yaml"
    cfg.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    server = TelaServe(["--config", str(cfg), "--log-level", "warning"], free_port())
    try:
        yield SimpleNamespace(
            url=server.url,
            client=openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0),
            config=cfg,
            decisions=tmp / "decisions.jsonl",
            shadow=tmp / "shadow.jsonl",
        )
    finally:
        server.stop()


def _ask(served: Any, prompt: str, model: str = "router-nm") -> tuple[dict[str, str], str]:
    raw = served.client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    return dict(raw.headers), raw.parse().choices[0].message.content


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _settle(served: Any, n: int, timeout: float = 20.0) -> str:
    """Wait until ``n`` shadowed requests are written (their shadow calls done); the metrics text."""
    deadline = time.monotonic() + timeout
    while True:
        _, text = get(served.url + "/metrics")
        if metric(text, "tela_shadow_requests_total", router="nm") >= n or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_headers_log_and_metrics_name_every_models_predicted_quality(served, prompts):
    seen: dict[str, int] = {}
    for q, _ in prompts[:12]:
        h, text = _ask(served, q)
        quality = json.loads(h["x-tela-quality"])
        assert "x-tela-threshold" not in h  # an N-model policy has no threshold: no empty header
        assert set(quality) == set(UPSTREAMS) and all(0.0 <= v <= 1.0 for v in quality.values())
        assert quality[h["x-tela-model"]] >= max(quality.values()) - 1e-3  # λ = 0: the best predicted quality
        assert text.startswith(MODEL_OF[h["x-tela-model"]])  # the chosen upstream answered
        seen[h["x-tela-model"]] = seen.get(h["x-tela-model"], 0) + 1
        line = next(r for r in _log(served.decisions) if r["id"] == h["x-request-id"])
        assert line["upstream"] == h["x-tela-model"] and UP[line["chosen"]] == h["x-tela-model"]
        assert {UP[m]: round(v, 4) for m, v in line["quality"].items()} == quality
        assert line["failed"] == [] and line["fallback_from"] is None
    # the request knob of the N-model policy: λ = 1000 sends everything to the cheapest model
    h, _ = _ask(served, prompts[0][0], model="router-nm-1000")
    assert h["x-tela-model"] == "small"
    assert next(r for r in _log(served.decisions) if r["id"] == h["x-request-id"])["knob"] == {"lam": 1000.0}
    seen["small"] = seen.get("small", 0) + 1
    text = _settle(served, 13)
    for u, n in seen.items():
        assert metric(text, "tela_requests_total", router="nm", model=u, status="200") == n
        assert metric(text, "tela_routed_total", router="nm", model=MODELS[UPSTREAMS.index(u)]) == n
        assert metric(text, "tela_estimated_cost_dollars_total", model=u) > 0
    assert sum(metric(text, "tela_routed_total", router="nm", model=m) for m in MODELS) == 13


def test_a_failed_upstream_falls_back_to_the_next_model_by_predicted_quality(served, prompts, router_dir, upstream):
    from tela_core import Router

    router = Router.load(router_dir)
    # no shadow call of an earlier test left to take a fault: every request the log marks shadowed written
    _settle(served, sum(1 for r in _log(served.decisions) if r.get("shadow")))
    _, before = get(served.url + "/metrics")
    # a prompt where the next by predicted quality is not the model the two-model rule falls back to
    # (the strongest, or the one below it when the strongest failed)
    for q, _ in prompts:
        d = router.decide([q])[0]
        assert d.quality is not None
        order = sorted((m for m in MODELS if m != d.model), key=lambda m: (-d.quality[m], -MODELS.index(m)))
        two_model_rule = MODELS[-1] if d.model != MODELS[-1] else MODELS[-2]
        if order[0] != two_model_rule and d.quality[order[0]] - d.quality[order[1]] > 0.01:
            break
    else:
        pytest.fail("no prompt whose fallback differs from the two-model rule")
    first, second, third = UP[d.model], UP[order[0]], UP[order[1]]
    try:
        upstream.inject("500", times=None, model=d.model)
        h, text = _ask(served, q)
        assert (h["x-tela-model"], h["x-tela-fallback"]) == (second, first)
        assert text.startswith(order[0])
        upstream.inject("503", times=None, model=order[0])  # the next one down too: the third answers
        h2, _ = _ask(served, q)
        assert (h2["x-tela-model"], h2["x-tela-fallback"]) == (third, first)
    finally:
        upstream.reset()
    lines = {r["id"]: r for r in _log(served.decisions)}
    assert lines[h["x-request-id"]]["failed"] == [first]
    assert lines[h2["x-request-id"]]["failed"] == [first, second]
    assert lines[h2["x-request-id"]]["fallback_from"] == first
    _, after = get(served.url + "/metrics")

    def grew(**labels: str) -> float:
        return metric(after, "tela_fallbacks_total", **labels) - metric(before, "tela_fallbacks_total", **labels)

    assert grew(router="nm", from_model=first, to_model=second) == 2
    assert grew(router="nm", from_model=second, to_model=third) == 1


def test_shadow_asks_one_of_the_models_not_chosen_and_the_log_becomes_nmodel_records(
    served, prompts, upstream, tmp_path
):
    for q, _ in prompts[12:30]:
        _ask(served, q)
    shadowed = [r for r in _log(served.decisions) if r.get("shadow")]
    text = _settle(served, len(shadowed))
    lines = _log(served.shadow)
    assert len(lines) == len(shadowed) >= 18
    truth = {q: o for q, o in prompts}
    for rec in lines:
        assert set(rec["answers"]) - {rec["chosen"]} and len(rec["answers"]) == 2  # the chosen + one of two
        assert rec["sampling"] == {"mode": "uncertainty", "p": 1.0} and set(rec["quality"]) == set(MODELS)
    asked = [m for rec in lines for m in rec["answers"] if m != rec["chosen"]]
    for m in set(asked):
        assert metric(text, "tela_shadow_calls_total", router="nm", model=m) == asked.count(m)
    assert metric(text, "tela_shadow_share", router="nm") == 1.0
    routed = sum(metric(text, "tela_routed_total", router="nm", model=m) for m in MODELS)
    # every routed request sampled (rate 1); those that fell back were not shadowed (no answer to compare)
    assert metric(text, "tela_shadow_sampled_total", router="nm", sampling="uncertainty") == routed >= len(shadowed)

    # collect --from-log --only-logged: the answers the log holds, no model asked
    upstream.reset(counts=True)
    answers = tmp_path / "answers"
    res = run_cli(
        "collect", "--from-log", served.shadow, "--config", served.config, "--only-logged", "-o", answers, "--json"
    )
    assert res.exit_code == 0, res.output
    assert sum(upstream.counts.values()) == 0
    rows = [json.loads(line) for line in (answers / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines) and all(len(r["answers"]) == 2 for r in rows)

    # tela judge over the three models: every model's answer each prompt has, rated
    judged = tmp_path / "judged"
    res = run_cli(
        "judge",
        "--answers",
        answers,
        "--judge",
        "llm-judge",
        "--judge-model",
        f"judge={upstream.base_url}#judge",
        "-o",
        judged,
        "--json",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((judged / "summary.json").read_text(encoding="utf-8"))
    assert summary["models"] == MODELS and summary["records"] == len(rows)
    records = [json.loads(line) for line in (judged / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    # by request id: the module's earlier tests asked some of these prompts too, each shadowed on its own draw
    by_id = {r["id"]: r for r in records}
    covered: set[str] = set()
    for rec in lines:
        q = rec["messages"][-1]["content"]
        outcomes = by_id[rec.get("request_id") or rec["id"]]["outcomes"]
        assert set(outcomes) == set(rec["answers"])  # the models asked, no other
        assert outcomes == {m: truth[q][m] for m in rec["answers"]}  # rated 1 or 5 from the real outcome
        covered |= set(outcomes)
    assert covered == set(MODELS)


def test_uncertainty_sampling_prefers_close_decisions_and_close_models():
    d = SimpleNamespace
    # models: the one predicted closest to the chosen model is asked far more often than uniformly
    for mode, low, high in (("uncertainty", 0.9, 1.0), ("uniform", 0.45, 0.55)):
        s = ShadowSampler(mode, k=1, rng=random.Random(0))
        picks = [s.pick(MODELS, MODELS[2], {MODELS[0]: 0.2, MODELS[1]: 0.55, MODELS[2]: 0.6}) for _ in range(4000)]
        share = sum(p == [MODELS[1]] for p in picks) / len(picks)
        assert low <= share <= high, (mode, share)
    # requests: the same share on average, most of it where w is near the threshold
    rng = random.Random(1)
    decisions = [d(w=rng.random(), threshold=0.5, model="weak", quality=None) for _ in range(20000)]
    s = ShadowSampler("uncertainty", rng=random.Random(2))
    taken = [x for x in decisions if s.sample("r", 0.1, x) is not None]
    assert abs(len(taken) / len(decisions) - 0.1) < 0.015
    near = sum(abs(x.w - 0.5) < 0.1 for x in taken) / len(taken)
    assert near > 2 * 0.2  # uniform sampling puts 20% of its picks within 0.1 of the threshold
    assert ShadowSampler("uncertainty").uncertainty(d(w=0.5, threshold=0.5)) == 1.0
    assert math.isclose(ShadowSampler().uncertainty(d(w=0.9, threshold=None)), math.exp(-4))
