"""The Router API: one object for a trained router folder, used by every command and by apps.

A router folder (``tela run`` / ``tela zoo`` output) holds ``tela.json`` (which scorer family
reads it), the family's files and ``policy.json`` (the routing policy and the models, cheap →
strong). :meth:`Router.load` reads all three; :meth:`Router.score` gives ``w`` = P(strong model
needed) per prompt, :meth:`Router.route` the model each prompt goes to, and :meth:`Router.decide`
both at once (what ``tela serve`` puts in its response headers)::

    from tela_core import Router

    router = Router.load("runs/knn")
    router.route(["What is 2 + 2?", "Prove that there are infinitely many primes."])
    # ['mistralai/Mixtral-8x7B-Instruct-v0.1', 'gpt-4-1106-preview']
    router.route(prompts, threshold=0.3)        # RouteLLM's router-<name>-<threshold> form
    for d in router.decide(prompts):
        print(d.model, d.w, d.threshold)

Loading never runs code from the folder: a router whose model needs its own Python code
(``auto_map``) is refused unless the *caller* passes ``trust_remote_code=True`` (the CLI's
``--trust-remote-code``, or ``TELA_TRUST_REMOTE_CODE=1``). What the folder says is only read.

A :class:`Router` is not re-entrant: call it from one thread at a time (``tela serve`` keeps one
worker thread per router).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tela_core.components import LoadContext
from tela_core.infra.errors import TelaError
from tela_core.routing.artifact import read_manifest, read_policy
from tela_core.routing.versions import resolve

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tela_core.components import Policy, Scorer, Scores

__all__ = ["Router", "Decision", "TRUST_ENV", "PLACEHOLDER_MODELS"]

#: Environment variable that stands for ``--trust-remote-code`` (for servers started by a manager).
TRUST_ENV = "TELA_TRUST_REMOTE_CODE"

#: What a router routes between when neither its policy nor its manifest names the models.
PLACEHOLDER_MODELS = ("weak", "strong")

#: Policies whose single ``threshold`` option a request may override.
THRESHOLD_POLICIES = ("threshold", "calibrated")


@dataclass(frozen=True)
class Decision:
    """One prompt's routing decision: the chosen model, its ``w`` and the threshold applied
    (None for policies without one, e.g. ``tiers``), and the expected score 1..5 when the family
    predicts a score distribution."""

    model: str
    w: float
    threshold: float | None
    expected: float | None = None
    #: the version of the router that decided (:func:`tela_core.routing.artifact.router_version`)
    router_version: str | None = None
    #: each model's predicted quality in [0, 1], for N-model families (None otherwise)
    quality: Mapping[str, float] | None = None
    #: an N-model policy's request knob and the value applied (``{"lam": 0.5}``, ``{"budget": 2.0}``,
    #: ``{"q": 0.8}``); None for two-model policies, whose knob is ``threshold``
    knob: Mapping[str, float] | None = None
    #: the version's name (``v3``) when the router was loaded from a versions folder
    #: (:mod:`tela_core.routing.versions`), else None
    version_name: str | None = None
    #: how well the router's training data covers the prompt, in [0, 1] (``Scores.coverage``), for
    #: families that say (``embedding-knn``); None otherwise
    coverage: float | None = None


class Router:
    """A loaded router: its scorer, its policy and the models it routes between."""

    def __init__(
        self,
        path: Path,
        manifest: Mapping[str, Any],
        scorer: Scorer,
        policy: Policy,
        policy_spec: Mapping[str, Any],
        models: Sequence[str],
    ) -> None:
        self.path = Path(path)
        self.manifest = dict(manifest)
        self.scorer = scorer
        self.policy = policy
        self.policy_spec = dict(policy_spec)
        self.models = list(models)
        #: the versions folder it was loaded from, and the version's name (``v3``); None otherwise
        self.versions_dir: Path | None = None
        self.version_name: str | None = None

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        trust_remote_code: bool = False,
        score_batch_size: int | None = None,
        policy: str | None = None,
        policy_options: Mapping[str, Any] | None = None,
        load_scorer: bool = True,
        embedder: str | None = None,
    ) -> Router:
        """Load the router in ``path``.

        What the caller decides reaches the scorer as arguments: its options (the saved ones, with
        ``score_batch_size`` for a family that has a ``batch_size`` option) when it is created, and
        a :class:`~tela_core.components.LoadContext` (``trust_remote_code``, ``embedder``,
        ``score_batch_size``) as ``load``'s ``context``. A family whose ``load`` takes no context
        (written for tela 0.1 or 0.2) still loads, with a ``TelaDeprecationWarning``: it gets them
        as the attributes ``trust_remote_code`` and ``expected_embedder``, set before ``load``.

        :param trust_remote_code: allow a model that ships its own Python code to run it. The
            user's choice; nothing in the folder can turn it on.
        :param score_batch_size: prompts per scorer call, for families that batch (LM scorers).
        :param policy: use this registered policy instead of the saved one; ``policy_options``
            then replace the saved options (and update them when ``policy`` is None).
        :param load_scorer: False: build the scorer with its options but do not load its model, for
            a process that hands the scoring to others (data-parallel scoring's launching process)
            and needs only the policy, the models and the scorer's name and options.
        :param embedder: refuse the router unless it embeds prompts with this registered embedder
            (an embedding family trained with another one, or a family that embeds nothing).
        """
        from tela_core.plugins.discovery import get_registry

        d, version_name = resolve(path)  # a versions folder: its current version's folder
        manifest = read_manifest(d)
        reg = get_registry()
        scorer_name = manifest["scorer"]
        _require_plugin(reg, "scorer", scorer_name, manifest, d)
        raw_opts = manifest.get("scorer_options") or {}
        if not isinstance(raw_opts, Mapping):
            raise TelaError(f"{d / 'tela.json'}: 'scorer_options' must be an object, got {type(raw_opts).__name__}")
        opts = dict(raw_opts)
        scorer_cls = reg.get("scorer", scorer_name)
        if score_batch_size is not None and "batch_size" in getattr(scorer_cls.Options, "model_fields", {}):
            opts["batch_size"] = score_batch_size
        try:
            scorer = reg.create("scorer", scorer_name, opts)
        except TelaError as e:  # options saved by another version of the family: say which router
            raise TelaError(f"{d / 'tela.json'}: {e}") from None
        if embedder is not None and not scorer.uses_embedder:
            raise TelaError(f"{d}: scorer {scorer_name!r} embeds no prompts, so it cannot use embedder {embedder!r}")
        context = LoadContext(trust_remote_code=bool(trust_remote_code), embedder=embedder, batch_size=score_batch_size)
        # deprecated, readable until tela 0.3: what a load() without a context reads, and what
        # launched scoring ranks are told by eval.score_cache for a scorer whose model is not loaded
        scorer.trust_remote_code = context.trust_remote_code
        scorer.expected_embedder = context.embedder
        try:
            if load_scorer:
                _load_scorer(scorer, d, context)
        except (KeyError, IndexError, TypeError, ValueError, EOFError) as e:
            # a family whose loader indexes a damaged or foreign file: one line, not a traceback
            said = " ".join(str(e).split()) or "unreadable"
            raise TelaError(f"{d}: damaged router ({type(e).__name__}: {said[:200]}); train it again") from None

        spec = read_policy(d)
        if not isinstance(spec, dict):
            raise TelaError(f"{d / 'policy.json'}: expected a JSON object with name, options and models")
        name = policy or spec.get("name") or "threshold"
        if policy is not None and policy != spec.get("name"):
            options: dict[str, Any] = dict(policy_options or {})
            saved_costs = (spec.get("options") or {}).get("costs")
            if saved_costs and "costs" not in options and policy in reg.names("policy"):
                if "costs" in getattr(reg.get("policy", policy).Options, "model_fields", {}):
                    options["costs"] = saved_costs  # another N-model policy keeps the router's model costs
        else:
            options = {**dict(spec.get("options") or {}), **dict(policy_options or {})}
        _require_plugin(reg, "policy", name, manifest, d)
        policy_obj = reg.create("policy", name, options)
        models = _models(spec, manifest, d)
        spec = {"name": name, "options": policy_obj.options.model_dump(mode="json"), "models": models}
        loaded = cls(d, manifest, scorer, policy_obj, spec, models)
        from tela_core.routing.artifact import router_version

        loaded.__dict__["_version"] = router_version(d)  # the version loaded, even if the folder is retrained later
        loaded.version_name = version_name
        loaded.versions_dir = Path(path) if version_name is not None else None
        return loaded

    # -- what it is ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The folder's name (what ``tela serve`` calls it unless told otherwise); the versions
        folder's for a router loaded from one."""
        where = self.versions_dir if self.versions_dir is not None else self.path
        return where.resolve().name or str(where)

    @property
    def version(self) -> str:
        """A short id of the trained router (its ``tela.json`` hash): retraining changes it, a new
        policy does not. Read once, when first asked."""
        v = self.__dict__.get("_version")
        if v is None:
            from tela_core.routing.artifact import router_version

            v = self.__dict__["_version"] = router_version(self.path)
        return str(v)

    @property
    def threshold(self) -> float | None:
        """The saved policy's threshold on ``w`` (``threshold``/``calibrated``), else None."""
        value = getattr(self.policy.options, "threshold", None)
        return float(value) if value is not None else None

    def __repr__(self) -> str:
        return f"Router({str(self.path)!r}, scorer={self.manifest['scorer']!r}, policy={self.policy_spec['name']!r})"

    # -- scoring and routing ------------------------------------------------------------------------

    def scores(self, prompts: Sequence[str], quality: bool = False) -> Scores:
        """The scorer's full output: ``w`` and, for score families, the 1..5 distribution; for
        N-model families each model's predicted quality, which an N-model policy (or ``quality``)
        asks of a family that predicts it but does not put it in its scores."""
        prompts = _check_prompts(prompts)
        if not prompts:
            import numpy as np

            from tela_core.components import Scores

            return Scores(w=np.zeros(0))
        scores = self.scorer.score(prompts)
        if scores.quality is None and (quality or self.knob is not None) and hasattr(self.scorer, "predict_models"):
            scores = _with_quality(scores, self.scorer, prompts)
        return scores

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        """``w`` = P(strong model needed) for each prompt, in [0, 1]."""
        import numpy as np

        return np.asarray(self.scores(prompts).w, dtype=float).reshape(-1)

    def route(self, prompts: Sequence[str], threshold: float | None = None) -> list[str]:
        """The model each prompt goes to. ``threshold`` overrides the saved policy's request knob:
        for two-model policies strong iff ``w >= threshold``; for N-model policies (cost-aware,
        budget, quality-floor) their knob (λ, $ per 1,000 requests, quality floor)."""
        return [d.model for d in self.decide(prompts, threshold)]

    def decide(self, prompts: Sequence[str], threshold: float | None = None) -> list[Decision]:
        """Score and route ``prompts``; each :class:`Decision` says which model, ``w`` and why."""
        scores = self.scores(prompts)
        return self.decisions(scores, threshold)

    @property
    def knob(self) -> str | None:
        """The request knob of an N-model policy (``lam``, ``budget``, ``q``); None for two-model policies."""
        return getattr(self.policy, "knob", None) or None

    def decisions(self, scores: Scores, threshold: float | None = None) -> list[Decision]:
        """Apply the policy (or ``threshold``: its request knob) to scores already computed, e.g.
        by a batched call."""
        import numpy as np

        if self.knob is not None:
            return self._nmodel_decisions(scores, threshold)
        w = np.asarray(scores.w, dtype=float).reshape(-1)
        expected = scores.expected
        t: float | None
        if threshold is not None:
            t = self._check_threshold(threshold)
            weak, strong = self.models[0], self.models[-1]
            chosen = [strong if x >= t else weak for x in w]
        else:
            t = self.threshold
            chosen = list(self.policy.choose(scores, self.models))
        try:
            version: str | None = self.version
        except TelaError:  # the folder changed under a loaded router: decide anyway
            version = None
        quality = _quality_rows(scores)
        return [
            Decision(
                model=chosen[i],
                w=float(w[i]),
                threshold=t,
                expected=float(expected[i]) if expected is not None else None,
                router_version=version,
                quality=quality[i] if quality is not None else None,
                version_name=self.version_name,
            )
            for i in range(len(w))
        ]

    def _nmodel_decisions(self, scores: Scores, value: float | None) -> list[Decision]:
        """An N-model policy's decisions, with each model's predicted quality; ``value`` sets its knob."""
        import numpy as np

        policy: Any = self.policy
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real
                raise TelaError(f"{self.policy_spec['name']} {self.knob} must be a number, got {value!r}")
            policy = policy.at(float(value))
        if scores.quality is None:
            raise TelaError(
                f"{self.name}: policy {self.policy_spec['name']!r} chooses by each model's predicted quality, and "
                f"family {self.manifest.get('scorer')!r} predicts none; use embedding-knn or matrix-factorization, "
                "or a two-model policy (threshold, calibrated)"
            )
        chosen = policy.choose(scores, self.models)
        w = np.asarray(scores.w, dtype=float).reshape(-1)
        quality = _quality_rows(scores, self.models)
        expected = scores.expected
        knob = {str(self.knob): float(policy.knob_value)} if policy.knob_value is not None else None
        try:
            version: str | None = self.version
        except TelaError:
            version = None
        return [
            Decision(
                model=chosen[i],
                w=float(w[i]) if i < len(w) else float("nan"),
                threshold=None,
                expected=float(expected[i]) if expected is not None else None,
                router_version=version,
                quality=quality[i] if quality is not None else None,
                knob=knob,
                version_name=self.version_name,
            )
            for i in range(len(chosen))
        ]

    def _check_threshold(self, threshold: float) -> float:
        import math

        t = float(threshold)
        if not (0.0 <= t <= 1.0) or math.isnan(t):
            raise TelaError(f"threshold must be in [0, 1], got {threshold}")
        if len(self.models) != 2:
            raise TelaError(
                f"{self.name}: a threshold routes between two models; this router's policy "
                f"{self.policy_spec['name']!r} routes between {len(self.models)}"
            )
        return t


def _quality_rows(scores: Scores, models: Sequence[str] | None = None) -> list[dict[str, float]] | None:
    """Each prompt's ``{model: predicted quality}`` from ``scores.quality`` (None when it has none)."""
    import numpy as np

    if scores.quality is None:
        return None
    q = np.asarray(scores.quality, dtype=float)
    cols = list(scores.models or models or [])
    if q.ndim != 2 or len(cols) != q.shape[1]:
        return None
    return [{m: float(row[j]) for j, m in enumerate(cols)} for row in q]


def _with_quality(scores: Scores, scorer: Any, prompts: Sequence[str]) -> Scores:
    """``scores`` with ``quality``/``models`` from a family's ``predict_models`` (a family that
    has it but does not fill ``Scores.quality`` in ``score``)."""
    import dataclasses

    import numpy as np

    models = tuple(str(m) for m in getattr(scorer, "models", ()) or ())
    quality = np.asarray(scorer.predict_models(list(prompts)), dtype=float)
    if quality.ndim != 2 or quality.shape[1] != len(models):
        return scores
    return dataclasses.replace(scores, quality=quality, models=models)


def _takes_context(load: Any) -> bool:
    """Whether a scorer's bound ``load`` accepts ``context`` (by name, or through ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(load).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension): call it the new way
        return True
    return any(p.name == "context" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _load_scorer(scorer: Scorer, d: Path, context: LoadContext) -> None:
    """``scorer.load(d, context=context)``; a ``load`` written before it took a context (tela 0.1,
    0.2) is called as ``load(d)`` with a warning (it reads the deprecated attributes
    ``trust_remote_code`` and ``expected_embedder``, set before), and the caller's batch size is
    put back into options it re-read from the folder."""
    if _takes_context(scorer.load):
        scorer.load(d, context=context)
        return
    from tela_core.infra.deprecation import warn_deprecated

    cls = type(scorer)
    warn_deprecated(
        f"{cls.__module__}.{cls.__qualname__}.load(artifact_dir) without a context parameter",
        "load(self, artifact_dir, context: tela_core.LoadContext = ...), which receives trust_remote_code, "
        "embedder and batch_size as arguments",
    )
    scorer.load(d)
    options = scorer.options
    if context.batch_size is not None and getattr(options, "batch_size", context.batch_size) != context.batch_size:
        scorer.options = options.model_copy(update={"batch_size": context.batch_size})


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("Router methods take a sequence of prompts, not one string: wrap it in a list")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise TelaError(f"prompt {i} is a {type(p).__name__}, not text")
    return out


def _models(spec: Mapping[str, Any], manifest: Mapping[str, Any], d: Path) -> list[str]:
    """The models, cheap → strong: the policy's, unless those are the placeholders and the
    manifest knows the data's pair."""
    models = spec.get("models")
    if models is not None and not (
        isinstance(models, list) and len(models) >= 2 and all(isinstance(m, str) and m for m in models)
    ):
        raise TelaError(f"{d / 'policy.json'}: 'models' must be a list of at least two model names")
    listed: list[str] = list(models or [])
    twice = sorted({m for m in listed if listed.count(m) > 1})
    if twice:
        raise TelaError(f"{d / 'policy.json'}: 'models' lists {', '.join(twice)} more than once; each model once")
    pair = [manifest.get("weak"), manifest.get("strong")]
    if (not models or tuple(models) == PLACEHOLDER_MODELS) and all(isinstance(m, str) and m for m in pair):
        return [str(m) for m in pair]
    return list(models or PLACEHOLDER_MODELS)


def _require_plugin(reg: Any, kind: str, name: str, manifest: Mapping[str, Any], d: Path) -> None:
    """A clear error when the plugin that provides ``name`` is not installed: besides the
    registered names, say which distributions (and versions) the router was made with, from its
    manifest, that are not installed here."""
    from tela_core.infra.errors import UnknownComponentError

    try:
        reg.entry(kind, name)
    except UnknownComponentError as e:
        installed = {i.dist for i in reg.plugins.values() if i.dist}
        recorded = manifest.get("plugins")
        made_with: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        missing = [f"{k} {v}" for k, v in sorted(made_with.items()) if k != "tela" and k not in installed]
        hint = (
            f"; this router was made with {', '.join(missing)} (from its manifest), which is not installed here"
            if missing
            else ""
        )
        raise TelaError(f"{d}: {e}{hint}") from None
