"""``routellm-judge``: RouteLLM's GPT-4-judge dataset (``routellm/gpt4_dataset``), natively.

Written against the schema the dataset's card and RouteLLM/Anyscale's router tutorial use: splits
``train`` (109,101 rows) and ``validation``; columns ``prompt``, ``source`` (the prompt's origin
collection, e.g. ``[lmsys-chat-1m]``), ``gpt4_response``, ``mixtral_response`` and
``mixtral_score``: GPT-4's 1..5 score of Mixtral-8x7B's answer against GPT-4's as reference.
That score *is* the seed's label: the seed's router predicts ``[[mixtral_score]]`` for the prompt.
So each row becomes the seed's record with label = ``mixtral_score``, and ``group`` = ``source``.

``--data routellm/gpt4_dataset`` reads the hub id through the Hugging Face cache; a local copy (the
parquet files ``tela data get routellm-judge`` fetches, a ``save_to_disk`` folder, or
parquet/JSON/CSV files of that schema) reads the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tela_plugins.hf.hf import HFOptions, HFSource

__all__ = ["RouteLLMJudgeSource", "JudgeOptions", "HUB_ID"]

HUB_ID = "routellm/gpt4_dataset"


class JudgeOptions(HFOptions):
    prompt_column: str | None = "prompt"
    """The question column."""
    score_column: str | None = "mixtral_score"
    """GPT-4's 1..5 score of the weak model's (Mixtral's) answer: the label."""
    group_column: str | None = "source"
    """The prompt's origin collection (e.g. lmsys-chat-1m, sharegpt), used as the group."""


class RouteLLMJudgeSource(HFSource):
    """RouteLLM's GPT-4-judge data (routellm/gpt4_dataset): prompt + mixtral_score 1..5 as the label."""

    name = "routellm-judge"
    description = "RouteLLM GPT-4-judge data (routellm/gpt4_dataset): prompt, mixtral_score 1..5 = label"
    Options = JudgeOptions

    def record(self, opened: Any, i: int, row: Any, pair: Any) -> Any:
        rec = super().record(opened, i, row, pair)
        if rec.group and rec.group.startswith("[") and rec.group.endswith("]"):
            rec.group = rec.group[1:-1].strip("'\" ") or None  # "[sharegpt]" -> "sharegpt"
        return rec

    def sniff(self, path: Path) -> bool:
        """A parquet file or save_to_disk/parquet folder whose columns include prompt and mixtral_score."""
        from tela_plugins.hf.sniff import columns_of  # start-up: `tela --help` need not load hf.sniff (~4 ms)

        cols = columns_of(Path(path))
        return cols is not None and {"prompt", "mixtral_score"} <= cols
