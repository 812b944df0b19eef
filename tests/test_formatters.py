"""Formatters: ``role-prefix`` is the seed's text byte for byte; ``chat-template`` uses the tokenizer.

The seed's strings below are copied from its guide (seed/tela-wizard-guide.md), not from tela, so
that a drift of ``tela_core.data.prompts`` or of the formatter fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tela_core import TelaError
from tela_core.data.records import seed_record
from tela_core.plugins.discovery import get_registry

# -- the seed, verbatim --------------------------------------------------------------------------

SEED_SYSTEM = (
    "[Instruction]\nBased on the question provided below, predict the score an expert evaluator would give "
    "to an AI assistant's response, considering its helpfulness, relevance, adherence to facts, depth, creativity, "
    "and detail. Your prediction should infer the level of proficiency needed to address the question effectively. "
    "Use a scale from 1 to 5, where a higher score indicates a higher anticipated quality of response. Provide your "
    'prediction as: "[[predicted rating]]".\n\n'
    "Score criteria:\n"
    "- **4-5**: The AI assistant can produce a very strong answer, showing deep understanding, creativity, detailed "
    "insight, and high relevance.\n"
    "- **3**: The AI assistant can provide an adequate answer with moderate detail, relevance, and factual accuracy.\n"
    "- **1-2**: The AI assistant will struggle to produce a strong answer due to the question's difficulty, vagueness, or "  # noqa: E501
    "the assistant's limitations.\n"
)
SEED_USER = "[Question]\nWhat challenges did FDR face while in office\n\nPrediction:\n"


def seed_concat_messages(example: dict[str, Any]) -> dict[str, Any]:
    """The seed's train.py ``concat_messages``, as written there."""
    msgs = example.get("messages", [])
    conversation = ""
    for msg in msgs:
        role = msg["role"]
        content = msg["content"]
        conversation += f"{role.upper()}:\n{content}\n\n"
    example["text"] = conversation
    return example


#: The seed's inference prompt (its inference script), which lacks the ``ASSISTANT:\n`` that its
#: training text has before the score: tela's prompt adds it (no train/serve skew).
SEED_INFERENCE_PROMPT = f"SYSTEM:\n{SEED_SYSTEM}\n\nUSER:\n{SEED_USER}\n\n"

SEED_MESSAGES = [
    {"role": "system", "content": SEED_SYSTEM},
    {"role": "user", "content": SEED_USER},
    {"role": "assistant", "content": "[[4]]"},
]

EXPECTED_TEXT = (
    "SYSTEM:\n" + SEED_SYSTEM + "\n\n"
    "USER:\n[Question]\nWhat challenges did FDR face while in office\n\nPrediction:\n\n\n"
    "ASSISTANT:\n[[4]]\n\n"
)


def formatter(name: str) -> Any:
    return get_registry().create("formatter", name)


def test_role_prefix_is_the_seed_text_byte_for_byte() -> None:
    seed_text = seed_concat_messages({"messages": SEED_MESSAGES})["text"]
    assert seed_text == EXPECTED_TEXT
    f = formatter("role-prefix").format(SEED_MESSAGES)
    assert f.prompt + f.completion == seed_text
    assert f.text.encode("utf-8") == seed_text.encode("utf-8")
    assert f.completion == "[[4]]\n\n"
    assert f.prompt == SEED_INFERENCE_PROMPT + "ASSISTANT:\n"


def test_seed_record_builds_the_seed_messages() -> None:
    rec = seed_record("What challenges did FDR face while in office", 4)
    assert rec.messages == SEED_MESSAGES
    assert rec.to_seed() == {"messages": SEED_MESSAGES, "prompt": "What challenges did FDR face while in office"}


def test_role_prefix_inference_prompt_is_the_training_prefix() -> None:
    fmt = formatter("role-prefix")
    train = fmt.format(SEED_MESSAGES)
    serve = fmt.format(seed_record("What challenges did FDR face while in office", None).messages)
    assert serve.completion == ""
    assert serve.prompt == train.prompt
    assert train.text.startswith(serve.prompt)


def test_chat_template_needs_a_tokenizer() -> None:
    with pytest.raises(TelaError, match="needs a tokenizer"):
        formatter("chat-template").format(SEED_MESSAGES)


class _TemplateTokenizer:
    """Stands in for a tokenizer: a ChatML template, rendered the way ``apply_chat_template`` does."""

    chat_template = "chatml"

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        assert tokenize is False
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_chat_template_splits_prompt_and_completion() -> None:
    f = formatter("chat-template").format(SEED_MESSAGES, tokenizer=_TemplateTokenizer())
    assert f.prompt.endswith("<|im_start|>assistant\n")
    assert f.completion == "[[4]]<|im_end|>\n"
    serve = formatter("chat-template").format(SEED_MESSAGES[:2], tokenizer=_TemplateTokenizer())
    assert serve.prompt == f.prompt and serve.completion == ""


def test_chat_template_with_a_real_tokenizer_template() -> None:
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    f = formatter("chat-template").format(SEED_MESSAGES, tokenizer=fast)
    assert f.prompt.startswith("<|im_start|>system\n[Instruction]")
    assert f.prompt.endswith("Prediction:\n<|im_end|>\n<|im_start|>assistant\n")
    assert f.completion == "[[4]]<|im_end|>\n"


def test_formatter_options_are_settable_and_travel_with_the_router(tmp_path, register_plugin, tela_cli):
    """`--set formatter.KEY=VALUE` reaches the formatter in `data preview` and `tela run` (validated
    before anything is written); the run config carries them into the manifest, from which the
    score-token scorer builds its formatter (test_train_deepspeed checks the manifest field)."""
    import json

    import tela_example_plugin

    from tela_core.data import sample_path
    from tela_core.train import RunConfig, parse_overrides

    register_plugin(tela_example_plugin, "example-test")
    run = tela_cli(
        "data",
        "preview",
        "--formatter",
        "question-only",
        sample_path(),
        "--n",
        "1",
        "--set",
        "formatter.question_prefix=QUESTION>>",
    )
    assert run.exit_code == 0, run.output
    assert "QUESTION>>" in run.output
    bad = tela_cli("data", "preview", "--formatter", "question-only", sample_path(), "--set", "formatter.nope=1")
    assert bad.exit_code == 2 and "bad options for formatter 'question-only'" in bad.output
    out = tmp_path / "r"
    bad = tela_cli(
        "run", "--data", sample_path(), "--formatter", "question-only", "--set", "formatter.nope=1", "--output", out
    )
    assert bad.exit_code == 2 and "nope" in bad.output and not out.exists()
    cfg = RunConfig.build(
        {"data": sample_path(), "output": tmp_path / "x", **parse_overrides(["formatter.question_prefix=Question"])}
    )
    assert cfg.formatter_options == {"question_prefix": "Question"}
    assert json.loads(json.dumps(cfg.model_dump(mode="json")))["formatter_options"] == {"question_prefix": "Question"}
