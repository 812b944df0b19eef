"""Cheap column sniffing (no ``datasets`` import) so ``--source`` can be detected from a path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["columns_of"]


def columns_of(path: Path) -> set[str] | None:
    """Column names of a parquet/CSV/JSONL file or a save_to_disk/parquet folder; None if unknown."""
    try:
        if path.is_dir():
            return _folder_columns(path)
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return set(pq.read_schema(path).names)
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                return set(next(csv.reader(fh), []))
        if suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                obj = json.loads(fh.readline() or "null")
            return set(obj) if isinstance(obj, dict) else None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, ImportError):
        return None
    except Exception:  # pyarrow's ArrowInvalid for a broken parquet file: not ours to report here
        return None
    return None


def _folder_columns(path: Path) -> set[str] | None:
    info = path / "dataset_info.json"
    if not info.is_file() and (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits") or []
        info = path / splits[0] / "dataset_info.json" if splits else info
    if info.is_file():
        features = json.loads(info.read_text(encoding="utf-8")).get("features") or {}
        return set(features)
    for f in sorted(path.glob("*.parquet")) + sorted(path.glob("*/*.parquet")):
        return columns_of(f)
    return None
