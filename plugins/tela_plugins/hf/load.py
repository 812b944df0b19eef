"""Opening anything ``datasets.load_dataset`` can open, and locating bad rows.

:func:`open_split` turns ``--data`` into one split of a :class:`datasets.Dataset`:

- a folder written by ``save_to_disk`` (``Dataset`` or ``DatasetDict``): ``load_from_disk``;
- any other folder: ``load_dataset(folder)`` (data files found by name, e.g. ``train.parquet``);
- a ``.parquet``, ``.json``/``.jsonl`` or ``.csv`` file: the matching packaged builder;
- anything else that looks like ``org/name``: a Hugging Face hub id, with ``config``, ``split`` and
  ``revision``, through the Hugging Face cache. With ``HF_HUB_OFFLINE=1`` (or no network) a hub id
  loads only from that cache, and a miss is one clear line.

A pickle is never opened here (``.pkl`` files can run code when loaded). Errors about one row are
:class:`DatasetRowError`: ``DATASET (split SPLIT): row N: what is wrong`` (N counts from 0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tela_core import InputError, TelaError

__all__ = ["DatasetRowError", "Opened", "open_split", "require_columns", "is_hub_id", "FILE_BUILDERS"]

#: file suffix -> datasets packaged builder
FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class DatasetRowError(InputError):
    """A bad row, located by dataset, split and 0-based row index."""

    def __init__(self, dataset: str, split: str, row: int, message: str) -> None:
        self.dataset = dataset
        self.split = split
        self.row = row
        super().__init__(f"{dataset} (split {split})", None, f"row {row}: {message}")


class Opened:
    """One split of a dataset: its rows, column names, and how to name it in an error."""

    def __init__(self, ds: Any, name: str, split: str) -> None:
        self.ds = ds
        self.name = name
        self.split = split
        self.columns: list[str] = list(ds.column_names)

    def __len__(self) -> int:
        return len(self.ds)

    def rows(self, columns: Iterable[str] | None = None) -> Iterable[dict[str, Any]]:
        """The rows as dicts (only ``columns`` when given: cheaper for wide data)."""
        ds = self.ds
        if columns is not None:
            keep = [c for c in dict.fromkeys(columns) if c in self.columns]
            ds = ds.select_columns(keep)
        return iter(ds)

    def error(self, row: int, message: str) -> DatasetRowError:
        return DatasetRowError(self.name, self.split, row, message)


def is_hub_id(location: str) -> bool:
    """Whether ``location`` (not an existing path) reads as a hub dataset id like ``org/name``."""
    return bool(_HUB_ID.match(location)) and Path(location).suffix.lower() not in (*FILE_BUILDERS, ".pkl")


def require_columns(opened: Opened, wanted: dict[str, str | None]) -> None:
    """Every named column exists; else one error listing the dataset's columns.

    ``wanted`` maps the option that names a column (``prompt_column``) to the column name.
    """
    for option, col in wanted.items():
        if col is not None and col not in opened.columns:
            raise InputError(
                f"{opened.name} (split {opened.split})",
                None,
                f"no column {col!r} ({option}); columns: {', '.join(opened.columns)}",
            )


def open_split(
    location: str | Path, *, split: str = "train", config: str | None = None, revision: str | None = None
) -> Opened:
    """The ``split`` of the dataset at ``location`` (module doc); errors name the dataset."""
    loc = str(location)
    p = Path(loc).expanduser()
    if p.exists():
        return _open_local(p, split, config)
    if p.suffix.lower() == ".pkl" or not is_hub_id(loc):
        raise InputError(p, None, "file not found")
    return _open_hub(loc, split, config, revision)


def _pick_split(obj: Any, name: str, split: str) -> Any:
    """``obj[split]`` for a DatasetDict; the dataset itself otherwise."""
    if isinstance(obj, dict):  # a DatasetDict
        splits = list(obj.keys())
        if split not in splits:
            raise TelaError(f"{name}: no split {split!r}; splits: {', '.join(splits)} (--set source.split=NAME)")
        return obj[split]
    return obj


def _quiet_unless_watched() -> None:
    """``datasets`` draws progress bars for every load; show them only on a terminal."""
    import sys

    import datasets

    if not sys.stderr.isatty():
        datasets.disable_progress_bars()


def _open_local(p: Path, split: str, config: str | None) -> Opened:
    import datasets

    _quiet_unless_watched()

    name = str(p)
    try:
        if p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file()):
            obj = datasets.load_from_disk(str(p))
            return Opened(_pick_split(obj, name, split), name, split)
        if p.is_dir():
            obj = datasets.load_dataset(str(p), name=config)
            return Opened(_pick_split(obj, name, split), name, split)
        builder = FILE_BUILDERS.get(p.suffix.lower())
        if builder is None:
            if p.suffix.lower() == ".pkl":
                raise InputError(p, None, "a pickle can run code when loaded; this source does not open pickles")
            raise InputError(
                p, None, f"cannot read {p.suffix or 'this file'}; expected {', '.join(FILE_BUILDERS)} or a folder"
            )
        obj = datasets.load_dataset(builder, data_files={split: str(p)}, split=split)
        return Opened(obj, name, split)
    except TelaError:
        raise
    except Exception as e:  # datasets raises many kinds (ArrowInvalid, DatasetGenerationError, ...)
        raise InputError(p, None, f"cannot be read as a dataset: {_first_line(e)}") from None


def _open_hub(hub_id: str, split: str, config: str | None, revision: str | None) -> Opened:
    import datasets

    _quiet_unless_watched()

    try:
        obj = datasets.load_dataset(hub_id, name=config, split=split, revision=revision)
    except ValueError as e:
        msg = _first_line(e)
        if "split" in msg.lower():
            raise TelaError(f"{hub_id}: {msg} (--set source.split=NAME)") from None
        raise TelaError(f"{hub_id}: {msg}") from None
    except Exception as e:
        from datasets import config as hf_config

        offline = bool(getattr(hf_config, "HF_HUB_OFFLINE", False))
        why = "offline (HF_HUB_OFFLINE=1) and not in the Hugging Face cache" if offline else _first_line(e)
        raise TelaError(
            f"{hub_id}: cannot load from the Hugging Face hub: {why}; load it once with network, "
            "or pass a local copy as --data (a folder, a save_to_disk folder, or parquet/JSON/CSV files)"
        ) from None
    return Opened(obj, hub_id, split)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
