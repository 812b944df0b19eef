"""RouterArena's cached per-model results (RouteWorks/RouterArena ``cached_results/<model>.jsonl``).

A folder with one JSONL file per model (the model name is the file name without ``.jsonl``) and a
``cost.json`` price list. Each line: ``global_index``, ``question``, ``token_usage`` and
``evaluation_result`` with ``score`` (the outcome; partial-credit scores are clipped into [0, 1])
and ``inference_cost`` (the real $ cost; when absent it is computed from ``token_usage`` and
``cost.json``). Files are joined on ``global_index``. A prompt at least two models answered is a
record, the models that did not answer it absent from its ``outcomes`` (it has no 1..5 label when
one of the pair is absent): a router among N models (``embedding-knn``, ``matrix-factorization``,
...) trains on every such record and keeps every model, and ``tela run`` trains a router between
two models on the records that have both of its pair (and says how many others it left out). A
prompt only one model answered says nothing about which model to choose and is skipped. Both are
counted (``tela data check``). With two model files, a prompt needs both, as before. The group
is the benchmark, the ``global_index`` up to its last ``_`` (``MMLUPro_history_12`` ->
``MMLUPro_history``).

Default pair: weak ``claude-3-haiku-20240307``, strong ``gemini-2.0-flash-001`` (the less and the
more accurate model of the bundled subset; note gemini is also the cheaper one there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tela_core import InputError, Record
from tela_core.data.records import check_text, iter_jsonl
from tela_plugins.outcomes.common import OutcomeOptions, OutcomeSource, clip01, is_number, read_price_object

__all__ = ["RouterArenaSource", "RouterArenaOptions"]

COST_FILE = "cost.json"


class RouterArenaOptions(OutcomeOptions):
    weak_model: str | None = "claude-3-haiku-20240307"
    """Weak model (a file name without .jsonl)."""
    strong_model: str | None = "gemini-2.0-flash-001"
    """Strong model (a file name without .jsonl)."""


def _load_cost_table(path: Path) -> dict[str, tuple[float, float]]:
    data = read_price_object(path)
    table: dict[str, tuple[float, float]] = {}
    for model, p in data.items():
        if isinstance(p, dict):
            i, o = p.get("input_token_price_per_million"), p.get("output_token_price_per_million")
            if is_number(i) and is_number(o):
                table[model] = (float(i), float(o))
    return table


class RouterArenaSource(OutcomeSource):
    """RouterArena results: a folder of <model>.jsonl with evaluation_result{score, inference_cost}."""

    name = "routerarena"
    description = "RouterArena folder: <model>.jsonl per model (score, inference_cost) + cost.json"
    Options = RouterArenaOptions
    #: records may lack some models (a router between two models trains on those with its pair:
    #: tela_core.data.mix.read_part)
    partial_outcomes = True

    def _files(self, path: Path) -> list[Path]:
        if not path.exists():
            raise InputError(path, None, "folder not found")
        if not path.is_dir():
            raise InputError(path, None, "expected a RouterArena folder (one <model>.jsonl per model and cost.json)")
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if len(files) < 2:
            raise InputError(path, None, f"expected at least two <model>.jsonl files, found {len(files)}")
        return files

    def _read_model(
        self, path: Path, prices: tuple[float, float] | None
    ) -> tuple[dict[str, tuple[str, float, float | None]], list[str]]:
        """{global_index: (question, outcome, cost)} and the indices in file order."""
        rows: dict[str, tuple[str, float, float | None]] = {}
        order: list[str] = []
        for line, obj in iter_jsonl(path):
            if not isinstance(obj, dict):
                raise InputError(path, line, f"expected a JSON object, got {type(obj).__name__}")
            gid = obj.get("global_index")
            if not isinstance(gid, (str, int)) or isinstance(gid, bool) or str(gid) == "":
                raise InputError(path, line, 'missing "global_index" (a string)')
            gid = str(gid)
            if gid in rows:
                raise InputError(path, line, f"duplicate global_index {gid!r}")
            q = obj.get("question")
            if not isinstance(q, str) or not q.strip():
                raise InputError(path, line, 'missing or empty "question"')
            check_text(q, path, line, '"question"')
            ev = obj.get("evaluation_result")
            if not isinstance(ev, dict) or not is_number(ev.get("score")):
                raise InputError(path, line, 'missing "evaluation_result" with a numeric "score"')
            cost = ev.get("inference_cost")
            if cost is not None and (not is_number(cost) or cost < 0):
                raise InputError(path, line, f'"inference_cost" must be a number >= 0, got {cost!r}')
            if cost is None and prices is not None:
                cost = self._cost_from_usage(obj.get("token_usage"), prices)
            rows[gid] = (q, clip01(ev["score"]), None if cost is None else float(cost))
            order.append(gid)
        return rows, order

    @staticmethod
    def _cost_from_usage(usage: Any, prices: tuple[float, float]) -> float | None:
        if not isinstance(usage, dict):
            return None
        i, o = usage.get("input_tokens"), usage.get("output_tokens")
        if not (is_number(i) and is_number(o)):
            return None
        return (i * prices[0] + o * prices[1]) / 1e6

    def read(self, path: Path) -> Iterator[Record]:
        path = Path(path)
        files = self._files(path)
        cost_file = path / COST_FILE
        table = _load_cost_table(cost_file) if cost_file.is_file() else {}
        models = [f.stem for f in files]
        pair = self.pair(models, path)
        per_model = {}
        order: list[str] = []  # the first file's prompts in its order, then those first met later
        known: set[str] = set()
        for f in files:
            rows, ids = self._read_model(f, table.get(f.stem))
            per_model[f.stem] = rows
            order += [g for g in ids if g not in known]
            known.update(ids)
        answered = {g: [m for m in models if g in per_model[m]] for g in order}
        # one model's outcome says nothing about which model to choose: such a prompt is skipped
        kept = [g for g in order if len(answered[g]) >= 2]
        self.stats = {
            "models": len(models),
            "missing_some_models": sum(len(answered[g]) < len(models) for g in kept),
            "skipped_answered_by_one_model": len(order) - len(kept),
        }
        for gid in kept:
            have = answered[gid]
            question = per_model[have[0]][gid][0]
            outcomes = {m: per_model[m][gid][1] for m in have}
            costs = {m: c for m in have if (c := per_model[m][gid][2]) is not None}
            group = gid.rsplit("_", 1)[0] if "_" in gid else None
            yield self.make_record(question, outcomes, pair, costs=costs or None, group=group, id=gid)

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir() or not (path / COST_FILE).is_file():
            return False
        for f in sorted(path.glob("*.jsonl")):
            try:
                with f.open(encoding="utf-8") as fh:
                    first = json.loads(fh.readline())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return False
            return isinstance(first, dict) and "global_index" in first and "evaluation_result" in first
        return False
