"""Helpers for tests and plugin authors: a tiny real model and a tiny router artifact, offline.

``build_tiny_model`` trains a byte-level BPE tokenizer on a few hundred strings (including the
seed's system prompt, so prompts tokenize compactly), gives it ``[[1]]``..``[[5]]`` as special
tokens plus a pad and an EOS token, and saves a randomly initialised two-layer Llama beside it. The
result is a genuine Hugging Face causal-LM directory (``from_pretrained`` loads it) that builds in
well under a second, so tests exercise the real loading, tokenising and forward-pass code.

``build_tiny_router`` wraps that model as a ``score-token`` router artifact (``tela.json`` and
``policy.json``), the layout ``tela run`` leaves behind.

``run_cli``/``TelaCli`` drive ``tela`` in this process, ``one_error_line`` checks the bad-input
contract, ``registered_plugin`` registers an in-process plugin for a block, and ``public_data`` /
``needs_public_data`` find the public datasets (``$TELA_TEST_DATA``) or say why a test skipped.
The pytest fixtures built on these live in :mod:`tela_core.testkit.pytest_plugin`.

Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tela_core.data.prompts import SCORE_TOKENS, SYSTEM_PROMPT, USER_TEMPLATE

__all__ = [
    "build_tiny_model",
    "build_tiny_router",
    "tiny_corpus",
    "public_data",
    "needs_public_data",
    "TEST_DATA_ENV",
    "run_cli",
    "one_error_line",
    "TelaCli",
    "registered_plugin",
    "OFFLINE_VARS",
]


def run_cli(
    *args: Any, input: str | None = None, env: dict[str, str] | None = None, catch_exceptions: bool = True
) -> Any:
    """Run ``tela ARGS...`` in this process (click's ``CliRunner``, with the plugins registered here,
    in-process ones included); returns the click ``Result`` (``exit_code``, ``output``, ``stdout``).
    ``input`` is fed to stdin, ``env`` overrides environment variables for the call, and
    ``catch_exceptions=False`` lets an unexpected exception reach the test with its traceback."""
    from click.testing import CliRunner

    from tela_core.cli.main import get_cli

    return CliRunner().invoke(
        get_cli(), [str(a) for a in args], input=input, env=env, catch_exceptions=catch_exceptions
    )


def one_error_line(result: Any) -> str:
    """Assert tela's bad-input contract on a :func:`run_cli` result (exit code 2, exactly one
    ``Error:`` line, no traceback) and return that line."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


class TelaCli:
    """``tela`` in this process, as the ``tela_cli`` fixture hands it to a test.

    ``tela_cli("eval", "--router", d, ...)`` returns the click ``Result`` (:func:`run_cli`);
    ``tela_cli.json(...)`` asserts exit code 0 and parses stdout as JSON (for ``--json`` commands);
    ``tela_cli.error(...)`` asserts the bad-input contract and returns the one ``Error:`` line.
    """

    def __call__(
        self, *args: Any, input: str | None = None, env: dict[str, str] | None = None, catch_exceptions: bool = True
    ) -> Any:
        return run_cli(*args, input=input, env=env, catch_exceptions=catch_exceptions)

    def json(self, *args: Any, input: str | None = None) -> Any:
        import json

        result = run_cli(*args, input=input, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def error(self, *args: Any, input: str | None = None) -> str:
        return one_error_line(run_cli(*args, input=input))


@contextmanager
def registered_plugin(plugin: Any, name: str) -> Iterator[Any]:
    """Register ``plugin`` (a module or object with ``@hookimpl`` methods) as in-process plugin
    ``name`` for the block and yield the rebuilt registry; removed again however the block ends,
    so a failing test leaks nothing into the next one."""
    from tela_core.plugins.discovery import add_plugin, get_registry, remove_plugin

    add_plugin(plugin, name)
    try:
        yield get_registry()
    finally:
        remove_plugin(name)


#: The environment a test runs in (the ``tela_offline`` fixture sets it): nothing reaches a model or
#: dataset hub, and tokenizers start no thread pool of their own.
OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


#: A folder holding public router datasets for tests, one sub-folder per dataset.
TEST_DATA_ENV = "TELA_TEST_DATA"


def public_data(name: str, *aliases: str) -> Path | None:
    """The folder of public dataset ``name`` for tests that need real data: ``$TELA_TEST_DATA/NAME``
    (or an alias, e.g. another copy's folder name), else what ``tela data get NAME`` left in the
    cache; None when neither is there."""
    from tela_core.models.resolve import cache_root

    roots = [Path(os.environ[TEST_DATA_ENV])] if os.environ.get(TEST_DATA_ENV) else []
    roots.append(cache_root() / "datasets")
    for root in roots:
        for n in (name, *aliases):
            if (root / n).is_dir():
                return root / n
    return None


def needs_public_data(name: str, *aliases: str) -> Any:
    """A pytest ``skipif`` marker that says why a test did not run and how to make it run."""
    import pytest

    return pytest.mark.skipif(
        public_data(name, *aliases) is None,
        reason=f"public dataset {name!r} not here: run `tela data get {name}` "
        f"or set {TEST_DATA_ENV} to a folder holding it",
    )


PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
BOS_TOKEN = "<s>"
UNK_TOKEN = "<unk>"

_WORDS = (
    "what is the capital of france paris explain why the sky is blue write a poem about the sea "
    "which of the following is true of a mitochondrion solve for x in 2x plus 3 equals 7 "
    "the quick brown fox jumps over the lazy dog translate hello into german compute the derivative "
    "summarize this paragraph in one sentence who wrote hamlet name three prime numbers "
    "how many legs does a spider have the answer is A B C D question prediction score rating"
).split()


def tiny_corpus(n: int = 300, seed: int = 0) -> list[str]:
    """A few hundred deterministic training strings: the seed's prompt texts plus word salads."""
    import random

    rng = random.Random(seed)
    texts = [SYSTEM_PROMPT, USER_TEMPLATE, "SYSTEM:\n", "USER:\n", "ASSISTANT:\n"]
    for _ in range(n):
        k = rng.randint(3, 20)
        texts.append(" ".join(rng.choice(_WORDS) for _ in range(k)) + rng.choice(["?", ".", "!", "\n"]))
    return texts


def build_tiny_model(path: Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Save a tiny Llama causal LM and its tokenizer (with ``[[1]]``..``[[5]]``) into ``path``.

    Deterministic for a given ``seed``. Returns ``path``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    raw = Tokenizer(models.BPE(unk_token=None))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(tiny_corpus(seed=seed), trainer=trainer)

    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",
    )
    tok.add_special_tokens({"additional_special_tokens": list(SCORE_TOKENS)})
    tok.model_max_length = 512

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_tiny_router(path: Path, seed: int = 0, threshold: float = 0.5) -> Path:
    """A ``score-token`` router artifact around :func:`build_tiny_model` (untrained weights).

    Writes ``tela.json`` (scorer ``score-token``, formatter ``role-prefix``) and a ``threshold``
    policy over ``weak``/``strong``. Returns ``path``.
    """
    from tela_core.routing.artifact import write_manifest, write_policy

    build_tiny_model(path, seed=seed)
    write_manifest(path, scorer="score-token", formatter="role-prefix", base_model="tiny")
    write_policy(path, "threshold", {"threshold": threshold}, ["weak", "strong"])
    return path
