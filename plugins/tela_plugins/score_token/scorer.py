"""The ``score-token`` router family: read a fine-tuned causal LM's score distribution in one pass.

The seed samples up to 1,024 tokens and parses ``[[k]]`` out of them: slow, unbounded when the
model drifts, and blind to the model's uncertainty. Here each prompt is formatted exactly as in
training (the seed's system prompt and ``[Question]`` template, rendered by the artifact's own
formatter), run through the model once, and the logits of the five score tokens at the last
prompt position are turned into probabilities (softmax over those five only). RouteLLM's
strong-model win rate is then ``w = 1 − (P[[4]] + P[[5]])``.

Batches are left-padded with explicit position ids, so a padded prompt scores the same as the
prompt alone, and only the last position's logits are computed (``logits_to_keep=1``). Every
prompt starts with the same template tokens (the system prompt and ``[Question]`` header, about
200 of a typical MMLU prompt's 330), so that prefix runs through the model once and its key/value
cache is reused by every batch (``prefix_cache``): only the question and the closing lines are
computed per prompt, the same numbers in about half the time on a CPU. Prompts
longer than ``max_length`` tokens lose text from the *start of the question*; the template (system
prompt, ``[Question]`` header, ``Prediction:`` and the assistant prefix) is always kept whole.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Scorer, Scores, TelaError
from tela_core.components import LoadContext
from tela_core.data.prompts import SCORE_TOKENS, score_token_ids

__all__ = ["ScoreTokenScorer", "ScoreTokenOptions", "remote_code_in"]


class ScoreTokenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    batch_size: int | None = Field(None, ge=1)
    """Prompts per forward pass (at most); unset: 16 on a GPU, 1 on a CPU, where a padded batch
    costs more per prompt than it saves (bench/score_token_speed.py)."""
    max_batch_tokens: int = Field(32768, ge=1)
    """Bound on prompts × padded length per forward pass, so long prompts come in smaller batches."""
    max_length: int = Field(2048, ge=8)
    """Longest prompt in tokens; longer ones are cut from the start of the question text."""
    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1', …"""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype: 'auto' is bfloat16 on a GPU that supports it, else float32."""
    prefix_cache: bool = True
    """Run the template's shared prefix (system prompt, question header) once and reuse its key/value
    cache for every prompt; the scores are the same, computed in less time."""


def remote_code_in(d: Path, manifest: Any) -> str | None:
    """What in the artifact asks for code of its own to run (``auto_map`` in its config or
    tokenizer config, or a run trained with ``--trust-remote-code``), or None."""
    import json

    for name in ("config.json", "tokenizer_config.json", "adapter_config.json"):
        p = d / name
        if not p.is_file():
            continue
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: the loader reports it
        if isinstance(obj, dict) and obj.get("auto_map"):
            return f"auto_map in {name}"
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    if manifest.get("trust_remote_code") or config.get("trust_remote_code"):
        return "trained with trust_remote_code"
    return None


class ScoreTokenScorer(Scorer):
    """One forward pass per prompt; softmax over the five score-token logits; w = 1 − P4 − P5."""

    name = "score-token"
    description = "causal LM fine-tuned to emit [[1]]..[[5]]: one forward pass, w = 1 - P([[4]]) - P([[5]])"
    Options = ScoreTokenOptions
    uses_backend = True

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.model: Any = None
        self.tokenizer: Any = None
        self.formatter: Any = None
        self.score_ids: list[int] = []
        self.device: Any = None
        self.artifact_dir: Path | None = None
        self._prefix_ids: list[int] | None = None
        self._prefix_caches: dict[int, Any] = {}
        self._prefix_lock = threading.Lock()
        self._cache_arg: str | None = None

    # -- loading ---------------------------------------------------------------------------------

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from tela_core import get_registry
        from tela_core.routing.artifact import read_manifest

        d = Path(artifact_dir)
        manifest = read_manifest(d)
        adapter_only = not (d / "config.json").is_file() and (d / "adapter_config.json").is_file()
        if not (d / "config.json").is_file() and not adapter_only:
            raise TelaError(
                f"{d}: no model in this router (config.json missing); a score-token router is a Hugging Face model dir"
            )
        trust = context.trust_remote_code  # the user's choice, never the artifact's
        if context.batch_size is not None:
            self.options = self.options.model_copy(update={"batch_size": context.batch_size})
        wants = remote_code_in(d, manifest)
        if wants and not trust:
            raise TelaError(
                f"{d}: this router's model ships its own Python code ({wants}); tela runs it only if you "
                f"allow it: pass --trust-remote-code (or set TELA_TRUST_REMOTE_CODE=1) if you trust this router"
            )
        try:
            tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=trust)
        except Exception as e:  # noqa: BLE001 - any loader failure is a broken artifact
            raise TelaError(f"{d}: cannot load the tokenizer: {type(e).__name__}: {e}") from None
        self.score_ids = score_token_ids(tok, str(d))
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else SCORE_TOKENS[0]
        tok.model_max_length = max(int(tok.model_max_length or 0), 10**9)  # tela truncates, not the tokenizer
        self.device = self._device()
        dtype = self._dtype(self.device)
        hf_logging.disable_progress_bar()
        try:
            if adapter_only:
                # `lora` with merge=false: a PEFT adapter over the base model the manifest names.
                from tela_core.train import load_merged

                base = (manifest.get("base_model") or {}).get("path")
                if not base or not Path(base).is_dir():
                    raise TelaError(f"{d}: a LoRA adapter whose base model ({base!r}) is not on this machine")
                model = load_merged(base, d, d, trust, dtype)
            else:
                model = AutoModelForCausalLM.from_pretrained(str(d), dtype=dtype, trust_remote_code=trust)
        except TelaError:
            raise
        except Exception as e:  # noqa: BLE001
            raise TelaError(f"{d}: cannot load the model: {type(e).__name__}: {e}") from None
        model.to(self.device)
        model.eval()
        vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else None
        if vocab is not None and max(self.score_ids) >= vocab:
            raise TelaError(
                f"{d}: the model has {vocab} output rows but score token ids go up to {max(self.score_ids)}"
            )
        self.formatter = get_registry().create(
            "formatter", manifest.get("formatter") or "role-prefix", manifest.get("formatter_options") or {}
        )
        self.tokenizer = tok
        self.model = model
        self.artifact_dir = d
        self._prefix_ids = None
        self._prefix_caches = {}
        self._cache_arg = None

    def _device(self) -> Any:
        import torch

        dev = self.options.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise TelaError(f"device {dev!r} asked for, but no CUDA GPU is available")
        return torch.device(dev)

    def _dtype(self, device: Any) -> Any:
        import torch

        name = self.options.dtype
        if name == "auto":
            if device.type == "cuda" and torch.cuda.is_bf16_supported():
                return torch.bfloat16
            return torch.float32
        return getattr(torch, name)

    # -- prompts ---------------------------------------------------------------------------------

    def render(self, question: str) -> str:
        """The text the router sees for ``question``: seed messages through the artifact's formatter."""
        from tela_core.data.records import seed_record

        return self.formatter.format(seed_record(question, None).messages, self.tokenizer).prompt

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def encode(self, question: str) -> list[int]:
        """Token ids of the rendered prompt, at most ``max_length``: text is dropped from the start
        of the question (the longest question suffix that fits is kept), never from the template."""
        limit = self.options.max_length
        ids = self._ids(self.render(question))
        if len(ids) <= limit:
            return ids
        template = self._ids(self.render(""))
        if len(template) > limit:
            raise TelaError(
                f"the prompt template alone is {len(template)} tokens, more than max_length {limit}; raise max_length"
            )
        lo, hi = 0, len(question)  # invariant: keeping the last `lo` chars fits; keeping `hi` does not
        best = template
        while hi - lo > 1:
            mid = (lo + hi) // 2
            cand = self._ids(self.render(question[len(question) - mid :]))
            if len(cand) <= limit:
                lo, best = mid, cand
            else:
                hi = mid
        return best if lo > 0 else template

    # -- scoring ---------------------------------------------------------------------------------

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches, longest prompts first, within both batch bounds."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        size = self.options.batch_size or (16 if getattr(self.device, "type", "cpu") == "cuda" else 1)
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = lengths[cur[0]] if cur else lengths[i]
            if cur and (len(cur) + 1 > size or (len(cur) + 1) * width > self.options.max_batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def score_logits(self, encoded: Sequence[Sequence[int]]) -> Any:
        """The five score-token logits (float32 tensor ``(n, 5)``) at the last position of each
        already-encoded prompt, in input order."""
        import torch

        if self.model is None:
            raise TelaError("score-token scorer: call load(artifact_dir) before scoring")
        out = torch.empty((len(encoded), 5), dtype=torch.float32)
        lengths = [len(e) for e in encoded]
        if any(n == 0 for n in lengths):
            raise TelaError("a prompt encoded to zero tokens")
        prefix = self.shared_prefix() if self.options.prefix_cache else []
        p = len(prefix)
        cached = [i for i, e in enumerate(encoded) if p and len(e) > p and list(e[:p]) == prefix]
        plain = sorted(set(range(len(encoded))) - set(cached))
        ids_t = torch.tensor(self.score_ids, device=self.device)
        with torch.inference_mode():
            if plain:
                sub = [encoded[i] for i in plain]
                for batch in self._batches([len(e) for e in sub]):
                    logits = self._padded_forward([sub[j] for j in batch], None)
                    out[[plain[j] for j in batch]] = logits.index_select(-1, ids_t).float().cpu()
            if cached:
                sub = [list(encoded[i][p:]) for i in cached]
                for batch in self._batches([len(e) for e in sub]):
                    logits = self._padded_forward([sub[j] for j in batch], p)
                    out[[cached[j] for j in batch]] = logits.index_select(-1, ids_t).float().cpu()
        return out

    def shared_prefix(self) -> list[int]:
        """The token ids every rendered prompt starts with (the template up to the question),
        worked out once from two renders of different questions."""
        if self._prefix_ids is None:
            a, b = self._ids(self.render("A")), self._ids(self.render("zq"))
            n = 0
            while n < min(len(a), len(b)) and a[n] == b[n]:
                n += 1
            self._prefix_ids = a[:n] if n >= 16 else []  # a short prefix is not worth a cache
            if self._prefix_ids and not getattr(self._prefix_cache(1), "is_croppable", False):
                self._prefix_ids, self._prefix_caches = [], {}  # e.g. recurrent layers: no rollback, no reuse
        return self._prefix_ids

    def _padded_forward(self, seqs: Sequence[Sequence[int]], prefix_len: int | None) -> Any:
        """Last-position logits ``(len(seqs), vocab)`` of left-padded ``seqs``; with ``prefix_len``
        they continue the shared prefix, read from its cached keys and values."""
        import torch

        pad = int(self.tokenizer.pad_token_id)
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        if prefix_len is None:
            return self._forward(input_ids.to(self.device), mask.to(self.device), positions.to(self.device))[:, -1, :]
        full_mask = torch.cat([torch.ones((len(seqs), prefix_len), dtype=torch.long), mask], dim=1)
        with self._prefix_lock:  # one cache per batch size, grown and cropped back in place
            cache = self._prefix_cache(len(seqs))
            try:
                logits = self._forward(
                    input_ids.to(self.device),
                    full_mask.to(self.device),
                    (positions + prefix_len).to(self.device),
                    cache,
                )
            finally:
                extra = cache.get_seq_length() - prefix_len
                if extra > 0:
                    cache.crop(-extra)  # a negative count removes that many tokens (transformers 4.56 and 5)
        return logits[:, -1, :]

    def _cache_kw(self, cache: Any) -> dict[str, Any]:
        """The cache keyword the model's forward takes: ``cache`` (newer transformers) or
        ``past_key_values``; looked up once per loaded model."""
        if self._cache_arg is None:
            import inspect

            self._cache_arg = (
                "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            )
        return {self._cache_arg: cache}

    def _prefix_cache(self, rows: int) -> Any:
        """The shared prefix's key/value cache for a batch of ``rows`` prompts (kept per batch size)."""
        import torch

        cache = self._prefix_caches.get(rows)
        if cache is None:
            from transformers import DynamicCache

            ids = torch.tensor([self.shared_prefix()] * rows, dtype=torch.long, device=self.device)
            cache = DynamicCache(config=self.model.config)
            self.model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                use_cache=True,
                logits_to_keep=1,
                **self._cache_kw(cache),
            )
            if len(self._prefix_caches) >= 8:  # bounded: batch sizes seen most recently
                self._prefix_caches.pop(next(iter(self._prefix_caches)))
            self._prefix_caches[rows] = cache
        return cache

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any = None) -> Any:
        kwargs: dict[str, Any] = dict(input_ids=input_ids, attention_mask=mask, position_ids=positions)
        if cache is None:
            kwargs["use_cache"] = False
        else:
            kwargs.update(use_cache=True, **self._cache_kw(cache))
        try:
            return self.model(**kwargs, logits_to_keep=1).logits
        except TypeError:  # a model class without logits_to_keep
            return self.model(**kwargs).logits

    def score(self, prompts: Sequence[str]) -> Scores:
        import numpy as np
        import torch

        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            return Scores(w=np.zeros(0), probs=np.zeros((0, 5)))
        encoded = [self.encode(p) for p in prompts]
        logits = self.score_logits(encoded)
        probs = torch.softmax(logits.double(), dim=-1).numpy()
        w = np.clip(1.0 - (probs[:, 3] + probs[:, 4]), 0.0, 1.0)
        return Scores(w=w, probs=probs)
