"""LLMRouter's outcome JSON (ulab-uiuc/LLMRouter ``dcrouter_preprocessed_{train,test}.json``).

A JSON list of ``{"question": str, "scores": {model: 0..1}}``. Per-model prices come from a
``default_llm.json`` beside the file (``{model: {"input_price": $/M, "output_price": $/M}}``) or
the ``prices`` option. The data has no token counts, so the cost of a query is an estimate:

    input tokens  = ceil(len(question) / chars_per_token)      (4 characters per token)
    output tokens = output_tokens                              (a flat 256)
    cost          = (input tokens * input_price + output tokens * output_price) / 1e6

Models without a price get no cost. Default pair: weak ``gemma-2-9b-it`` (the cheapest, $0.10/M,
53.5% on the train file), strong ``llama-3.1-nemotron-51b-instruct`` (the most accurate, 62.1%).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from tela_core import InputError, Record
from tela_core.data.records import check_text, json_decoder
from tela_core.infra.io import read_utf8
from tela_plugins.outcomes.common import OutcomeOptions, OutcomeSource, clip01, is_number, read_price_object

__all__ = ["LLMRouterJsonSource", "LLMRouterOptions", "load_prices"]

PRICES_FILE = "default_llm.json"


class LLMRouterOptions(OutcomeOptions):
    weak_model: str | None = "gemma-2-9b-it"
    """Weak model (default: the cheapest in LLMRouter's price list)."""
    strong_model: str | None = "llama-3.1-nemotron-51b-instruct"
    """Strong model (default: the most accurate on LLMRouter's train file)."""
    prices: Path | None = None
    """Price file (LLMRouter's ``default_llm.json`` shape); default: the one beside the data."""
    chars_per_token: float = Field(4.0, gt=0)
    """Characters per token when estimating a question's input tokens."""
    output_tokens: int = Field(256, ge=0)
    """Assumed output tokens per answer when estimating cost."""


def load_prices(path: Path) -> dict[str, tuple[float, float]]:
    """``{model: (input $/M tokens, output $/M tokens)}`` from an LLMRouter ``default_llm.json``."""
    data = read_price_object(path)
    prices: dict[str, tuple[float, float]] = {}
    for model, info in data.items():
        if (
            not isinstance(info, dict)
            or not is_number(info.get("input_price"))
            or not is_number(info.get("output_price"))
        ):
            raise InputError(path, None, f'model {model!r}: expected numeric "input_price" and "output_price"')
        prices[model] = (float(info["input_price"]), float(info["output_price"]))
    return prices


def iter_json_list(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line where the element starts, element) for each element of a top-level JSON list."""
    text = read_utf8(path)
    dec = json_decoder()
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def line_at(i: int) -> int:
        return text.count("\n", 0, i) + 1

    i = skip_ws(0)
    if i >= n or text[i] != "[":
        raise InputError(path, line_at(i), 'expected a JSON list of {"question", "scores"} objects')
    i = skip_ws(i + 1)
    line, pos = 1, 0
    if i < n and text[i] == "]":
        return
    while True:
        line += text.count("\n", pos, i)
        pos = i
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise InputError(path, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
        except RecursionError:
            raise InputError(path, line, "JSON nested too deeply to read") from None
        except ValueError as e:  # NaN / Infinity
            raise InputError(path, line, str(e)) from None
        yield line, obj
        i = skip_ws(end)
        if i < n and text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if i < n and text[i] == "]":
            if skip_ws(i + 1) != n:
                raise InputError(path, line_at(i + 1), "unexpected data after the end of the list")
            return
        raise InputError(path, line_at(i), "invalid JSON: expected ',' or ']' after a list element")


class LLMRouterJsonSource(OutcomeSource):
    """LLMRouter outcome JSON: a list of {question, scores: {model: 0..1}}; prices from default_llm.json."""

    name = "llmrouter-json"
    description = "LLMRouter outcome JSON: [{question, scores: {model: 0..1}}], prices from default_llm.json"
    Options = LLMRouterOptions

    def read(self, path: Path) -> Iterator[Record]:
        path = Path(path)
        if not path.exists():
            raise InputError(path, None, "file not found")
        if path.is_dir():
            raise InputError(path, None, "is a directory, expected an LLMRouter JSON file")
        price_file = self.options.prices or path.parent / PRICES_FILE
        prices = load_prices(Path(price_file)) if (self.options.prices or price_file.is_file()) else {}
        self.stats = {"priced_models": len(prices)}
        models: list[str] | None = None
        pair: tuple[str, str] | None = None
        for index, (line, obj) in enumerate(iter_json_list(path)):
            if not isinstance(obj, dict):
                raise InputError(
                    path, line, f'expected an object with "question" and "scores", got {type(obj).__name__}'
                )
            q = obj.get("question")
            if not isinstance(q, str) or not q.strip():
                raise InputError(path, line, 'missing or empty "question" (a non-empty string)')
            check_text(q, path, line, '"question"')
            scores = obj.get("scores")
            if not isinstance(scores, dict) or not scores:
                raise InputError(path, line, '"scores" must be a non-empty object mapping model to 0..1')
            outcomes: dict[str, float] = {}
            for m, v in scores.items():
                check_text(m, path, line, 'a model name in "scores"')
                if not is_number(v) or not -1e-9 <= v <= 1 + 1e-9:
                    raise InputError(path, line, f"scores[{m!r}] must be a number in [0, 1], got {v!r}")
                outcomes[m] = clip01(v)
            if models is None:
                models = list(outcomes)
                pair = self.pair(models, path)
            elif set(outcomes) != set(models):
                missing = sorted(set(models) - set(outcomes))
                extra = sorted(set(outcomes) - set(models))
                raise InputError(
                    path, line, f"scores name other models than the first entry (missing: {missing}, extra: {extra})"
                )
            costs = self._costs(q, outcomes, prices)
            assert pair is not None
            yield self.make_record(q, outcomes, pair, costs=costs or None, id=f"{path.stem}/{index}")

    def _costs(
        self, question: str, outcomes: dict[str, float], prices: dict[str, tuple[float, float]]
    ) -> dict[str, float]:
        tin = math.ceil(len(question) / self.options.chars_per_token)
        tout = self.options.output_tokens
        return {m: (tin * prices[m][0] + tout * prices[m][1]) / 1e6 for m in outcomes if m in prices}

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".json" or not path.is_file():
            return False
        try:
            with path.open(encoding="utf-8-sig") as fh:
                head = fh.read(65536)
        except (OSError, UnicodeDecodeError):
            return False
        return head.lstrip().startswith("[") and '"question"' in head and '"scores"' in head
