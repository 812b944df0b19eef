"""The score-token scorer: one forward pass, a true distribution, padding- and truncation-safe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tela_core import TelaError, get_registry
from tela_core.routing.router import Router

QUESTIONS = [
    "What is the capital of France?",
    "Which of the following is true of a mitochondrion? A. it has DNA B. it is a virus",
    "hi",
    "Explain why the sky is blue. " * 20,
    "Solve for x: 2x + 3 = 7",
]


@pytest.fixture(scope="module")
def scorer(tiny_router: Path):  # tiny_router: the test kit's (tela_core/testkit/pytest_plugin.py)
    return Router.load(tiny_router).scorer


def test_distribution_and_w(scorer):
    s = scorer.score(QUESTIONS)
    assert s.probs.shape == (len(QUESTIONS), 5)
    assert np.allclose(s.probs.sum(axis=1), 1.0, atol=1e-9)
    assert (s.probs > 0).all()
    assert np.allclose(s.w, 1.0 - (s.probs[:, 3] + s.probs[:, 4]))
    assert ((s.expected >= 1) & (s.expected <= 5)).all()


def test_matches_a_bare_forward_pass_on_the_formatted_prompt(scorer, tiny_router):
    """The scorer reads exactly what a full forward pass of the training-format text gives."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tela_core.data.records import seed_record

    tok = AutoTokenizer.from_pretrained(tiny_router)
    model = AutoModelForCausalLM.from_pretrained(tiny_router).eval()
    fmt = get_registry().create("formatter", "role-prefix")
    q = QUESTIONS[1]
    text = fmt.format(seed_record(q, None).messages).prompt
    assert text.startswith("SYSTEM:\n[Instruction]") and text.endswith("Prediction:\n\n\nASSISTANT:\n")
    assert scorer.render(q) == text
    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**ids).logits[0, -1]
    score_ids = [tok.convert_tokens_to_ids(f"[[{k}]]") for k in range(1, 6)]
    want = torch.softmax(logits[score_ids].double(), -1).numpy()
    got = scorer.score([q]).probs[0]
    assert np.allclose(got, want, atol=1e-5)


def test_batched_equals_one_by_one(tiny_router):
    """Left padding with position ids: a prompt scores the same alone and in a padded batch."""
    s = get_registry().create("family", "score-token", {"batch_size": 3})
    s.load(tiny_router)
    batched = s.score(QUESTIONS)
    single = np.array([s.score([q]).probs[0] for q in QUESTIONS])
    assert np.allclose(batched.probs, single, atol=1e-5)
    # a token budget splits batches without changing anything
    s.options.max_batch_tokens = 400
    assert np.allclose(s.score(QUESTIONS).probs, single, atol=1e-5)


def test_long_questions_lose_their_start_never_the_template(tiny_router):
    s = get_registry().create("family", "score-token", {})
    s.load(tiny_router)
    template_len = len(s.encode(""))
    s.options.max_length = template_len + 20
    q = "first words " * 200 + "THE LAST WORDS"
    ids = s.encode(q)
    assert len(ids) <= s.options.max_length
    text = s.tokenizer.decode(ids)
    assert text.startswith("SYSTEM:\n[Instruction]")
    assert text.endswith("THE LAST WORDS\n\nPrediction:\n\n\nASSISTANT:\n")
    assert "[Question]\n" in text
    assert len(ids) > template_len + 10  # the budget is used, not thrown away
    out = s.score([q, "short"])
    assert np.allclose(out.probs.sum(1), 1.0)
    s.options.max_length = template_len - 1
    with pytest.raises(TelaError, match="template alone"):
        s.encode(q)


def test_bad_router_dirs_give_clear_errors(tmp_path, tiny_router):
    with pytest.raises(TelaError, match="not found"):
        Router.load(tmp_path / "nope").scorer
    with pytest.raises(TelaError, match="not a tela router"):
        Router.load(tmp_path).scorer
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_router / "tela.json", broken / "tela.json")
    with pytest.raises(TelaError, match="config.json missing"):
        Router.load(broken).scorer


def test_a_tokenizer_without_score_tokens_is_refused():
    from tela_core.data.prompts import score_token_ids

    class Splitting:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [1, 2, 3]}

    with pytest.raises(TelaError, match="not a score-token router"):
        score_token_ids(Splitting(), "somewhere")


def test_manifest_names_the_scorer(tiny_router):
    m = json.loads((tiny_router / "tela.json").read_text())
    assert m["scorer"] == "score-token" and m["formatter"] == "role-prefix"


def test_the_shared_prefix_cache_changes_no_score(tiny_router):
    """Reusing the template prefix's key/value cache gives the numbers a full forward pass gives,
    alone and in padded batches, and leaves the cache as it found it (the same twice in a row)."""
    plain = get_registry().create("family", "score-token", {"prefix_cache": False})
    plain.load(tiny_router)
    cached = get_registry().create("family", "score-token", {"batch_size": 3})
    cached.load(tiny_router)
    prefix = cached.shared_prefix()
    assert len(prefix) >= 16 and all(e[: len(prefix)] == prefix for e in map(cached.encode, QUESTIONS))
    want = plain.score(QUESTIONS).probs
    assert np.allclose(cached.score(QUESTIONS).probs, want, atol=1e-5)
    assert np.allclose(cached.score(QUESTIONS).probs, want, atol=1e-5)
    assert np.allclose([cached.score([q]).probs[0] for q in QUESTIONS], want, atol=1e-5)
    assert all(c.get_seq_length() == len(prefix) for c in cached._prefix_caches.values())
