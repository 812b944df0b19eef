"""``routerbench``: RouterBench's per-model outcomes and costs (N models), for ``tela eval --all-models``.

Written against ``withmartian/routerbench``'s ``routerbench_0shot.pkl`` (a pandas DataFrame, one
row per prompt; 36,497 rows, 11 models): ``sample_id`` (e.g. ``mmlu-astronomy.val.5``), ``prompt``
(a list of turns, or its string form ``"['...']"``), ``eval_name`` (the benchmark: the group), one
quality column per model (0..1; MT-Bench ratings rescaled), ``<model>|model_response``,
``<model>|total_cost`` ($ for that prompt) and ``oracle_model_to_route_to``. The models are the
columns that have a ``|total_cost`` twin.

A pickle can run arbitrary code when it is loaded, so this source opens a ``.pkl`` only when the
user says so: ``--set source.allow_pickle=true`` or ``TELA_ALLOW_PICKLE=1`` for commands without
``--set``. Better: convert it once (``TELA_ALLOW_PICKLE=1 tela data convert routerbench_0shot.pkl
routerbench.jsonl --source routerbench``) and use the JSONL, or keep the same columns in a
parquet/CSV/JSON file, which this source reads through ``datasets`` without the flag.

Labels for the seed's router use the weak/strong outcome mapping; the default pair is RouteLLM's
(``mistralai/mixtral-8x7b-chat`` weak, ``gpt-4-1106-preview`` strong).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tela_core import InputError, Record, Source
from tela_core.data.labels import OutcomeOptions, label_for
from tela_core.data.records import seed_record
from tela_core.infra.errors import PairModelError
from tela_plugins.hf.hf import as_cost, as_outcome
from tela_plugins.hf.load import DatasetRowError, Opened, open_split

__all__ = ["RouterBenchSource", "RouterBenchOptions", "COST_SUFFIX", "pickle_allowed"]

COST_SUFFIX = "|total_cost"
PICKLE_ENV = "TELA_ALLOW_PICKLE"


def pickle_allowed(option: bool) -> bool:
    """The user's explicit consent to unpickle: the option, or ``TELA_ALLOW_PICKLE=1``."""
    return option or os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


class RouterBenchOptions(OutcomeOptions):
    weak_model: str | None = "mistralai/mixtral-8x7b-chat"
    """Weak model column (label mapping)."""
    strong_model: str | None = "gpt-4-1106-preview"
    """Strong model column (label mapping)."""
    split: str = "train"
    """Split, for parquet/CSV/JSON files and hub ids (a pickle has none)."""
    allow_pickle: bool = False
    """Open a .pkl file (pickles can run code: only for files you trust). Or TELA_ALLOW_PICKLE=1."""


class _Frame:
    """A pandas DataFrame behind the same face as :class:`~tela_plugins.hf.load.Opened`."""

    def __init__(self, df: Any, name: str) -> None:
        self.df, self.name, self.split = df, name, "all"
        self.columns = [str(c) for c in df.columns]

    def __len__(self) -> int:
        return len(self.df)

    def rows(self, columns: Any = None) -> Iterator[dict[str, Any]]:
        cols = [c for c in (columns or self.columns) if c in self.columns]
        for values in self.df[cols].itertuples(index=False, name=None):
            yield dict(zip(cols, values))

    def error(self, row: int, message: str) -> DatasetRowError:
        return DatasetRowError(self.name, self.split, row, message)


def _prompt_text(value: Any) -> str | None:
    """The question: a string, a list of turns (joined), or a string holding a Python list literal."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                parsed = ast.literal_eval(s)  # literals only: no code runs
            except (ValueError, SyntaxError):
                return s or None
            value = parsed
        else:
            return s or None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        turns = [str(t).strip() for t in value if isinstance(t, str) and t.strip()]
        return "\n\n".join(turns) or None
    return None


class RouterBenchSource(Source):
    """RouterBench: per-model quality and $ cost columns (<model>, <model>|total_cost), N models."""

    name = "routerbench"
    description = (
        "RouterBench (routerbench_0shot): <model> quality and <model>|total_cost per prompt; group = eval_name"
    )
    Options = RouterBenchOptions
    reads_hub_ids = True

    def _open(self, path: Path) -> Any:
        p = Path(path)
        if p.suffix.lower() == ".pkl":
            if not p.is_file():
                raise InputError(p, None, "file not found")
            if not pickle_allowed(self.options.allow_pickle):
                raise InputError(
                    p,
                    None,
                    "a pickle can run code when it is loaded, so tela opens one only if you trust it: rerun with "
                    f"{PICKLE_ENV}=1 (or --set source.allow_pickle=true), or convert it once with "
                    f"`{PICKLE_ENV}=1 tela data convert {p.name} routerbench.jsonl --source routerbench`",
                )
            import pandas as pd

            try:
                df = pd.read_pickle(p)
            except Exception as e:
                raise InputError(p, None, f"cannot be read as a pandas pickle: {type(e).__name__}: {e}") from None
            if not hasattr(df, "columns"):
                raise InputError(p, None, f"expected a pandas DataFrame, got {type(df).__name__}")
            return _Frame(df, str(p))
        return open_split(p, split=self.options.split)

    def read(self, path: Path) -> Iterator[Record]:
        data = self._open(path)
        models = [c for c in data.columns if not c.endswith(COST_SUFFIX) and f"{c}{COST_SUFFIX}" in data.columns]
        if len(models) < 2:
            raise InputError(
                data.name,
                None,
                f"expected '<model>' and '<model>{COST_SUFFIX}' columns for at least two "
                f"models; columns: {', '.join(data.columns[:12])}",
            )
        if "prompt" not in data.columns:
            raise InputError(data.name, None, f"no column 'prompt'; columns: {', '.join(data.columns[:12])}")
        o = self.options
        pair = None
        if o.weak_model and o.strong_model:
            missing = [(r, m) for r, m in (("weak", o.weak_model), ("strong", o.strong_model)) if m not in models]
            if missing:
                role, name = missing[0]
                raise PairModelError(
                    data.name, role, f"{role} model {name!r} is not in the data; models: {', '.join(models)}"
                )
            pair = (o.weak_model, o.strong_model)
        self.stats = {"models": len(models), "rows": len(data)}
        extra = [c for c in ("sample_id", "eval_name") if c in data.columns]
        cols = ["prompt", *extra, *models, *(f"{m}{COST_SUFFIX}" for m in models)]
        for i, row in enumerate(data.rows(cols)):
            prompt = _prompt_text(row["prompt"])
            if prompt is None:
                raise data.error(i, f"prompt must be text or a list of turns, got {row['prompt']!r:.40}")
            outcomes: dict[str, float] = {}
            costs: dict[str, float] = {}
            for m in models:
                q, c = as_outcome(row[m]), as_cost(row[f"{m}{COST_SUFFIX}"])
                if q is None:
                    raise data.error(i, f"column {m!r}: expected a quality in [0, 1], got {row[m]!r}")
                if c is None:
                    raise data.error(
                        i, f"column {m + COST_SUFFIX!r}: expected a cost >= 0, got {row[m + COST_SUFFIX]!r}"
                    )
                outcomes[m], costs[m] = q, c
            label = label_for(outcomes[pair[0]], outcomes[pair[1]], o) if pair else None
            group = row.get("eval_name")
            rid = row.get("sample_id")
            yield seed_record(
                prompt,
                label,
                outcomes=outcomes,
                costs=costs,
                group=None if group is None else str(group),
                id=f"{data.split}/{i}" if rid is None else str(rid),
            )

    def sniff(self, path: Path) -> bool:
        """A .pkl file (so the pickle rule is explained), or data with '<model>|total_cost' columns."""
        p = Path(path)
        if p.suffix.lower() == ".pkl" and p.is_file():
            return True
        from tela_plugins.hf.sniff import columns_of  # start-up: `tela --help` need not load hf.sniff (~4 ms)

        cols = columns_of(p) or set()
        return any(c.endswith(COST_SUFFIX) for c in cols)


_ = Opened  # the parquet/CSV path returns an Opened; both share rows()/error()/columns/name/split
