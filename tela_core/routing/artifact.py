"""Router artifacts: a directory that says what it is.

``tela.json`` (the manifest) names the scorer family that reads the directory, the formatter that
built its prompts, the base model, the data, the run config and the plugin versions. ``policy.json``
holds the routing policy chosen for it (name, options, models ordered cheap → strong).
:class:`tela_core.routing.router.Router` is what loads one.
Weights and tokenizer sit beside them in whatever layout the scorer family uses (for
``score-token``: a Hugging Face model dir loadable with ``from_pretrained``).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from tela_core.infra.errors import TelaError
from tela_core.infra.io import atomic_write_json
from tela_core.plugins.discovery import get_registry

__all__ = [
    "MANIFEST",
    "POLICY",
    "FORMAT_VERSION",
    "write_manifest",
    "read_manifest",
    "write_policy",
    "read_policy",
    "plugin_versions",
    "router_version",
]

MANIFEST = "tela.json"
POLICY = "policy.json"
FORMAT_VERSION = 1
DEFAULT_MODELS = ["weak", "strong"]


def plugin_versions() -> dict[str, str]:
    """Distribution -> version for tela and every loaded plugin distribution."""
    out = {"tela": md.version("tela")}
    for info in get_registry().plugins.values():
        if info.dist and info.version:
            out[info.dist] = info.version
    return out


def write_manifest(artifact_dir: str | Path, *, scorer: str, **fields: Any) -> dict[str, Any]:
    """Write ``tela.json`` into ``artifact_dir`` (atomically) and return it."""
    manifest = {
        "tela_artifact": FORMAT_VERSION,
        "scorer": scorer,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "plugins": plugin_versions(),
        **fields,
    }
    atomic_write_json(Path(artifact_dir) / MANIFEST, manifest)
    return manifest


def read_manifest(artifact_dir: str | Path) -> dict[str, Any]:
    """Read and check ``tela.json``; a clear :class:`TelaError` if the dir is not a router."""
    d = Path(artifact_dir)
    if not d.is_dir():
        raise TelaError(f"{d}: router directory not found")
    p = d / MANIFEST
    if not p.exists() and (d / "versions.json").is_file():  # a versions folder (tela_core.routing.versions)
        try:
            current = json.loads((d / "versions.json").read_text(encoding="utf-8")).get("current")
        except (ValueError, OSError, AttributeError):
            current = None
        now = f"; the current one is {d / current}" if isinstance(current, str) and current else ""
        raise TelaError(f"{d}: a folder of router versions (tela promote): name one of its versions{now}")
    if not p.exists():
        raise TelaError(f"{d}: not a tela router (no {MANIFEST}); train one with `tela run`")
    try:
        manifest = json.loads(p.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError, OSError) as e:  # bad JSON or UTF-8, too deep, unreadable
        said = " ".join(str(e).split()) or type(e).__name__
        raise TelaError(f"{p}: unreadable manifest: {said[:200]}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("scorer"), str):
        raise TelaError(f"{p}: manifest has no 'scorer' name")
    version = manifest.get("tela_artifact")
    if type(version) is not int or version < 1:
        raise TelaError(
            f"{p}: 'tela_artifact' must be a format version number (this tela reads {FORMAT_VERSION}), got {version!r}"
        )
    if version > FORMAT_VERSION:
        raise TelaError(f"{p}: router format {version} is newer than this tela reads ({FORMAT_VERSION}); upgrade tela")
    return manifest


def router_version(artifact_dir: str | Path) -> str:
    """A short id of the trained router in ``artifact_dir``: the SHA-256 of its ``tela.json``
    (which records when it was trained, on what and how), first 12 hex digits. Retraining changes
    it; recalibrating (``policy.json``) does not. ``tela serve`` writes it into the decision log."""
    import hashlib

    p = Path(artifact_dir) / MANIFEST
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    except OSError as e:
        raise TelaError(f"{p}: unreadable manifest: {e.strerror or e}") from None


def write_policy(
    artifact_dir: str | Path,
    name: str,
    options: dict[str, Any],
    models: list[str] | None = None,
    operating_point: dict[str, Any] | None = None,
) -> None:
    """Save the routing policy beside the artifact; ``operating_point`` is how ``tela run`` chose
    it (:class:`tela_core.routing.operating_point.OperatingPoint`), kept until the policy is replaced."""
    spec: dict[str, Any] = {"name": name, "options": options, "models": models or DEFAULT_MODELS}
    if operating_point is not None:
        spec["operating_point"] = operating_point
    atomic_write_json(Path(artifact_dir) / POLICY, spec)


def read_policy(artifact_dir: str | Path) -> dict[str, Any]:
    """The saved policy, or the default (``threshold`` at 0.5 over weak/strong)."""
    p = Path(artifact_dir) / POLICY
    if not p.exists():
        return {"name": "threshold", "options": {"threshold": 0.5}, "models": DEFAULT_MODELS}
    try:
        spec = json.loads(p.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError, OSError) as e:  # bad JSON or UTF-8, too deep, unreadable
        said = " ".join(str(e).split()) or type(e).__name__
        raise TelaError(f"{p}: unreadable policy: {said[:200]}") from None
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("name", "threshold"), str)
        or not isinstance(spec.get("options") or {}, dict)
    ):
        raise TelaError(f"{p}: expected an object with a policy 'name', its 'options' and 'models'")
    return spec


def __getattr__(name: str) -> Any:
    """``load_router``, deprecated (tela 0.1's loader), lives in :mod:`tela_core.routing.deprecated`
    beside the :class:`~tela_core.routing.router.Router` it calls. It is looked up by name when used:
    router.py imports this module, so importing that one here would close a circle."""
    if name == "load_router":
        return importlib.import_module("tela_core.routing.deprecated").load_router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
