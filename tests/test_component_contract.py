"""The component contract is explicit (issue 27, item 4).

- The methods every component of a kind must have are abstract: a plugin class missing one is
  refused when it registers, in one line naming the class and the method (not when tela first
  calls it), and a method with a sensible default stays optional.
- What the caller decides about loading a router (trust remote code, a required embedder, a batch
  size) reaches the scorer as ``load``'s ``context`` argument, not as attributes set before.
- A scorer written for tela 0.1/0.2 (``load(artifact_dir)``, reading the attributes) still loads,
  with a ``TelaDeprecationWarning`` naming the new signature.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, Field

from tela_core import LoadContext, Router, Scorer, Scores, TelaDeprecationWarning, TelaError, hookimpl
from tela_core.components import REGISTERED
from tela_core.routing.artifact import write_manifest, write_policy
from tela_core.routing.family import FamilyScorer, TargetOptions
from tela_core.testkit import registered_plugin

#: What a component of each kind must implement; everything else on the base has a default.
REQUIRED = {
    "source": {"read"},
    "formatter": {"format"},
    "backend": {"train"},
    "family": {"load", "score"},
    "policy": {"choose"},
    "upstream": {"chat"},
    "judge": {"requests", "verdict"},
    "embedder": {"embed"},
}


def test_each_kind_requires_exactly_the_methods_every_plugin_of_it_has() -> None:
    """Defaults stay concrete: ``Source.sniff``, ``Scorer.fit`` (backend-trained families have
    none), ``Upstream.check``/``aclose``, ``Embedder.cache_key``."""
    bases = {k.kind: k.base for k in REGISTERED if k.base is not None}
    assert set(bases) == set(REQUIRED)
    for kind, base in bases.items():
        assert set(base.__abstractmethods__) == REQUIRED[kind], kind


def _plugin(hook: str, cls: type) -> Any:
    class Plugin:
        pass

    def register_them(self: Any, register: Any) -> None:
        register(cls)

    register_them.__name__ = hook
    setattr(Plugin, hook, hookimpl(register_them))
    return Plugin()


@pytest.mark.parametrize("spec", [k for k in REGISTERED if k.base is not None], ids=lambda k: k.kind)
def test_a_class_missing_a_required_method_is_refused_at_registration(spec: Any) -> None:
    incomplete = type(f"Incomplete{spec.base.__name__}", (spec.base,), {"name": f"test-incomplete-{spec.kind}"})
    with registered_plugin(_plugin(spec.hook, incomplete), "incomplete") as reg:
        error = reg.plugins["incomplete"].error
        assert error and "'incomplete'" in error, error
        for method in REQUIRED[spec.kind]:
            assert f"{method}()" in error, error
        assert f"Incomplete{spec.base.__name__} does not implement" in error
        assert f"test-incomplete-{spec.kind}" not in reg.names(spec.kind)


def test_a_scorer_without_score_is_named_when_made_directly() -> None:
    class NoScore(Scorer):
        name = "test-no-score"

        def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
            pass

    with pytest.raises(TypeError, match="NoScore.*score"):
        NoScore()


def test_a_backend_trained_scorer_needs_no_fit() -> None:
    class Backed(Scorer):
        name = "test-backed"
        uses_backend = True

        def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
            pass

        def score(self, prompts: Sequence[str]) -> Scores:
            return Scores(w=np.zeros(len(prompts)))

    with registered_plugin(_plugin("tela_register_scorers", Backed), "backed") as reg:
        assert reg.plugins["backed"].error is None
        assert "test-backed" in reg.names("family")


# -- the load context ---------------------------------------------------------------------------


class BatchOptions(BaseModel):
    batch_size: int = Field(8, ge=1)


class Recorder(Scorer):
    """Keeps what ``load`` was given, and whether an attribute was set on it before."""

    name = "test-recorder"
    Options = BatchOptions
    uses_backend = True
    uses_embedder = True  # so that a caller may require an embedder

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.given = context
        self.batch_at_load = self.options.batch_size

    def score(self, prompts: Sequence[str]) -> Scores:
        return Scores(w=np.full(len(prompts), 0.5))


def _router(d: Path, scorer: str, options: dict[str, Any]) -> Path:
    write_manifest(d, scorer=scorer, scorer_options=options)
    write_policy(d, "threshold", {"threshold": 0.5}, models=["weak", "strong"])
    return d


def test_the_scorer_gets_trust_remote_code_embedder_and_batch_size_as_arguments(tmp_path: Path) -> None:
    d = _router(tmp_path / "r", "test-recorder", {"batch_size": 8})
    with registered_plugin(_plugin("tela_register_scorers", Recorder), "recorder"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", TelaDeprecationWarning)  # the current contract warns of nothing
            router = Router.load(d, trust_remote_code=True, embedder="model2vec", score_batch_size=3)
            plain = Router.load(d)
    assert router.scorer.given == LoadContext(trust_remote_code=True, embedder="model2vec", batch_size=3)
    assert router.scorer.batch_at_load == 3  # in the options it was created with: nothing patched after
    assert plain.scorer.given == LoadContext()
    assert router.scorer.trust_remote_code is True  # deprecated, still readable until tela 0.3


def test_a_scorer_that_embeds_nothing_is_refused_a_required_embedder(tmp_path: Path) -> None:
    class Plain(Recorder):
        name = "test-plain"
        uses_embedder = False

    d = _router(tmp_path / "r", "test-plain", {})
    with registered_plugin(_plugin("tela_register_scorers", Plain), "plain"):
        with pytest.raises(TelaError, match="embeds no prompts, so it cannot use embedder 'model2vec'"):
            Router.load(d, embedder="model2vec")


class BatchFamilyOptions(TargetOptions):
    batch_size: int = Field(8, ge=1)


class BatchFamily(FamilyScorer):
    """A family that restores its saved options in ``load`` (``check_manifest``)."""

    name = "test-batch-family"
    Options = BatchFamilyOptions

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir, context)
        self.batch_at_load = self.options.batch_size

    def score(self, prompts: Sequence[str]) -> Scores:
        return Scores(w=np.full(len(prompts), 0.5))


def test_a_family_that_restores_its_options_keeps_the_callers_batch_size(tmp_path: Path) -> None:
    d = _router(tmp_path / "r", "test-batch-family", {"batch_size": 8, "target": "weak-wrong"})
    with registered_plugin(_plugin("tela_register_scorers", BatchFamily), "batch-family"):
        router = Router.load(d, score_batch_size=2)
    assert router.scorer.batch_at_load == 2 and router.scorer.options.batch_size == 2


class ManifestBatchFamily(BatchFamily):
    """Restores every option from the manifest, batch size included: what it serves with is its own
    decision from the context it was given, not something ``tela serve`` patches in afterwards."""

    name = "test-manifest-batch-family"

    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        self.check_manifest(artifact_dir)  # no context: the saved batch_size (8) comes back
        self.given = context
        self.options_after_load = self.options


def test_tela_serve_hands_the_batch_size_to_load_and_patches_nothing_after(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from tela_core.serve.config import RouterConfig, ServeConfig, UpstreamConfig
    from tela_core.serve.served_routers import load_router

    d = _router(tmp_path / "r", "test-manifest-batch-family", {"batch_size": 8, "target": "weak-wrong"})
    up = {m: UpstreamConfig(base_url="http://127.0.0.1:9/v1", model=m) for m in ("weak", "strong")}
    config = ServeConfig(routers={"r": RouterConfig(path=str(d), score_batch_size=2)}, upstreams=up)
    with registered_plugin(_plugin("tela_register_scorers", ManifestBatchFamily), "manifest-batch-family"):
        served = load_router(config, "r")
    try:
        scorer = served.router.scorer
        assert scorer.given.batch_size == 2  # the server's choice, as load's argument
        assert scorer.options is scorer.options_after_load and scorer.options.batch_size == 8
    finally:
        served.batcher.close(timeout=5.0)


# -- scorers written before the context ----------------------------------------------------------


class OldScorer(Scorer):
    """``load(artifact_dir)``, reading the attributes Router.load set before it (tela 0.2)."""

    name = "test-old-scorer"
    uses_backend = True
    uses_embedder = True

    def load(self, artifact_dir: Path) -> None:  # type: ignore[override]
        self.seen = (self.trust_remote_code, self.expected_embedder)

    def score(self, prompts: Sequence[str]) -> Scores:
        return Scores(w=np.full(len(prompts), 0.25))


class OldFamily(FamilyScorer):
    """A 0.2 family: ``load(artifact_dir)`` calling ``check_manifest(artifact_dir)``."""

    name = "test-old-family"
    Options = BatchFamilyOptions

    def load(self, artifact_dir: Path) -> None:  # type: ignore[override]
        self.check_manifest(artifact_dir)

    def score(self, prompts: Sequence[str]) -> Scores:
        return Scores(w=np.full(len(prompts), 0.25))


def test_a_scorer_whose_load_takes_no_context_still_loads_with_a_warning(tmp_path: Path) -> None:
    d = _router(tmp_path / "r", "test-old-scorer", {})
    with registered_plugin(_plugin("tela_register_scorers", OldScorer), "old-scorer"):
        with pytest.warns(
            TelaDeprecationWarning,
            match=r"OldScorer\.load\(artifact_dir\) without a context parameter "
            r"is deprecated: use load\(self, artifact_dir, context",
        ):
            router = Router.load(d, trust_remote_code=True, embedder="minilm")
    assert router.scorer.seen == (True, "minilm")
    assert router.score(["q"]).tolist() == [0.25]


def test_an_old_family_keeps_the_callers_batch_size(tmp_path: Path) -> None:
    d = _router(tmp_path / "r", "test-old-family", {"batch_size": 8, "target": "weak-wrong"})
    with registered_plugin(_plugin("tela_register_scorers", OldFamily), "old-family"):
        with pytest.warns(TelaDeprecationWarning, match="without a context parameter"):
            router = Router.load(d, score_batch_size=5)
    assert router.scorer.options.batch_size == 5
