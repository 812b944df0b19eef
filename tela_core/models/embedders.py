"""Which embedder an embedding family uses, recorded in its router and checked when it loads.

An embedding family (``embedding-knn``, ``embedding-linear``, ``matrix-factorization``, a
third-party one) mixes :class:`EmbedderOptions` into its options and :class:`UsesEmbedder` into
its class, and calls ``self.embed(prompts)``. Then:

- the user picks the embedder by option: ``--set family.embedder=minilm-onnx-int8`` (any
  registered :class:`~tela_core.components.Embedder`; ``embedder_options`` for its settings);
- training records it in the router: the manifest's ``embedder`` field (name, options, vector
  size) and ``embedder.json`` (that plus the vectors of a few probe sentences);
- loading checks it: a router is refused, in one line naming both, when the caller requires
  another embedder (``Router.load(path, embedder=NAME)``), and when the embedder installed here
  under that name gives other vectors than the one it was trained with (a different model behind
  the name, another distillation, another quantisation). So a router always embeds at serving
  time exactly as in training;
- a router saved before embedders were components has no ``embedder`` field: it loads as
  ``minilm`` (or ``sentence-transformers`` with its ``embedding_model``), which is what it used,
  although the default is now ``model2vec``; a router trained with ``minilm`` keeps it (its
  manifest names it).

Vectors are cached by :func:`tela_core.models.vector_cache.embed_with`. Nothing heavy is imported
here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tela_core.infra.errors import TelaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.components import Embedder, LoadContext

# the public API (docs/plugins.md); LEGACY_EMBEDDER and prepare_default (make install's step) are tela's own
__all__ = [
    "DEFAULT_EMBEDDER",
    "PROBE_TEXTS",
    "EmbedderOptions",
    "UsesEmbedder",
    "get_embedder",
    "require",
    "embedder_record",
    "check_embedder",
]

#: The embedder a family uses unless told otherwise: static vectors distilled once from MiniLM
#: (``model2vec``; no torch when serving, ~1 ms a prompt). Chosen by measurement over every
#: embedding family and benchmark (docs/benchmarks.md, "The default embedder").
DEFAULT_EMBEDDER = "model2vec"

#: The embedder of routers saved before embedders were components (no ``embedder`` in their
#: manifest): all-MiniLM-L6-v2 on torch, which is what they used.
LEGACY_EMBEDDER = "minilm"

#: Sentences whose vectors a router keeps (``embedder.json``) to check, when it loads, that the
#: embedder here still gives the vectors it was trained with.
PROBE_TEXTS = (
    "What is the capital of France?",
    "Prove that there are infinitely many prime numbers.",
    "def add(a, b): return a + b  # fix the bug",
)

#: Cosine under which a probe sentence's vector counts as different (fp32 vs the same model
#: elsewhere is > 0.9999; another model or a sign-flipped PCA is far below).
PROBE_MIN_COSINE = 0.99

_INSTANCES: dict[tuple[str, str], Any] = {}


class EmbedderOptions(BaseModel):
    """The options an embedding family adds to its own (mix into its ``Options``)."""

    embedder: str = Field(
        DEFAULT_EMBEDDER,
        description="embedder that turns prompts into vectors "
        "(see `tela plugins list --kind embedder`): model2vec (static vectors distilled from MiniLM, "
        "the default), minilm (MiniLM on torch), minilm-onnx, minilm-onnx-int8, ...",
    )
    embedder_options: dict[str, Any] = Field(
        default_factory=dict,
        description="the embedder's own options, e.g. {model: PATH} for model2vec or sentence-transformers",
    )
    embedding_model: str | None = Field(
        None,
        description="deprecated: a sentence-transformers model "
        "(use embedder=sentence-transformers and embedder_options.model)",
    )


def get_embedder(name: str, options: Mapping[str, Any] | None = None) -> Embedder:
    """The registered embedder ``name`` with ``options``, one instance per process and settings
    (so every router that uses it shares one loaded model). An unknown name lists the known ones."""
    import json

    from tela_core.plugins.discovery import get_registry

    key = (name, json.dumps(dict(options or {}), sort_keys=True, default=str))
    if key not in _INSTANCES:
        _INSTANCES[key] = get_registry().create("embedder", name, dict(options or {}))
    return _INSTANCES[key]


def prepare_default() -> str:
    """Build (or find) the default embedder's model now, so that no first ``tela run`` or first
    request waits for it (``make install`` calls this). Returns where it is."""
    emb = get_embedder(DEFAULT_EMBEDDER)
    prepare = getattr(emb, "prepare", None)
    if prepare is not None:
        return str(prepare())
    emb.embed(list(PROBE_TEXTS))
    return emb.name


def require(module: str, embedder: str, install: str) -> Any:
    """``importlib.import_module(module)``, or one line saying which install command provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TelaError(
            f"embedder {embedder!r} needs the Python package {module.split('.')[0]!r}, which is not "
            f"installed: {install}"
        ) from None


def embedder_record(embedder: Embedder, vectors: np.ndarray | None = None) -> dict[str, Any]:
    """What a router keeps about its embedder: name, options, vector size, and the vectors of
    :data:`PROBE_TEXTS` (``vectors``: when already computed)."""
    import numpy as np

    from tela_core.models.vector_cache import embed_with

    probe = np.asarray(
        vectors if vectors is not None else embed_with(embedder, list(PROBE_TEXTS), cache=False), dtype=np.float32
    )
    return {
        "name": embedder.name,
        "options": embedder.options.model_dump(mode="json"),
        "dim": int(probe.shape[1]),
        "probe_texts": list(PROBE_TEXTS),
        "probe_vectors": [[round(float(x), 5) for x in row] for row in probe],
    }


def _describe(name: str, options: Mapping[str, Any] | None) -> str:
    opts = {k: v for k, v in dict(options or {}).items() if v not in (None, {}, [])}
    return repr(name) + (f" {opts}" if opts else "")


def check_embedder(artifact_dir: Path, record: Mapping[str, Any], embedder: Embedder) -> None:
    """Refuse (one line naming both) when ``embedder`` gives other vectors than the ones
    ``record`` (the router's ``embedder.json``) was made with: another vector size, or a probe
    sentence whose vectors' cosine is under :data:`PROBE_MIN_COSINE`."""
    import numpy as np

    from tela_core.models.vector_cache import embed_with

    trained = _describe(str(record.get("name")), record.get("options"))
    here = _describe(embedder.name, embedder.options.model_dump(mode="json"))
    texts = [str(t) for t in record.get("probe_texts") or []]
    want = np.asarray(record.get("probe_vectors") or [], dtype=np.float32)
    if not texts or want.ndim != 2 or len(want) != len(texts):
        raise TelaError(
            f"{Path(artifact_dir) / 'embedder.json'}: damaged router file: no probe vectors; train the router again"
        )
    got = embed_with(embedder, texts, cache=False)
    if got.shape[1] != want.shape[1]:
        raise TelaError(
            f"{artifact_dir}: trained with embedder {trained} ({want.shape[1]}-d vectors); embedder {here} "
            f"here gives {got.shape[1]}-d vectors: train the router again with this embedder"
        )
    cos = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1) + 1e-12)
    if float(cos.min()) < PROBE_MIN_COSINE:
        raise TelaError(
            f"{artifact_dir}: trained with embedder {trained}; embedder {here} here gives other vectors "
            f"(cosine {float(cos.min()):.3f} on a probe sentence): install the same embedder or train the router again"
        )


class UsesEmbedder:
    """Mix into a :class:`~tela_core.routing.family.FamilyScorer` whose ``Options`` include
    :class:`EmbedderOptions` (put it first among the bases). Call :meth:`embed`; ``finish_fit``
    and ``check_manifest`` then record and check the embedder without more code."""

    #: Tells :meth:`~tela_core.routing.router.Router.load` that this family embeds its prompts.
    uses_embedder = True
    options: Any
    name: str
    _legacy_context: Callable[[], LoadContext]

    def embedder_choice(self) -> tuple[str, dict[str, Any]]:
        """(name, options) of the embedder the options select; the deprecated ``embedding_model``
        means ``sentence-transformers`` with that model."""
        name = getattr(self.options, "embedder", DEFAULT_EMBEDDER) or DEFAULT_EMBEDDER
        opts = dict(getattr(self.options, "embedder_options", None) or {})
        legacy = getattr(self.options, "embedding_model", None)
        if legacy:
            if name not in (DEFAULT_EMBEDDER, LEGACY_EMBEDDER, "sentence-transformers"):
                raise TelaError(
                    f"{self.name}: embedding_model={legacy!r} is a sentence-transformers model, but "
                    f"embedder={name!r}; use embedder_options.model instead of embedding_model"
                )
            name, opts = "sentence-transformers", {**opts, "model": legacy}
        return name, opts

    def embedder(self) -> Embedder:
        """This family's embedder (created once per process and settings)."""
        return get_embedder(*self.embedder_choice())

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """Cached vectors of ``prompts`` from this family's embedder."""
        from tela_core.models.vector_cache import embed_with

        return embed_with(self.embedder(), list(prompts))

    def finish_fit(self, out: Path, n_train: int, meta: Mapping[str, Any]) -> Path:
        from tela_core.infra.io import atomic_write_json

        record = embedder_record(self.embedder())
        atomic_write_json(Path(out) / "embedder.json", record)
        short = {k: record[k] for k in ("name", "options", "dim")}
        return super().finish_fit(out, n_train, {**meta, "embedder": short})  # type: ignore[misc]

    def check_manifest(self, artifact_dir: Path, context: LoadContext | None = None) -> dict[str, Any]:
        from tela_core.routing.family import read_json

        manifest: dict[str, Any] = super().check_manifest(artifact_dir, context)  # type: ignore[misc]
        saved = manifest.get("scorer_options")
        if "embedder" not in manifest and not (isinstance(saved, dict) and saved.get("embedder")):
            # Saved before embedders were components: it used MiniLM, whatever the default is now.
            self.options = self.options.model_copy(update={"embedder": LEGACY_EMBEDDER, "embedder_options": {}})
        name, _ = self.embedder_choice()
        wanted = (context or self._legacy_context()).embedder
        if wanted is not None and wanted != name:
            raise TelaError(
                f"{artifact_dir}: this router was trained with embedder {name!r}, not {wanted!r}: "
                f"serve it with {name!r}, or train it again with --set family.embedder={wanted}"
            )
        if "embedder" in manifest:  # routers from before embedders were components: minilm, unchecked
            d = Path(artifact_dir)
            record = read_json(d / "embedder.json")
            recorded = record.get("name") if isinstance(record, dict) else None
            listed = manifest["embedder"].get("name") if isinstance(manifest["embedder"], dict) else name
            if recorded != name or listed != name:  # files of two trainings mixed in one folder
                raise TelaError(
                    f"{d / 'embedder.json'} names embedder {recorded!r}, but {d / 'tela.json'} names "
                    f"{name if recorded != name else listed!r}: the router's files disagree; train it again"
                )
            check_embedder(d, record, self.embedder())
        return manifest
