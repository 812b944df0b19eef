"""Fetch a catalogued dataset into the cache: resumable HTTP downloads, checksums, one manifest.

:func:`fetch` is what ``tela data get NAME`` runs. Every file of a
:class:`~tela_core.data.catalogue.DatasetEntry` is downloaded (or, with ``from_dir``, copied from a
folder the user filled by hand) into a staging folder ``<cache>/datasets/.incoming/NAME``, then
checked against its SHA-256; only when every file is present and verified does the staging folder
become ``<cache>/datasets/NAME`` (one rename), with a ``tela-dataset.json`` manifest recording the
origin, license, revision and checksums. So:

- a download cut short keeps its ``.part`` file in staging and the next ``get`` resumes it with an
  HTTP ``Range`` request;
- a checksum mismatch removes the staging folder: nothing of that dataset is left in the cache;
- without network, the error says in one line what to download by hand and to pass ``--from DIR``.

The cache is :func:`tela_core.models.resolve.cache_root` (``$TELA_CACHE``, default ``~/.cache/tela``).
Nothing here imports more than the standard library and rich.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tela_core.data.catalogue import DatasetEntry, RemoteFile
from tela_core.infra.errors import TelaError
from tela_core.infra.io import dumps_json
from tela_core.infra.locks import cache_lock
from tela_core.infra.progress import make_progress
from tela_core.models.resolve import cache_root

__all__ = [
    "MANIFEST",
    "FetchResult",
    "datasets_dir",
    "dataset_dir",
    "installed",
    "fetch",
    "download_file",
    "sha256_file",
    "DownloadError",
    "NetworkError",
    "ChecksumError",
]

#: the manifest a fetched dataset folder carries
MANIFEST = "tela-dataset.json"
_CHUNK = 1 << 16
_TIMEOUT = float(os.environ.get("TELA_DOWNLOAD_TIMEOUT", "30"))


class DownloadError(TelaError):
    """A download that did not complete (server error, connection lost mid-file)."""


class NetworkError(DownloadError):
    """The origin could not be reached at all (no network, DNS failure, refused connection)."""


class ChecksumError(TelaError):
    """A file whose SHA-256 differs from the catalogue's; nothing of the dataset is kept."""


@dataclass
class FetchResult:
    """Where a fetched dataset lies and what :func:`fetch` did."""

    entry: DatasetEntry
    path: Path
    manifest: dict[str, Any]
    fetched: bool  # False: it was already in the cache

    @property
    def data_path(self) -> Path:
        """What to pass as ``--data`` (the entry's ``data`` inside the folder)."""
        return self.path / self.entry.data if self.entry.data not in ("", ".") else self.path


def datasets_dir() -> Path:
    """``<cache>/datasets``, where fetched datasets live."""
    return cache_root() / "datasets"


def dataset_dir(name: str) -> Path:
    """The folder dataset ``name`` is (or would be) fetched into."""
    return datasets_dir() / name


def installed(entry: DatasetEntry) -> dict[str, Any] | None:
    """The manifest of ``entry`` when it is complete in the cache, else None."""
    manifest = dataset_dir(entry.name) / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") or {}
    if not all((dataset_dir(entry.name) / f.path).is_file() for f in entry.files) or set(files) != {
        f.path for f in entry.files
    }:
        return None
    return data


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# One file over HTTP, resumable
# ------------------------------------------------------------------------------------------------


def _offline_for(url: str) -> bool:
    """Whether the user asked for no network for this URL (the Hugging Face offline switch)."""
    host = url.split("/")[2] if "//" in url else ""
    hub_off = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return hub_off and host.endswith("huggingface.co")


def download_file(
    url: str,
    part: Path,
    *,
    size: int | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    timeout: float = _TIMEOUT,
) -> dict[str, str]:
    """Download ``url`` into ``part``, appending to what ``part`` already holds (HTTP ``Range``).

    Returns the interesting response headers (``x-repo-commit``, ``etag``). A server that ignores
    the range (200 instead of 206) restarts the file. Raises :class:`NetworkError` when the host
    cannot be reached and :class:`DownloadError` when the transfer breaks; ``part`` keeps what
    arrived, so a second call resumes.
    """
    if _offline_for(url):
        raise NetworkError(f"HF_HUB_OFFLINE is set, so {url} is not fetched")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "tela-data-get", "Accept-Encoding": "identity"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and (size is None or have == size):
            return {}  # the part is already whole
        raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        raise NetworkError(f"cannot reach {url.split('/')[2]} ({reason})") from None
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        if status == 206:
            total = _total_from_range(resp.headers.get("Content-Range"), have, length)
            mode = "ab"
        else:
            have, mode = 0, "wb"
            total = int(length) if length and length.isdigit() else size
        headers = {k: resp.headers.get(k) for k in ("X-Repo-Commit", "ETag") if resp.headers.get(k)}
        done = have
        if on_progress:
            on_progress(done, total)
        try:
            with open(part, mode) as out:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    if on_progress:
                        on_progress(done, total)
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            raise DownloadError(_stopped(url, done, total, e)) from None
        if total is not None and done < total:
            raise DownloadError(_stopped(url, done, total, "connection closed early"))
    return {k.lower(): v for k, v in headers.items()}


def _total_from_range(content_range: str | None, have: int, length: str | None) -> int | None:
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return have + int(length) if length and length.isdigit() else None


def _stopped(url: str, done: int, total: int | None, why: Any) -> str:
    of = f" of {total:,}" if total else ""
    return f"download of {url} stopped after {done:,}{of} bytes ({why}); run the same command again to resume it"


# ------------------------------------------------------------------------------------------------
# A whole dataset
# ------------------------------------------------------------------------------------------------


def _find_local(f: RemoteFile, from_dir: Path) -> Path | None:
    """The copy of ``f`` in a hand-filled folder: by its path, its file name, or its origin's name."""
    for cand in (from_dir / f.path, from_dir / Path(f.path).name, from_dir / f.remote_name):
        if cand.is_file():
            return cand
    return None


def manual_hint(entry: DatasetEntry) -> str:
    """What to download by hand, in a phrase (the entry's ``manual`` or its URLs)."""
    if entry.manual:
        return entry.manual
    urls = [f.url for f in entry.files]
    shown = ", ".join(urls[:3]) + (f" and {len(urls) - 3} more" if len(urls) > 3 else "")
    return shown


def fetch(
    entry: DatasetEntry,
    *,
    from_dir: Path | None = None,
    force: bool = False,
    progress: bool | None = None,
    echo: Callable[[str], None] = lambda m: None,
) -> FetchResult:
    """Put ``entry``'s files into the cache (downloaded, or copied from ``from_dir``) and verify them.

    Already complete and not ``force``: nothing is fetched. Raises :class:`NetworkError` (one line
    naming what to download by hand and ``--from DIR``), :class:`DownloadError` (a transfer cut
    short; the next call resumes it) or :class:`ChecksumError` (nothing is left in the cache).
    """
    final = dataset_dir(entry.name)
    have = installed(entry)
    if have is not None and not force:
        return FetchResult(entry, final, have, fetched=False)

    final.parent.mkdir(parents=True, exist_ok=True)
    # two `get`s of one dataset would append to the same .part files: the second waits, then finds it done
    with cache_lock(final, on_wait=lambda holder: echo(f"waiting for {holder}, which is fetching {entry.name}")):
        have = installed(entry)
        if have is not None and not force:
            return FetchResult(entry, final, have, fetched=False)
        return _fetch_locked(entry, final, from_dir, progress, echo)


def _fetch_locked(
    entry: DatasetEntry, final: Path, from_dir: Path | None, progress: bool | None, echo: Callable[[str], None]
) -> FetchResult:
    """:func:`fetch` once the dataset's lock is held."""
    if from_dir is not None:
        from_dir = Path(from_dir).expanduser()
        if not from_dir.is_dir():
            raise TelaError(f"{from_dir}: --from must be a folder holding the files of {entry.name}")
    staging = datasets_dir() / ".incoming" / entry.name
    staging.mkdir(parents=True, exist_ok=True)
    try:
        files, resolved = _fill(entry, staging, from_dir, progress, echo)
    except BaseException:
        if staging.is_dir() and not any(p.is_file() for p in staging.rglob("*")):
            shutil.rmtree(staging, ignore_errors=True)  # nothing arrived: leave no trace
        raise
    manifest = {
        "name": entry.name,
        "origin": entry.origin,
        "license": entry.license,
        "revision": entry.revision,
        "resolved_revision": sorted(resolved)[0] if len(resolved) == 1 else (sorted(resolved) or None),
        "source": entry.source,
        "data": entry.data,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    (staging / MANIFEST).write_text(dumps_json(manifest, indent=2) + "\n", encoding="utf-8")
    _promote(staging, final)
    return FetchResult(entry, final, manifest, fetched=True)


def _fill(
    entry: DatasetEntry, staging: Path, from_dir: Path | None, progress: bool | None, echo: Callable[[str], None]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Download or copy every file of ``entry`` into ``staging`` and verify it: (files, resolved commits)."""
    files: dict[str, dict[str, Any]] = {}
    resolved: set[str] = set()
    bar = _progress(progress)
    with bar:
        for f in entry.files:
            target = staging / f.path
            part = target.with_name(target.name + ".part")
            if from_dir is not None:
                src = _find_local(f, from_dir)
                if src is None:
                    raise TelaError(
                        f"{from_dir}: no {f.path} (nor {Path(f.path).name} or {f.remote_name}) for dataset "
                        f"{entry.name}; download it from {f.url}"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, part)
                origin = str(src)
            elif not target.is_file():
                task = bar.add_task(f.path, total=f.size)
                try:
                    headers = download_file(
                        f.url,
                        part,
                        size=f.size,
                        on_progress=partial(_show_progress, bar, task),
                    )
                except NetworkError as e:
                    raise NetworkError(
                        f"{e}: download {entry.name} by hand ({manual_hint(entry)}) into a folder DIR, "
                        f"then run `tela data get {entry.name} --from DIR`"
                    ) from None
                if headers.get("x-repo-commit"):
                    resolved.add(headers["x-repo-commit"])
                origin = f.url
            else:
                origin = f.url
            if part.exists():
                digest = _verify(entry, f, part, staging)
                part.replace(target)
            else:
                digest = _verify(entry, f, target, staging)
            files[f.path] = {
                "sha256": digest,
                "size": target.stat().st_size,
                "from": origin,
                "checksum": "verified" if f.sha256 else "recorded on first download (no published checksum)",
            }
            if not f.sha256:
                echo(f"note: {f.path} has no published checksum; recorded sha256 {digest}")
    return files, resolved


def _verify(entry: DatasetEntry, f: RemoteFile, path: Path, staging: Path) -> str:
    digest = sha256_file(path)
    if f.sha256 and digest != f.sha256:
        shutil.rmtree(staging, ignore_errors=True)
        raise ChecksumError(
            f"{entry.name}: {f.path} has sha256 {digest}, the catalogue expects {f.sha256}; "
            "nothing was kept (a changed upstream file, or a broken download)"
        )
    return digest


def _promote(staging: Path, final: Path) -> None:
    """Replace ``final`` with ``staging`` in as few steps as a file system allows (old copy aside, rename)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _progress(enabled: bool | None) -> Any:
    """A rich byte-progress bar on stderr (when stderr is a terminal), or a no-op with its methods."""
    import sys

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return make_progress(False)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _show_progress(bar: Any, task: Any, done: int, total: int | None) -> None:
    bar.update(task, completed=done, total=total)
