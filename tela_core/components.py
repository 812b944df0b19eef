"""Base classes for the components plugins register, one per kind.

Every component class has a unique ``name`` within its kind (the CLI word, e.g. ``role-prefix``),
a one-line ``description`` and an ``Options`` pydantic model whose fields are its settings. The
registry instantiates a component as ``cls(options)``; ``options`` is an ``Options`` instance.
The methods every component of a kind must have are abstract (``abc.abstractmethod``): a class
missing one is refused when a plugin registers it, naming the class and the method.

These classes import nothing heavy: a plugin imports torch inside its methods, not at module level,
so ``tela --help`` and ``tela plugins list`` stay instant.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tela_core.infra.deprecation import warn_deprecated
from tela_core.infra.errors import InputError, UpstreamError
from tela_core.schema.launch import NodeLaunch
from tela_core.schema.records import Message, Record, checked_records

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


__all__ = [
    "KINDS",  # defined last, from REGISTERED
    "NoOptions",
    "Component",
    "Source",
    "Formatted",
    "Formatter",
    "TrainSettings",
    "TrainJob",
    "Backend",
    "Scores",
    "LoadContext",
    "Scorer",
    "Policy",
    "UpstreamReply",
    "Upstream",
    "JudgeItem",
    "JudgeRequest",
    "Verdict",
    "Judge",
    "Embedder",
    "message_text",
]


class NoOptions(BaseModel):
    """Options model for a component without settings. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class Component(metaclass=ABCMeta):
    """What every registered component has: a name, a description and an options model.

    A kind's base class marks the methods a component must implement with ``abstractmethod``;
    a subclass that leaves one out cannot be instantiated or registered."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        if options is None:
            options = {}
        if isinstance(options, Mapping):
            options = self.Options(**options)
        self.options = options


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


class Source(Component):
    """Reads a file or folder and yields validated records.

    Raise :class:`tela_core.infra.errors.InputError` with file and 1-based line for bad input.
    """

    kind = "source"
    #: When several sources' :meth:`sniff` claim a path, the highest priority wins (a tie at the
    #: top is an error asking for ``--source``). A source that knows a schema keeps 0; a catch-all
    #: that claims every file of a kind (any ``.jsonl``, any ``.csv``) declares a negative one.
    detect_priority: ClassVar[int] = 0
    #: True for a source that also reads names that are not paths (a Hugging Face hub id such as
    #: ``routellm/gpt4_dataset``): tela then does not report a missing path for it.
    reads_hub_ids: ClassVar[bool] = False
    #: Notes about the last :meth:`read` (rows skipped, models found, files read...), set by the
    #: source as it reads and shown by ``tela data check`` and in run/eval info as
    #: ``source_notes``. Empty until a read; JSON-serialisable values only.
    stats: dict[str, Any]

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.stats = {}

    @abstractmethod
    def read(self, path: Path) -> Iterator[Record]:
        """Yield the records of ``path``. A plugin implements this; tela calls :meth:`records`."""

    def records(self, path: Path) -> Iterator[Record]:
        """:meth:`read`, with every record checked (prompt, label 1..5, outcomes in [0, 1], finite
        costs >= 0, ...) and a missing path reported in one line, so no source can hand the rest
        of tela a malformed record. What every core command calls; plugins need not override it."""
        if not Path(path).exists() and not self.reads_hub_ids:
            raise InputError(path, None, "file or folder not found")
        return checked_records(self.read(Path(path)), path, self.name)

    def sniff(self, path: Path) -> bool:
        """Whether this source can read ``path`` (used to detect the source of outcome data)."""
        return False


@dataclass(frozen=True)
class Formatted:
    """One formatted example: the prompt the router sees, and the completion it must produce.

    ``prompt + completion`` is the full training text; at inference only ``prompt`` is used.
    """

    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


class Formatter(Component):
    """Turns chat messages into prompt and completion text, the same way at train and serve time."""

    kind = "formatter"

    @abstractmethod
    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        """Format ``messages``. If the last message is the assistant's, it is the completion;
        otherwise the completion is empty and the prompt is what the router is shown at inference.
        """


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


class TrainSettings(BaseModel):
    """The ``tela run`` training flags a backend receives (``TrainJob.train``); a backend uses the
    ones that mean something to its trainer. The shared worker reads every one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float
    learning_rate: float
    batch_size: int
    grad_accum: int
    max_length: int
    max_steps: int | None = None
    """None: as many steps as ``epochs`` take."""
    warmup_ratio: float = 0.0
    """The share of all training steps over which the learning rate rises linearly from 0."""
    save_steps: int
    """A resumable checkpoint every N steps; 0: none."""
    seed: int


#: Where a run keeps its internals (config, data, checkpoints, logs), inside the output dir
#: (exported as :data:`tela_core.train.RUN_SUBDIR`).
RUN_SUBDIR = ".tela"

#: TrainJob fields that 0.1 and 0.2 handed a backend as keys of ``TrainJob.config``
_CONFIG_KEYS = ("train", "run_dir", "quiet", "nodes", "family", "formatter_options")


class _JobConfig(dict):  # type: ignore[type-arg]
    """``TrainJob.config`` as backends written for tela 0.2 read it: the job's typed fields under
    their old keys. Reading one of those keys warns, naming the field to use instead."""

    def __getitem__(self, key: Any) -> Any:
        _warn_config_key(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        _warn_config_key(key)
        return super().get(key, default)


def _warn_config_key(key: Any) -> None:
    """Warn, at the backend's line that read ``TrainJob.config[key]``, if ``key`` is now a field."""
    if key in _CONFIG_KEYS:
        warn_deprecated(f"TrainJob.config[{key!r}]", f"TrainJob.{key}", stacklevel=3)


@dataclass
class TrainJob:
    """Everything a backend needs, resolved by ``tela run`` and written to the run dir.

    ``train_file``/``eval_file`` are JSONL with ``prompt`` and ``completion`` fields (already
    formatted). ``output_dir`` receives the router artifact (see :mod:`tela_core.routing.artifact`).
    ``run_dir`` is the run's working folder inside it (checkpoints, logs; ``OUTPUT/.tela`` unless
    given), ``quiet`` asks for no progress bar, ``nodes`` places this node in a multi-node run
    (None: one node), ``train`` holds the training flags, ``family`` names the router family whose
    artifact the backend writes and ``formatter_options`` are the options the rows were formatted with.

    ``config`` is kept for backends written for tela 0.2, which read those fields as its keys
    (deprecated, with a warning); a job built with only ``config`` gets its fields from it.
    """

    model: str
    output_dir: Path
    train_file: Path
    eval_file: Path | None
    formatter: str
    config: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    hostfile: Path | None = None
    trust_remote_code: bool = False
    force: bool = False
    run_dir: Path | None = None
    quiet: bool = False
    nodes: NodeLaunch | None = None
    train: TrainSettings | None = None
    family: str | None = None
    formatter_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = dict(self.config)  # a plain copy: reading it must not warn
        if self.run_dir is None:
            self.run_dir = Path(given["run_dir"]) if given.get("run_dir") else Path(self.output_dir) / RUN_SUBDIR
        self.quiet = self.quiet or bool(given.get("quiet"))
        if self.nodes is None and given.get("nodes"):
            self.nodes = (
                given["nodes"] if isinstance(given["nodes"], NodeLaunch) else NodeLaunch.from_dict(given["nodes"])
            )
        if self.train is None and isinstance(given.get("train"), Mapping):
            try:
                self.train = TrainSettings.model_validate(given["train"])
            except ValueError:  # a partial dict some backend's own test built: left to that backend
                pass
        self.family = self.family or given.get("family")
        self.formatter_options = dict(self.formatter_options or given.get("formatter_options") or {})
        typed = {
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "quiet": self.quiet,
            "nodes": self.nodes.as_dict() if self.nodes is not None else None,
            "train": self.train.model_dump() if self.train is not None else None,
            "family": self.family,
            "formatter_options": dict(self.formatter_options),
        }
        given.update({k: v for k, v in typed.items() if v is not None})
        self.config = _JobConfig(given)


class Backend(Component):
    """Fine-tunes a base model on formatted examples and writes a router artifact."""

    kind = "backend"

    @abstractmethod
    def train(self, job: TrainJob) -> Path:
        """Train and return the artifact directory (normally ``job.output_dir``)."""


# ------------------------------------------------------------------------------------------------
# Routing
# ------------------------------------------------------------------------------------------------


@dataclass
class Scores:
    """What a scorer returns for a batch of prompts.

    ``w[i]`` = P(strong model needed) for prompt i, in [0, 1]; larger means "send to strong".
    ``probs`` is an (n, 5) array over scores 1..5 (rows sum to 1) when the family has one, else
    None. ``expected`` is the expected score 1..5 when ``probs`` is set.

    N-model families (those that predict every model's quality: kNN, matrix-factorization, ...)
    also fill ``quality``, an (n, len(models)) array of each model's predicted quality in [0, 1]
    (P(the model answers well) for 0/1 outcomes), with ``models`` naming its columns. N-model
    policies (cost-aware, budget, quality floor) choose from it; two-model policies read ``w``.

    Families that can tell how well their training data covers a prompt (``embedding-knn``) also
    fill ``coverage``, an (n,) array in [0, 1]: the share of the training prompts whose own
    neighbourhood is no closer than this prompt's (near 0: a prompt unlike anything the router
    learned from, so its predictions rest on little). ``tela serve``'s ``uncertainty`` shadow
    sampling prefers the least covered requests. None (the default) for families that cannot say.
    """

    w: np.ndarray
    probs: np.ndarray | None = None
    quality: np.ndarray | None = None
    models: tuple[str, ...] | None = None
    coverage: np.ndarray | None = None

    @property
    def expected(self) -> np.ndarray | None:
        if self.probs is None:
            return None
        import numpy as np

        return self.probs @ np.arange(1, 6, dtype=float)


@dataclass(frozen=True)
class LoadContext:
    """What the *caller* decides about loading a router, handed to :meth:`Scorer.load`; never read
    from the router's own files.

    ``trust_remote_code``: whether a model in the router may run its own Python code (the user's
    ``--trust-remote-code``). ``embedder``: the embedder the caller requires
    (``Router.load(path, embedder=NAME)``), or None; an embedding family refuses a router trained
    with another one. ``batch_size``: prompts per scorer call the caller asks for (``tela route
    --score-batch-size``, ``tela serve``), or None; already in the options of a family that has a
    ``batch_size`` option, and given here so a family that restores its saved options in ``load``
    keeps it (:meth:`tela_core.routing.family.FamilyScorer.check_manifest` does).
    """

    trust_remote_code: bool = False
    embedder: str | None = None
    batch_size: int | None = None


class Scorer(Component):
    """A router family: trains (optionally), saves, loads and scores prompts.

    ``load`` reads an artifact dir written by this family (or by a backend for it), with the
    caller's :class:`LoadContext`; ``score`` maps raw user prompts (the question text) to
    :class:`Scores`. Families that do not train through a backend implement ``fit``.

    The kind is ``family``, the word users see (``tela run --family``, ``tela plugins show family
    NAME``); the class is named for what a loaded instance does, score (``Router.scorer``). The
    kind's name before 0.2, ``scorer``, still works in the registry with a warning.
    """

    kind = "family"
    #: True when the family is trained by a backend (``tela run --backend``); False when it
    #: trains itself through :meth:`fit`.
    uses_backend: ClassVar[bool] = False
    #: True when the family embeds its prompts with an :class:`Embedder` (``UsesEmbedder`` sets
    #: it): only such a router can be loaded with a required embedder.
    uses_embedder: ClassVar[bool] = False

    def fit(self, train: Sequence[Record], output_dir: Path, config: Mapping[str, Any]) -> Path:
        """Train on ``train`` and write the router into ``output_dir``. The default refuses: the
        family is trained by a backend."""
        raise NotImplementedError(f"family {self.name!r} is trained by a backend, not fit()")

    @abstractmethod
    def load(self, artifact_dir: Path, context: LoadContext = LoadContext()) -> None:
        """Read the router in ``artifact_dir``. ``context`` holds the caller's choices (trust remote
        code, a required embedder, a batch size); a family never takes those from the artifact."""

    @abstractmethod
    def score(self, prompts: Sequence[str]) -> Scores:
        """``Scores`` of ``prompts`` (raw user questions): ``w`` and, when known, ``probs``."""

    # -- deprecated: how tela 0.2 handed the load context over, as attributes set before load -------

    @property
    def trust_remote_code(self) -> bool:
        """Deprecated (removed in tela 0.3): read ``context.trust_remote_code`` in :meth:`load`.
        What :meth:`~tela_core.routing.router.Router.load` was told, readable until then."""
        return bool(self.__dict__.get("_legacy_trust_remote_code", False))

    @trust_remote_code.setter
    def trust_remote_code(self, value: bool) -> None:
        self.__dict__["_legacy_trust_remote_code"] = bool(value)

    @property
    def expected_embedder(self) -> str | None:
        """Deprecated (removed in tela 0.3): read ``context.embedder`` in :meth:`load`. What
        :meth:`~tela_core.routing.router.Router.load` was told, readable until then."""
        value = self.__dict__.get("_legacy_expected_embedder")
        return str(value) if value is not None else None

    @expected_embedder.setter
    def expected_embedder(self, value: str | None) -> None:
        self.__dict__["_legacy_expected_embedder"] = value

    def _legacy_context(self) -> LoadContext:
        """The context a scorer whose ``load`` takes none was given, as the deprecated attributes
        hold it (what ``Router.load`` sets for such a scorer); for the family SDK's helpers."""
        return LoadContext(
            trust_remote_code=bool(self.__dict__.get("_legacy_trust_remote_code", False)),
            embedder=self.__dict__.get("_legacy_expected_embedder"),
        )


class Policy(Component):
    """Maps scores to a model choice. ``models`` are ordered weak/cheap first, strong last."""

    kind = "policy"

    @abstractmethod
    def choose(self, scores: Scores, models: Sequence[str]) -> list[str]:
        """One model of ``models`` per prompt of ``scores``."""


# ------------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------------


@dataclass
class UpstreamReply:
    """What :meth:`Upstream.chat` returns: the upstream's HTTP status and its answer.

    Not streaming, ``body`` is the parsed JSON answer (an error body when ``status`` is not 2xx).
    Streaming with a 2xx status, ``chunks`` yields the raw server-sent-event bytes as they arrive
    (chunk boundaries are arbitrary; the stream ends after ``data: [DONE]``), and ``body`` is None.
    ``close`` releases the connection; ``tela serve`` awaits it when the stream ends or the client
    goes away. ``headers`` holds an error answer's response headers with lower-case names (the
    builtin client leaves it None on a 2xx): ``tela collect`` honours ``retry-after`` of a 429.
    """

    status: int
    body: Any = None
    chunks: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    headers: Mapping[str, str] | None = None

    async def aclose(self) -> None:
        """Release the upstream connection (idempotent)."""
        close, self.close = self.close, None
        if close is not None:
            await close()


class Upstream(Component):
    """A client for one upstream model endpoint that ``tela serve`` forwards chat requests to.

    One instance per configured upstream, made once per server process and shared by every request
    (keep a connection pool on it). ``chat`` sends an OpenAI chat-completions request ``body``
    (already carrying the upstream's model id) and returns an :class:`UpstreamReply`. It raises
    :class:`tela_core.infra.errors.UpstreamError` when the upstream cannot be reached or times out;
    ``tela serve`` then falls back to the other model once.
    """

    kind = "upstream"

    @abstractmethod
    async def chat(self, body: Mapping[str, Any], stream: bool) -> UpstreamReply:
        """Send ``body`` to the upstream; the reply, streamed when ``stream``."""

    async def check(self, model: str) -> None:
        """Whether ``model`` can be called here (reachable, key accepted, model known), asked once
        before ``tela collect`` or ``tela judge`` spends anything. Raise
        :class:`tela_core.infra.errors.UpstreamError` (with ``status`` when the upstream answered
        with an HTTP error) when it cannot. The default sends a one-token chat request; a client
        whose API lists its models (``GET /models``) can ask that instead, for free."""
        reply = await self.chat(
            {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}, stream=False
        )
        if reply.status >= 300:
            body = reply.body
            err = body.get("error") if isinstance(body, Mapping) else None
            msg = err.get("message") if isinstance(err, Mapping) else err or body
            raise UpstreamError(
                f"HTTP {reply.status}: {' '.join(str(msg).split())[:300]}", reason="status", status=reply.status
            )

    async def aclose(self) -> None:
        """Close connections when the server stops."""
        return None


# ------------------------------------------------------------------------------------------------
# Judging
# ------------------------------------------------------------------------------------------------


@dataclass
class JudgeItem:
    """One prompt to judge: the chat the models were sent and each model's answer to it.

    ``messages`` are OpenAI-shaped chat messages, the prompt being the last user turn; ``answers``
    maps a model name to that model's answer text. ``weak`` and ``strong`` name the pair's cheap and
    strong models when known (the label is about the weak model's answer); ``reference`` is a
    reference answer when the data has one (what reference graders compare against).
    """

    id: str
    messages: list[dict[str, Any]]
    answers: dict[str, str]
    weak: str | None = None
    strong: str | None = None
    reference: str | None = None

    @property
    def prompt(self) -> str:
        """The last user turn's text (content parts joined), or "" if there is none."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message.get("content"))
        return ""


def message_text(content: Any) -> str:
    """A chat message's ``content`` as text: a string as is, OpenAI content parts' text joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return str(content)


@dataclass
class JudgeRequest:
    """One call to the judge model: chat ``messages`` (OpenAI shape), and a cap on the reply's tokens."""

    messages: list[dict[str, Any]]
    max_tokens: int | None = None


@dataclass
class Verdict:
    """What a judge concludes about one item.

    ``label`` is the seed's 1..5 score of the weak model's answer (``[[k]]`` in the records), or
    None when the judge gives none (e.g. the weak model is not known). ``outcomes`` maps a model to
    the quality of its answer in [0, 1]: correctness 0/1 for reference graders, 1/0/0.5 (win, loss,
    tie) for pairwise, (k - 1) / 4 for a 1..5 score. ``detail`` keeps what the judge said and what was
    read from it (raw replies, parsed scores, extracted answers), JSON-serialisable, for the record.
    """

    label: int | None
    outcomes: dict[str, float]
    detail: dict[str, Any] = field(default_factory=dict)


class Judge(Component):
    """Decides how good each model's answer to a prompt is, from a judge model's replies or by rule.

    A judge is pure: :meth:`requests` builds the calls to the judge model, :meth:`verdict` reads
    the replies. ``tela judge`` sends the requests (bounded concurrency, retries, budget, resume),
    so a judge never touches the network. A reply that cannot be read raises
    :class:`tela_core.infra.errors.JudgeOutputError`: the call is retried, then recorded as an error,
    never guessed.
    """

    kind = "judge"
    #: True when the judge calls a judge model (``tela judge`` then needs an upstream for it).
    needs_upstream: ClassVar[bool] = True
    #: True when the judge needs each item's reference answer (``tela judge`` refuses data without).
    needs_reference: ClassVar[bool] = False

    @abstractmethod
    def requests(self, item: JudgeItem) -> list[JudgeRequest]:
        """The judge-model calls ``item`` needs, in order; ``[]`` when it needs none."""

    @abstractmethod
    def verdict(self, item: JudgeItem, replies: list[str]) -> Verdict:
        """The verdict on ``item`` from ``replies`` (``replies[i]`` answers ``requests(item)[i]``).

        Raise :class:`tela_core.infra.errors.JudgeOutputError` when a reply cannot be read."""


# ------------------------------------------------------------------------------------------------
# Embedding
# ------------------------------------------------------------------------------------------------


class Embedder(Component):
    """Turns texts into fixed-size vectors for the embedding families (``embedding-knn``,
    ``embedding-linear``, ``matrix-factorization``, ``ensemble`` members).

    A family chooses its embedder by option (``--set family.embedder=NAME``) and records it in its
    manifest, so a router embeds at serving time exactly as in training. :meth:`embed` is the only
    method to implement: tela caches its vectors (by content hash in ``$TELA_CACHE/embeddings/``
    while training and evaluating, in an LRU in ``tela serve``), calls it on chunks of texts
    sorted by length, and shows progress. Load models lazily, on the first call, and import heavy
    libraries inside methods. A missing library is one line naming ``install``.
    """

    kind = "embedder"
    #: The command that installs what :meth:`embed` needs (shown when an import fails).
    install: ClassVar[str] = ""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, d) float32 array, one L2-normalised row per text, in order; the same row for the
        same text on every call."""

    def cache_key(self) -> str:
        """Folder name of this embedder's vectors in the shard cache (texts are hashed under it).
        Default: the name, plus a hash of the options when they are not the defaults; override it
        when something else changes the vectors (a model path, say)."""
        import hashlib
        import json

        opts = self.options.model_dump(mode="json")
        try:
            if opts == self.Options().model_dump(mode="json"):
                return self.name
        except Exception:  # an Options with required fields has no defaults to compare with
            pass
        digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"


# ------------------------------------------------------------------------------------------------
# The kinds: one row each, read by the hook specs (tela_core.hookspecs), the registry and the CLI
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindSpec:
    """One kind of thing a plugin registers, declared once.

    :mod:`tela_core.hookspecs` makes its register hook from the row (``hook``, with ``doc`` and
    ``since`` as the docstring), the registry fills it by calling that hook, and ``tela plugins``
    lists it. ``base`` is the component class ``register`` accepts (its ``kind`` is the kind's
    name); a kind that is not a component (a catalogued dataset) names what ``register`` takes in
    ``registers`` and has no base. Adding a kind: its base class above, a row below, its export in
    ``tela_core/__init__.py``, and its section in ``docs/plugins.md``. ``aliases`` are the kind's
    former names, which the registry still accepts with a ``TelaDeprecationWarning``.
    """

    kind: str
    hook: str
    base: type[Component] | None
    since: str
    doc: str
    registers: str = ""
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(cls, base: type[Component], hook: str, since: str, doc: str, aliases: tuple[str, ...] = ()) -> KindSpec:
        """The row of a component kind: named by ``base.kind``, registering ``base`` subclasses."""
        return cls(base.kind, hook, base, since, doc, f"{base.__name__}Class", aliases)


#: Every kind a plugin registers through a ``register`` hook, in the order ``tela plugins list``
#: shows them. The one list: the hooks, :data:`KINDS` and the registry's tables derive from it.
REGISTERED: tuple[KindSpec, ...] = (
    KindSpec.of(
        Source,
        "tela_register_sources",
        "0.1",
        """Register data sources (:class:`tela_core.components.Source` subclasses).

    A source reads a file (or folder) and yields validated :class:`tela_core.data.records.Record`
    objects; outcome sources also fill ``outcomes`` and ``costs``.""",
    ),
    KindSpec.of(
        Formatter,
        "tela_register_formatters",
        "0.1",
        """Register formatters (:class:`tela_core.components.Formatter` subclasses).

    A formatter turns chat messages into (prompt text, completion text); the same method
    builds the inference prompt, so training and serving cannot drift apart.""",
    ),
    KindSpec.of(
        Backend,
        "tela_register_backends",
        "0.1",
        """Register trainer backends (:class:`tela_core.components.Backend` subclasses).

    A backend fine-tunes a base model on formatted examples and leaves a router artifact.""",
    ),
    KindSpec.of(
        Scorer,
        "tela_register_scorers",
        "0.1",
        """Register router families (:class:`tela_core.components.Scorer` subclasses), the kind
    ``family`` (``tela run --family NAME``; called ``scorer`` before 0.2).

    A family trains (or is trained by a backend), and its scorer loads a router artifact and maps
    prompts to a 1..5 score distribution and to ``w`` = P(strong model needed).""",
        aliases=("scorer",),
    ),
    KindSpec.of(
        Policy,
        "tela_register_policies",
        "0.1",
        """Register router policies (:class:`tela_core.components.Policy` subclasses).

    A policy maps scores to a model choice (threshold, calibrated, tiers, ...).""",
    ),
    KindSpec.of(
        Upstream,
        "tela_register_upstreams",
        "0.1",
        """Register upstream clients (:class:`tela_core.components.Upstream` subclasses).

    An upstream client forwards ``tela serve``'s chat requests to a model endpoint over some
    protocol (the builtin ``openai`` speaks OpenAI's chat-completions API).""",
    ),
    KindSpec.of(
        Judge,
        "tela_register_judges",
        "0.2",
        """Register judges (:class:`tela_core.components.Judge` subclasses) for ``tela judge``.

    A judge decides how good each model's answer to a prompt is: it builds the requests to a judge
    model and reads the replies (``llm-judge``, ``pairwise``), or grades by rule against a reference
    answer (``reference``), and returns a :class:`tela_core.components.Verdict`: the 1..5 label of
    the weak model's answer and per-model outcomes. Judges are pure; ``tela judge`` makes the calls.""",
    ),
    KindSpec.of(
        Embedder,
        "tela_register_embedders",
        "0.2",
        """Register embedders (:class:`tela_core.components.Embedder` subclasses).

    An embedder turns texts into fixed-size vectors for the embedding families, which choose one
    by option (``--set family.embedder=NAME``) and record it in the router's manifest (builtins:
    ``minilm``, ``minilm-onnx``, ``minilm-onnx-int8``, ``model2vec``, ``sentence-transformers``).""",
    ),
    KindSpec(
        "dataset",
        "tela_register_datasets",
        None,
        "0.1",
        """Register public datasets for ``tela data list`` / ``tela data get``.

    Each is a :class:`tela_core.data.catalogue.DatasetEntry`: origin, license, pinned revision, and the
    files to fetch with their SHA-256 (``None`` where no checksum could be verified).""",
        registers="DatasetEntry(...)",
    ),
)

#: The component kinds (the rows with a base class), in the order ``tela plugins list`` shows them.
KINDS: tuple[str, ...] = tuple(k.kind for k in REGISTERED if k.base is not None)

#: A kind's former name -> its name (``scorer`` -> ``family``), from the rows' ``aliases``.
KIND_ALIASES: dict[str, str] = {old: k.kind for k in REGISTERED for old in k.aliases}
