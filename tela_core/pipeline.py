"""What ``tela run`` does: resolve the config, prepare data, guard the output dir, launch, finish.

1. :class:`RunConfig` holds every setting (defaults < ``--config`` file < CLI flags), validated
   before anything is written.
2. :func:`prepare_data` reads records through the source plugin, samples and splits them
   (:mod:`tela_core.sampling`, seed 42), formats them with the formatter plugin and writes
   ``train.jsonl``/``eval.jsonl`` (prompt/completion) into the run dir ``OUTPUT/.tela``.
3. :func:`check_output` refuses a different config on an existing output dir unless ``--force``;
   the same config resumes (from the last checkpoint) or reports that the router is done.
4. The backend trains through :func:`launch_workers`, which starts the launcher (``torchrun`` on
   one node, ``deepspeed --hostfile`` across nodes) on a worker module, streams rank 0's progress
   into a rich progress bar and turns a failure into a :class:`TelaError` with the log's tail.
5. :func:`run` writes the manifest and the default policy last: an output dir with ``tela.json``
   is a finished router.

Heavy libraries are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import TelaError
from .io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from .multinode import NodeLaunch

__all__ = [
    "RUN_SUBDIR",
    "RunConfig",
    "load_config_file",
    "parse_overrides",
    "resolve_config",
    "prepare_data",
    "check_output",
    "launch_workers",
    "run",
]

#: Where a run keeps its internals (config, data, checkpoints, logs), inside the output dir.
RUN_SUBDIR = ".tela"


#: RunConfig fields that place this node in a multi-node run (not part of the fingerprint).
LAUNCH_FIELDS = ("nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint")


class RunConfig(BaseModel):
    """Every setting of one ``tela run``. Training defaults follow the seed where it makes sense
    (3 epochs, effective batch 8, max length 2048, 10% eval split, seed 42); the seed's batch
    1 × accumulation 8 becomes batch 8 × accumulation 1 with dynamic padding (same effective batch).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = "detect"
    source_options: dict[str, Any] = Field(default_factory=dict)
    data: Path
    formatter: str = "role-prefix"
    formatter_options: dict[str, Any] = Field(default_factory=dict)
    family: str = "score-token"
    family_options: dict[str, Any] = Field(default_factory=dict)
    backend: str = "deepspeed-z3"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    output: Path
    processes: int = 1
    hostfile: Path | None = None
    # Multi-node placement (None: from the scheduler's environment, see tela_core.multinode).
    # Where the run is launched, not what it trains: left out of the fingerprint, like hostfile.
    nnodes: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None
    rdzv_endpoint: str | None = None
    trust_remote_code: bool = False
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 2048
    max_steps: int | None = None
    warmup_ratio: float = 0.0
    save_steps: int = 50
    sample: int | None = None
    eval_fraction: float = 0.1
    seed: int = 42

    @field_validator("processes")
    @classmethod
    def _processes(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v

    @field_validator("batch_size", "grad_accum", "max_length")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v

    @field_validator("epochs", "learning_rate")
    @classmethod
    def _positive_float(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:  # nan compares false with everything: check it by name
            raise ValueError(f"must be a positive finite number, got {v}")
        return v

    @field_validator("eval_fraction", "warmup_ratio")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not math.isfinite(v) or not 0 <= v < 1:
            raise ValueError(f"must be in [0, 1), got {v}")
        return v

    @field_validator("max_steps", "sample")
    @classmethod
    def _positive_or_none(cls, v: int | None) -> int | None:
        if v is not None and v < 1:  # 0 must not quietly mean "no limit" / "everything"
            raise ValueError(f"must be at least 1 (leave it out for no limit), got {v}")
        return v

    @field_validator("save_steps")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be 0 or more, got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v < 2**32:  # numpy's RandomState (the seed's sampling) takes 32-bit seeds
            raise ValueError(f"must be in [0, 2**32), got {v}")
        return v

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> "RunConfig":
        """Validate ``values``; a :class:`TelaError` naming each bad option otherwise."""
        try:
            return cls(**dict(values))
        except ValidationError as e:
            problems = "; ".join(
                f"--{'.'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}"
                for err in e.errors()
            )
            raise TelaError(f"bad run options: {problems}") from None

    def train_settings(self) -> dict[str, Any]:
        """The settings a training worker needs."""
        return {
            k: getattr(self, k)
            for k in ("epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "max_steps",
                      "warmup_ratio", "save_steps", "seed")
        }

    def fingerprint(self) -> str:
        """Hash of everything that changes the trained router (not where or how it is launched)."""
        d = self.model_dump(mode="json", exclude={"output", "hostfile", *LAUNCH_FIELDS})
        d["data"] = str(Path(self.data).resolve()) if Path(self.data).exists() else str(self.data)  # or a hub id
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Config files and overrides
# ------------------------------------------------------------------------------------------------


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) run config.

    Top-level keys are run options (``epochs``, ``learning_rate``, ...); the sections ``backend``,
    ``family`` and ``source`` hold options of those components, e.g.::

        backend: deepspeed-z3
        epochs: 1
        backend_options: {offload_optimizer: true}
    """
    p = Path(path)
    if not p.is_file():
        raise TelaError(f"{p}: config file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise TelaError(f"{p}:{line}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TelaError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except RecursionError:
        raise TelaError(f"{p}: nested too deeply to read") from None
    except Exception as e:  # yaml/toml parse errors carry line numbers in their message
        said = " ".join(str(e).split())
        raise TelaError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'YAML'}: {said}") from None
    if not isinstance(data, dict):
        raise TelaError(f"{p}: expected a mapping of options at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_assignment(
    item: str, flag: str = "--set", example: str = "backend.r=8", shape: str = "SECTION.KEY=VALUE"
) -> tuple[str, str, Any]:
    """``"SECTION.KEY=VALUE"`` -> (section, key, value), the one syntax of ``tela run --set`` and
    ``tela zoo --set``. VALUE is read as a YAML scalar or flow collection (``8`` is an int,
    ``true`` a bool, ``[a, b]`` a list, ``{k: 5}`` a mapping); anything else stays a string.
    Dashes in KEY become underscores (``max-train`` = ``max_train``).
    """
    import yaml

    key, sep, raw = item.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or not section or not name:
        raise TelaError(f"{flag} {item!r}: expected {shape}, e.g. {flag} {example}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return section, name.replace("-", "_"), value


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set backend.r=8 --set family.k=5`` -> ``{"backend_options": {"r": 8}, ...}``."""
    sections = {
        "backend": "backend_options", "family": "family_options", "source": "source_options",
        "formatter": "formatter_options",
    }
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        section, name, value = parse_assignment(item)
        if section not in sections:
            raise TelaError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(sections)}"
            )
        out.setdefault(sections[section], {})[name] = value
    return out


def resolve_config(
    config_file: str | Path | None, flags: Mapping[str, Any], overrides: Sequence[str] = ()
) -> RunConfig:
    """Defaults < ``config_file`` < ``flags`` (the CLI flags given, None meaning "not given") <
    ``--set`` overrides (merged into the component option sections)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    for section, opts in parse_overrides(overrides).items():
        values[section] = {**dict(values.get(section) or {}), **opts}
    try:
        return RunConfig.build(values)
    except TelaError as e:
        if config_file:  # say where the values came from: the user may not have typed them
            raise TelaError(f"{e} (options read from {config_file} and the command line)") from None
        raise


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def data_source(cfg: RunConfig) -> Any:
    """The source instance that reads ``cfg.data`` (named, or detected from the path). The user's
    ``--set source.KEY`` options are checked against it even when it was detected: a misspelt
    option is an error, never dropped."""
    from .detect import DETECT, detect_source
    from .plugins import get_registry

    named = None if cfg.source in (None, DETECT) else get_registry().get("source", cfg.source)
    if not Path(cfg.data).exists() and not getattr(named, "reads_hub_ids", False):  # hub ids: the source says
        raise TelaError(f"{cfg.data}: data file not found")
    name = detect_source(Path(cfg.data)) if cfg.source in (None, DETECT) else cfg.source
    return get_registry().create("source", name, cfg.source_options)


def read_records(cfg: RunConfig) -> list[Any]:
    """All records of ``cfg.data`` through the source plugin."""
    source = data_source(cfg)
    records = list(source.records(Path(cfg.data)))
    if not records:
        raise TelaError(f"{cfg.data}: no records")
    return records


def _source_pair(cfg: RunConfig) -> dict[str, str]:
    """The weak/strong models the source is set to (outcome sources have defaults, e.g. RouteLLM's
    Mixtral/GPT-4), for a family whose options do not name them: with N models in the outcomes a
    family cannot infer the pair itself."""
    from .detect import open_source

    opts = getattr(open_source(Path(cfg.data), cfg.source, cfg.source_options), "options", None)
    out = {}
    for key, attr in (("weak", "weak_model"), ("strong", "strong_model")):
        value = getattr(opts, attr, None)
        if value and key not in cfg.family_options:
            out[key] = value
    return out


def data_pair(cfg: RunConfig, records: Sequence[Any]) -> dict[str, str]:
    """``{"weak": ..., "strong": ...}``: the models the data's outcomes name (the source's pair, or
    the two models it holds), which a trained router routes between; ``{}`` for data without
    per-model outcomes (seed JSONL with labels only), whose router keeps the names weak/strong."""
    from .detect import open_source
    from .targets import resolve_pair

    source = open_source(Path(cfg.data), cfg.source, cfg.source_options)
    try:
        weak, strong = resolve_pair(records, None, None, source)
    except TelaError:
        return {}
    return {"weak": weak, "strong": strong}


def split_records(cfg: RunConfig, records: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The seed's sample (``--sample``) then train/eval split, both with ``cfg.seed``."""
    from .sampling import split, subsample

    chosen = subsample(records, cfg.sample, seed=cfg.seed)
    if cfg.eval_fraction <= 0:
        return list(chosen), []
    train, evals = split(chosen, eval_fraction=cfg.eval_fraction, seed=cfg.seed)
    return list(train), list(evals)


def format_rows(cfg: RunConfig, records: Sequence[Any], tokenizer: Any = None) -> list[dict[str, Any]]:
    """``records`` as the formatter turns them into prompt/completion rows (in memory, so a record
    that cannot train fails before anything is written)."""
    from .plugins import get_registry

    formatter = get_registry().create("formatter", cfg.formatter, cfg.formatter_options)
    rows = []
    for r in records:
        if not r.messages or r.messages[-1]["role"] != "assistant":
            raise TelaError(f"{cfg.data}: record {r.id or r.prompt[:40]!r} has no assistant score [[k]] to train on")
        f = formatter.format(r.messages, tokenizer)
        rows.append({"prompt": f.prompt, "completion": f.completion, "label": r.label, "id": r.id})
    return rows


def data_summary(cfg: RunConfig, records: Sequence[Any], train: Sequence[Any], evals: Sequence[Any]) -> dict[str, Any]:
    """What the manifest records about the training data (path, SHA-256, counts, split)."""
    digest = hashlib.sha256(Path(cfg.data).read_bytes()).hexdigest() if Path(cfg.data).is_file() else None
    return {
        "source": cfg.source,
        "path": str(Path(cfg.data).resolve()) if Path(cfg.data).exists() else str(cfg.data),
        "sha256": digest,
        "records": len(records),
        "sample": cfg.sample,
        "train": len(train),
        "eval": len(evals),
        "eval_fraction": cfg.eval_fraction,
        "seed": cfg.seed,
    }


def prepare_data(
    cfg: RunConfig, records: Sequence[Any], run_dir: Path, tokenizer: Any = None, formatted: bool = True
) -> dict[str, Any]:
    """Sample, split and (if ``formatted``) format ``records``; write ``train.jsonl``/``eval.jsonl``
    (prompt/completion) into ``run_dir``.

    Returns a summary for the manifest. Records without a label cannot train a score-token router.
    """
    train, evals = split_records(cfg, records)
    if formatted:
        rows = {"train.jsonl": format_rows(cfg, train, tokenizer), "eval.jsonl": format_rows(cfg, evals, tokenizer)}
        write_rows(run_dir, rows)
    return data_summary(cfg, records, train, evals)


def write_rows(run_dir: Path, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Write formatted rows as JSONL files (name -> rows) into ``run_dir``, each atomically."""
    for name, part in rows.items():
        atomic_write_text(run_dir / name, "".join(json.dumps(row) + "\n" for row in part))


# ------------------------------------------------------------------------------------------------
# Output dir
# ------------------------------------------------------------------------------------------------


def check_output(output: Path, fingerprint: str, force: bool, config: Mapping[str, Any] | None = None) -> str:
    """Decide what to do with ``output``: ``"new"``, ``"resume"`` or ``"done"``.

    A different config on an existing run is refused unless ``force`` (which clears the old run);
    a non-empty directory that is not a tela run is never cleared.
    """
    out = Path(output)
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise TelaError(f"{out} exists and is not a directory")
    state_file = out / RUN_SUBDIR / "run.json"
    if not state_file.is_file():
        if any(out.iterdir()):
            raise TelaError(f"{out} exists and is not a tela run; choose another --output or remove it")
        return "new"
    try:
        previous = json.loads(state_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        previous = {}
    same = previous.get("fingerprint") == fingerprint
    if not same or force:
        if not force:
            changed = _changed_keys(previous.get("config") or {}, config or {})
            raise TelaError(
                f"{out} holds a run with a different config"
                + (f" (differs in: {', '.join(changed)})" if changed else "")
                + "; pass --force to replace it, or choose another --output"
            )
        shutil.rmtree(out)
        return "new"
    return "done" if (out / "tela.json").is_file() else "resume"


def _changed_keys(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(previous) | set(current) if k not in ("output", "hostfile", *LAUNCH_FIELDS) and previous.get(k) != current.get(k))


# ------------------------------------------------------------------------------------------------
# Launch
# ------------------------------------------------------------------------------------------------


def node_launch(cfg: RunConfig) -> "NodeLaunch":
    """This node's place in the run: ``cfg``'s multi-node options, else the scheduler's environment
    variables (:func:`tela_core.multinode.resolve_nodes`)."""
    from .multinode import resolve_nodes

    if cfg.hostfile is not None and any(getattr(cfg, k) is not None for k in ("nnodes", "node_rank", "rdzv_endpoint")):
        raise TelaError("--hostfile starts every node itself (deepspeed over ssh); drop --nnodes/--node-rank/--rdzv-endpoint, "
                        "or drop --hostfile and start one `tela run` per node")
    if cfg.hostfile is not None:
        from .multinode import NodeLaunch

        return NodeLaunch(master_addr=cfg.master_addr, master_port=cfg.master_port)
    return resolve_nodes(cfg.nnodes, cfg.node_rank, cfg.master_addr, cfg.master_port, cfg.rdzv_endpoint)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher_command(
    module: str, run_dir: Path, processes: int, hostfile: Path | None, nodes: "NodeLaunch | None" = None
) -> list[str]:
    """The command that starts ``processes`` workers of ``python -m module run_dir`` on this node.

    - ``hostfile``: ``deepspeed --hostfile`` (it reaches the other hosts itself, over pdsh/ssh);
      ``nodes.master_addr``/``master_port`` are passed on when set.
    - ``nodes`` with more than one node: one ``torchrun`` per node, as a scheduler starts them:
      a static rendezvous (``--node_rank`` at ``--master_addr:--master_port``), or torchrun's
      elastic c10d rendezvous at ``nodes.rdzv_endpoint``.
    - otherwise: ``torchrun`` on this node alone, on a free loopback port.
    """
    if hostfile is not None:
        exe = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
        # --no_local_rank: the worker takes the run dir as its only argument (ranks read LOCAL_RANK)
        cmd = [exe, "--hostfile", str(hostfile), "--num_gpus", str(processes), "--no_local_rank"]
        if nodes is not None and nodes.master_addr:
            cmd += ["--master_addr", nodes.master_addr]
        if nodes is not None and nodes.master_port:
            cmd += ["--master_port", str(nodes.master_port)]
        return cmd + ["--module", module, str(run_dir)]
    head = [sys.executable, "-m", "torch.distributed.run"]
    if nodes is not None and nodes.multi:
        if nodes.rdzv_endpoint:
            where = ["--rdzv_backend", "c10d", "--rdzv_endpoint", nodes.rdzv_endpoint, "--rdzv_id", str(nodes.rdzv_id)]
        else:
            where = ["--node_rank", str(nodes.node_rank), "--master_addr", str(nodes.master_addr),
                     "--master_port", str(nodes.master_port)]
        return head + ["--nnodes", str(nodes.nnodes), "--nproc_per_node", str(processes), *where,
                       "--module", module, str(run_dir)]
    return head + [
        "--nnodes", "1", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "--module", module, str(run_dir),
    ]


def worker_env(processes: int) -> dict[str, str]:
    """Environment for the workers: offline, quiet, and threads split between local ranks."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    # A scheduler's per-node variables describe the launcher's place, not the workers': torchrun
    # sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* for each worker, and stale ones must not leak past it.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK"):
        env.pop(name, None)
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(os.environ.get("TELA_CACHE") or Path.home() / ".cache" / "tela") / "torch_extensions"))
    # the worker module lives in an installed plugin; make sure a source checkout is importable too
    return env


#: Variables the workers on *other* hosts need too; ``deepspeed --hostfile`` forwards only its own
#: prefixes (PYTHON*, NCCL*, ...) over pdsh, plus what ``DS_ENV_FILE`` lists.
_FORWARDED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM",
              "OMP_NUM_THREADS", "TELA_CACHE", "TORCH_EXTENSIONS_DIR", "HF_HOME")


def _deepspeed_env_file(run_dir: Path, env: Mapping[str, str]) -> Path:
    """Write the ``KEY=VALUE`` file DeepSpeed exports on every host (``DS_ENV_FILE``): tela's worker
    settings only, never the whole environment (it may hold secrets)."""
    path = run_dir / "deepspeed_env"
    atomic_write_text(path, "".join(f"{k}={env[k]}\n" for k in _FORWARDED if env.get(k) and "\n" not in env[k]))
    return path


def _term_with_parent() -> None:
    """In the launcher's child process (Linux): SIGTERM it when ``tela run`` dies, so it stops its ranks."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except OSError:
        pass


def launch_workers(
    run_dir: Path,
    module: str,
    spec: Mapping[str, Any],
    processes: int = 1,
    hostfile: Path | None = None,
    quiet: bool = False,
    nodes: "NodeLaunch | Mapping[str, Any] | None" = None,
) -> dict[str, Any]:
    """Write ``spec`` to ``run_dir/worker.json``, run the workers, stream progress; return the
    last attempt's record (``attempts.jsonl``). Output of every rank goes to ``run_dir/train.log``.

    ``nodes`` (a :class:`~tela_core.multinode.NodeLaunch` or its ``as_dict``) places this node in a
    multi-node run. Only the node holding global rank 0 gets a record; every other node returns
    ``{"rank0": False, ...}`` once its ranks exit cleanly (the router is written on node 0).
    """
    from .multinode import NodeLaunch

    if not isinstance(nodes, NodeLaunch):
        nodes = NodeLaunch.from_dict(nodes)
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = run_dir / "trained.json"
    if trained.is_file():  # the workers finished before; only post-processing was interrupted
        return json.loads(trained.read_text(encoding="utf-8"))
    atomic_write_json(run_dir / "worker.json", dict(spec))
    progress_file = run_dir / "progress.jsonl"
    attempts = run_dir / "attempts.jsonl"
    n_attempts = len(attempts.read_text().splitlines()) if attempts.exists() else 0
    offset = progress_file.stat().st_size if progress_file.exists() else 0
    cmd = launcher_command(module, run_dir, processes, hostfile, nodes)
    log_path = run_dir / "train.log"
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        env = worker_env(processes)
        if hostfile is not None:
            env["DS_ENV_FILE"] = str(_deepspeed_env_file(run_dir, env))
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_term_with_parent if sys.platform.startswith("linux") else None)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM,)}

        def _stop(signum: int, frame: Any) -> None:
            proc.terminate()
            raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGTERM, _stop)
        except ValueError:  # not the main thread
            previous = {}
        try:
            _stream(proc, progress_file, offset, quiet)
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise TelaError(f"training interrupted; rerun the same command to resume ({run_dir / 'checkpoints'})") from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise TelaError(f"training failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    lines = attempts.read_text().splitlines() if attempts.exists() else []
    if len(lines) <= n_attempts and nodes.multi:  # rank 0 lives on another node and wrote there
        return {"rank0": False, "nnodes": nodes.nnodes, "node_rank": nodes.node_rank}
    if len(lines) <= n_attempts:
        raise TelaError(f"training exited without recording a result; see {log_path}")
    return json.loads(lines[-1])


def _stream(proc: subprocess.Popen, progress_file: Path, offset: int, quiet: bool) -> None:
    """Follow rank 0's progress lines until the launcher exits."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True, quiet=quiet)
    columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=None, info="starting workers…")
        pos = offset
        while True:
            done = proc.poll() is not None
            if progress_file.exists():
                with open(progress_file, encoding="utf-8") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    # only consume complete lines
                    cut = chunk.rfind("\n") + 1
                    pos += len(chunk[:cut].encode())
                for line in chunk[:cut].splitlines():
                    try:
                        ev = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    total = ev.get("max_steps") or None
                    info = "resumed" if ev.get("event") == "begin" and ev.get("step") else ""
                    if ev.get("loss") is not None:
                        info = f"loss {ev['loss']:.4f}  epoch {ev.get('epoch') or 0:.2f}"
                    bar.update(task, total=total, completed=ev.get("step", 0), info=info)
            if done:
                return
            time.sleep(0.5)


# ------------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------------


#: Run settings that only a family trained by a backend (``uses_backend``, e.g. score-token) reads.
BACKEND_SETTINGS = (
    "backend", "backend_options", "model", "processes", "hostfile", *LAUNCH_FIELDS, "trust_remote_code", "formatter", "formatter_options", "epochs",
    "learning_rate", "batch_size", "grad_accum", "max_length", "max_steps", "warmup_ratio", "save_steps",
)


def check_settings_used(cfg: RunConfig, uses_backend: bool) -> None:
    """Refuse settings the family would silently ignore (``--model`` for ``length``, say): a user who
    passes them expects them to matter."""
    if uses_backend:
        return
    given = [k for k in BACKEND_SETTINGS if k in cfg.model_fields_set]
    if given:
        flags = ", ".join("--set backend.*" if k == "backend_options" else f"--{k.replace('_', '-')}" for k in given)
        raise TelaError(
            f"family {cfg.family!r} trains itself, without a backend or base model, and would ignore {flags}; "
            "drop them (they apply to backend-trained families such as score-token), or set its own options "
            "with --set family.KEY=VALUE"
        )


def check_output_path(out: Path) -> None:
    """One-line errors for an output that cannot be a directory tela writes: a file, a path under a
    file, a read-only dir or mount. Writes nothing."""
    from .io import check_dir_writable

    if out.exists() and not out.is_dir():
        raise TelaError(f"{out} exists and is not a directory; choose another --output")
    check_dir_writable(out if out.is_dir() else out.parent, out)


def run(cfg: RunConfig, force: bool = False, quiet: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Train the router ``cfg`` describes into ``cfg.output`` and return that directory.

    Every option and the data are checked before anything is written; the output dir is locked
    (:mod:`tela_core.locks`) from the first write to the last. A family that trains itself is fit
    into a hidden staging dir beside the output and moved into place when done; a backend run
    writes its marker (``.tela/run.json``) only once training starts, so that a run refused for a
    bad option never blocks the corrected one.
    """
    from .duplicates import find_duplicates
    from .io import remove_stale_partials
    from .locks import output_lock
    from .plugins import get_registry

    reg = get_registry()
    reg.create("formatter", cfg.formatter, cfg.formatter_options)  # unknown names and bad options fail before anything is written
    scorer_cls = reg.get("scorer", cfg.family)
    uses_backend = bool(getattr(scorer_cls, "uses_backend", False))
    check_settings_used(cfg, uses_backend)
    backend = reg.create("backend", cfg.backend, cfg.backend_options) if uses_backend else None
    family = reg.create("scorer", cfg.family, cfg.family_options)  # bad family options fail here too
    if backend is not None and hasattr(backend, "check"):
        backend.check()  # e.g. a user DeepSpeed config that is missing or not JSON
    if cfg.hostfile is not None and not Path(cfg.hostfile).is_file():
        raise TelaError(f"{cfg.hostfile}: hostfile not found")
    nodes = node_launch(cfg) if uses_backend else None  # a bad --nnodes/--node-rank fails before any write
    data_source(cfg)  # a missing data file or a bad --set source.* fails before the model loads
    model = None
    if uses_backend:
        from .models import resolve_model

        model = resolve_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
    records = read_records(cfg)
    dups = find_duplicates(records).warning()
    if dups:
        echo(dups)
    train, evals = split_records(cfg, records)
    if not train:
        raise TelaError(f"{cfg.data}: the split leaves no training records ({len(records)} read); lower --eval-fraction")
    rows: dict[str, list[dict[str, Any]]] | None = None
    if model is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model.path), trust_remote_code=cfg.trust_remote_code)
        rows = {"train.jsonl": format_rows(cfg, train, tokenizer), "eval.jsonl": format_rows(cfg, evals, tokenizer)}

    out = Path(cfg.output)
    check_output_path(out)
    with output_lock(out):
        remove_stale_partials(out)
        state = check_output(out, cfg.fingerprint(), force, cfg.model_dump(mode="json"))
        if state == "done":
            echo(f"{out} is already trained with this config; nothing to do (pass --force to retrain)")
            return out
        if state == "resume":
            echo(f"resuming the run in {out}")
        summary = data_summary(cfg, records, train, evals)
        if backend is None:
            _fit_family(cfg, family, train, out, summary)
            return out
        assert model is not None and rows is not None
        return _train_with_backend(cfg, backend, model, rows, records, train, summary, out, force, quiet, echo, nodes)


def _marker(cfg: RunConfig) -> dict[str, Any]:
    return {"fingerprint": cfg.fingerprint(), "config": cfg.model_dump(mode="json"), "argv": sys.argv}


def _fit_family(cfg: RunConfig, family: Any, train: Sequence[Any], out: Path, summary: dict[str, Any]) -> None:
    """Fit a self-training family into a staging dir beside ``out``, then move it into place."""
    from .artifact import read_manifest, write_manifest, write_policy
    from .fingerprint import SKETCH_KEY, prompt_sketch
    from .io import staged_dir

    config = cfg.model_dump(mode="json")
    # out is missing, an empty dir, a forced replacement or an unfinished older run: replaced whole
    with staged_dir(out) as stage:
        family.fit(train, stage, {"run": config, "formatter": cfg.formatter, "seed": cfg.seed, **_source_pair(cfg)})
        if not (stage / "policy.json").exists():
            write_policy(stage, "threshold", {"threshold": 0.5})
        manifest = read_manifest(stage)
        extra = {k: v for k, v in manifest.items() if k not in ("tela_artifact", "scorer", "created", "plugins")}
        extra.update(data=summary, config=config, **{SKETCH_KEY: prompt_sketch(r.prompt for r in train)})
        write_manifest(stage, scorer=manifest["scorer"], **extra)
        (stage / RUN_SUBDIR).mkdir(exist_ok=True)
        atomic_write_json(stage / RUN_SUBDIR / "run.json", _marker(cfg))


def _train_with_backend(
    cfg: RunConfig, backend: Any, model: Any, rows: Mapping[str, Sequence[Mapping[str, Any]]], records: Sequence[Any],
    train: Sequence[Any], data_summary: dict[str, Any], out: Path, force: bool, quiet: bool, echo: Callable[[str], None],
    nodes: "NodeLaunch | None" = None,
) -> Path:
    """Write the formatted data and the run marker, train with ``backend``, write the manifest last."""
    from .artifact import write_manifest, write_policy
    from .components import TrainJob
    from .fingerprint import SKETCH_KEY, prompt_sketch

    run_dir = out / RUN_SUBDIR
    run_dir.mkdir(parents=True, exist_ok=True)
    config = cfg.model_dump(mode="json")
    write_rows(run_dir, rows)
    atomic_write_json(run_dir / "run.json", _marker(cfg))  # training starts now: a resumable run
    job = TrainJob(
        model=str(model.path),
        output_dir=out,
        train_file=run_dir / "train.jsonl",
        eval_file=run_dir / "eval.jsonl" if data_summary["eval"] else None,
        formatter=cfg.formatter,
        config={"train": cfg.train_settings(), "run_dir": str(run_dir), "quiet": quiet,
                "nodes": nodes.as_dict() if nodes is not None else None},
        processes=cfg.processes,
        hostfile=Path(cfg.hostfile) if cfg.hostfile else None,
        trust_remote_code=cfg.trust_remote_code,
        force=force,
    )
    if nodes is not None and nodes.multi:
        echo(f"multi-node run: {nodes.describe()}")
    backend.train(job)
    if nodes is not None and nodes.multi and not (run_dir / "trained.json").is_file():
        echo(f"this node's ranks finished; global rank 0 (node 0) writes the router there, not into {out}")
        return out
    base_model = {"name": model.name, "path": str(model.path), "model_type": model.model_type}
    normal_file_modes(out)
    attempts = run_dir / "attempts.jsonl"
    last = json.loads(attempts.read_text().splitlines()[-1]) if attempts.exists() and attempts.read_text().strip() else None
    if last and last.get("train_examples_used", last.get("train_examples")) != last.get("train_examples"):
        echo(f"note: {last['train_examples'] - last['train_examples_used']} of {last['train_examples']} training "
             f"examples were longer than --max-length {cfg.max_length} with their answer cut off, and were skipped")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # finished: resumable state no longer needed
    pair = data_pair(cfg, records)
    if not (out / "policy.json").exists():
        write_policy(out, "threshold", {"threshold": 0.5}, [pair["weak"], pair["strong"]] if pair else None)
    write_manifest(
        out,
        scorer=cfg.family,
        scorer_options=cfg.family_options,
        formatter=cfg.formatter,
        formatter_options=cfg.formatter_options,
        base_model=base_model,
        backend={"name": cfg.backend, "options": backend.options.model_dump(mode="json")},
        data=data_summary,
        config=config,
        training=last,
        **{SKETCH_KEY: prompt_sketch(r.prompt for r in train)},
        **pair,
    )
    return out


def normal_file_modes(root: Path) -> None:
    """Give the artifact's files a normal file's mode (0666 less the umask, 0644 usually): some
    writers (safetensors via a temporary file) leave 0600, unreadable to the other users of a
    shared router."""
    mask = os.umask(0)
    os.umask(mask)
    for p in root.iterdir():
        if p.is_file() and not p.is_symlink():
            os.chmod(p, 0o666 & ~mask)
