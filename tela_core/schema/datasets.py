"""The catalogue of public router datasets that ``tela data get`` fetches.

A plugin adds entries through the ``tela_register_datasets`` hook by calling ``register`` with a
:class:`DatasetEntry`: where the data comes from (``origin``), under which ``license``, at which
``revision`` of its repository, and the files to fetch, each with its URL and SHA-256. A file whose
checksum could not be verified when the entry was written has ``sha256=None``: ``tela data get``
then computes it on the first download and records it in the dataset's manifest, and says so.

The fetching itself is :mod:`tela_core.data.download`; this module holds only the entry shapes and their
validation, below the plugin registry that checks each entry a plugin registers. Plugins import them
from :mod:`tela_core.data.catalogue`, their public home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

__all__ = ["RemoteFile", "DatasetEntry", "validate_entry"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    ``path`` is where it goes inside the dataset's folder (a relative POSIX path); ``url`` is where
    it is downloaded from; ``sha256`` is its published or verified checksum (None: unknown, computed
    and recorded on the first download); ``size`` is its size in bytes when known.
    """

    path: str
    url: str
    sha256: str | None = None
    size: int | None = None

    @property
    def remote_name(self) -> str:
        """The file name at its origin (the last part of the URL path)."""
        return PurePosixPath(self.url.split("?", 1)[0]).name


@dataclass(frozen=True)
class DatasetEntry:
    """A public dataset ``tela data get NAME`` can fetch into the cache.

    ``source`` names the tela data source that reads it and ``data`` the path (inside the dataset
    folder) to pass as ``--data``; ``manual`` tells a user without network, in a phrase, which
    files to download by hand (default: the file URLs).
    """

    name: str
    description: str
    origin: str
    license: str
    revision: str | None
    files: tuple[RemoteFile, ...]
    source: str | None = None
    data: str = "."
    manual: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The entry as ``tela data list --json`` prints it."""
        return {
            "name": self.name,
            "description": self.description,
            "origin": self.origin,
            "license": self.license,
            "revision": self.revision,
            "source": self.source,
            "data": self.data,
            "note": self.note,
            "files": [{"path": f.path, "url": f.url, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def validate_entry(entry: Any) -> DatasetEntry:
    """Check an entry a plugin registers; raise :class:`TypeError`/:class:`ValueError` naming the fault."""
    if not isinstance(entry, DatasetEntry):
        raise TypeError(f"register() expects a tela_core.data.catalogue.DatasetEntry, got {entry!r}")
    if not _NAME.match(entry.name or ""):
        raise ValueError(f"dataset name {entry.name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if not entry.files:
        raise ValueError(f"dataset {entry.name!r} lists no files")
    seen: set[str] = set()
    for f in entry.files:
        p = PurePosixPath(f.path)
        if not f.path or p.is_absolute() or ".." in p.parts or f.path.startswith("."):
            raise ValueError(f"dataset {entry.name!r}: file path {f.path!r} must be relative, without '..'")
        if f.path in seen:
            raise ValueError(f"dataset {entry.name!r}: file path {f.path!r} is listed twice")
        seen.add(f.path)
        if not f.url.startswith(("https://", "http://")):
            raise ValueError(f"dataset {entry.name!r}: {f.path}: URL {f.url!r} is not http(s)")
        if f.sha256 is not None and not _SHA256.match(f.sha256):
            raise ValueError(f"dataset {entry.name!r}: {f.path}: sha256 must be 64 lower-case hex digits or None")
    return entry
