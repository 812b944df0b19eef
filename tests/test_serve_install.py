"""The serving install (``pip install 'tela[serve]'``): every non-LM router loads and serves
without the training stack (torch, transformers, deepspeed, scikit-learn), and the container recipe
(Dockerfile, .dockerignore) installs exactly that.

- in this venv, ``tela serve`` runs with the training stack made unimportable (a meta-path finder
  that refuses it and records every attempt, so an opportunistic ``try: import torch`` counts too);
- in a fresh venv (slow): the files the Dockerfile copies, installed with the Dockerfile's pip
  line, from the package index; no torch/transformers in it, its size under 300 MB; a kNN router
  trained here is served from it and queried through the official ``openai`` client;
- the Docker build context holds every file the Dockerfile copies (no docker engine is needed).

The upstreams are STAND-INS for remote model APIs (tests/serve_support.py): nothing reaches a
network except pip, for the fresh venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomllib
from serve_support import EchoStandIn, env, free_port, get

openai = pytest.importorskip("openai")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tela_core" / "data" / "mmlu_sample.jsonl"

#: What a serving install must never need (top-level module names).
TRAINING_STACK = (
    "torch",
    "transformers",
    "deepspeed",
    "sentence_transformers",
    "sklearn",
    "scipy",
    "accelerate",
    "peft",
    "trl",
    "datasets",
    "onnxruntime",
    "skeletoken",
)
#: The same, as distribution names (pip list).
TRAINING_DISTS = {
    "torch",
    "transformers",
    "deepspeed",
    "sentence-transformers",
    "scikit-learn",
    "scipy",
    "accelerate",
    "peft",
    "trl",
    "datasets",
    "onnxruntime",
    "skeletoken",
    "triton",
}
#: The serving install's size goal (docs/deployment.md).
MAX_VENV_MB = 300

# `tela serve` with the training stack unimportable: every attempt to import it is refused and
# written to $TELA_TEST_BLOCK_LOG with where it came from.
BLOCKED_PRELUDE = f"""
import importlib.abc, os, sys, traceback
BLOCKED = {TRAINING_STACK!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(os.environ["TELA_TEST_BLOCK_LOG"], "a") as f:
                f.write(name + " imported from:\\n" + "".join(traceback.format_stack(limit=10)) + "\\n")
            raise ImportError(name + " is not installed (refused by the test)")
sys.meta_path.insert(0, Refuse())
for m in BLOCKED:
    if m in sys.modules:
        raise SystemExit(m + " was imported before the test's guard")
from tela_core.cli.main import main
main()
"""


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def train(family: str, out: Path, *extra: str) -> Path:
    from tela_core.testkit.helpers import run_cli

    res = run_cli("run", "--family", family, "--data", SAMPLE, "--output", out, *extra)
    assert res.exit_code == 0, res.output
    return out


class Served:
    """A ``tela serve`` process (``argv`` runs tela's CLI) with two stand-in upstreams."""

    def __init__(self, argv: list[str], routers: dict[str, Path], extra_env: dict[str, str], cwd: Path) -> None:
        self.weak, self.strong = EchoStandIn("small"), EchoStandIn("big")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [a for name, path in routers.items() for a in ("--router", f"{name}={path}")]
        self.proc = subprocess.Popen(
            [
                *argv,
                "serve",
                *args,
                "--weak",
                f"{self.weak.url}#small",
                "--strong",
                f"{self.strong.url}#big",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env(), **extra_env},
            cwd=str(cwd),
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                self.close()
                raise AssertionError(f"tela serve exited with {self.proc.returncode}:\n{out[-4000:]}")
            try:
                if get(self.url + "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.close()
        raise AssertionError("tela serve did not become ready")

    def client(self) -> Any:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=60)

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.weak.close()
        self.strong.close()
        return self.proc.stdout.read() if self.proc.stdout else ""


def ask_each(served: Served, names: list[str]) -> None:
    """Each router answers through the official client, from the upstream its headers name."""
    client = served.client()
    listed = {m.id for m in client.models.list().data}
    for name in names:
        assert f"router-{name}" in listed
        for prompt in ("What is 2 + 2?", "Prove that there are infinitely many primes, then generalise the proof."):
            raw = client.chat.completions.with_raw_response.create(
                model=f"router-{name}", messages=[{"role": "user", "content": prompt}]
            )
            answer = raw.parse().choices[0].message.content
            model = raw.headers["x-tela-model"]
            assert model in ("small", "big") and raw.headers["x-tela-router"] == name
            assert answer == EchoStandIn.answer_for(model, prompt)
            assert 0.0 <= float(raw.headers["x-tela-score"]) <= 1.0


def serve_blocked(tmp_path: Path, routers: dict[str, Path]) -> None:
    """Serve ``routers`` from this venv with the training stack unimportable; no attempt to import it."""
    log = tmp_path / "blocked-imports.txt"
    log.write_text("")
    served = Served([sys.executable, "-c", BLOCKED_PRELUDE], routers, {"TELA_TEST_BLOCK_LOG": str(log)}, tmp_path)
    try:
        ask_each(served, list(routers))
        assert get(served.url + "/metrics")[0] == 200
    finally:
        out = served.close()
    assert log.read_text() == "", (
        f"serving imported the training stack:\n{log.read_text()[:4000]}\nserver log:\n{out[-2000:]}"
    )


def static_model_folder() -> Path:
    """The default static embedder's model, built here once (as `make install` does)."""
    from tela_core.models.embedders import get_embedder

    return Path(get_embedder("model2vec").model_folder())  # type: ignore[attr-defined]


def knn_options() -> list[str]:
    """Options of a kNN router with a static embedder: none when it is the default."""
    from tela_core.models.embedders import DEFAULT_EMBEDDER

    return [] if DEFAULT_EMBEDDER == "model2vec" else ["--set", "family.embedder=model2vec"]


@pytest.fixture(scope="module")
def knn_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kNN router with the static embedder, trained here once for the tests that serve it (read only)."""
    return train("embedding-knn", tmp_path_factory.mktemp("serve-install") / "knn", *knn_options())


# ------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ------------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    out = []
    for word, rest in dockerfile():
        if word == "COPY":
            parts = shlex.split(rest)
            assert not any(p.startswith("--from") for p in parts), "COPY --from is not from the context"
            parts = [p for p in parts if not p.startswith("--")]
            out.append((parts[:-1], parts[-1]))
    return out


def dockerignored(path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out, by .dockerignore's rules: the
    last pattern that matches the path or one of its parent folders decides; ``!`` re-includes."""
    import fnmatch

    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.strip().startswith("#")
    ]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        body = pat[1:] if neg else pat
        body = body.strip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], body[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(p, body) and p.count("/") == body.count("/") for p in prefixes)
        if hit:
            excluded = not neg
    return excluded


def pip_line() -> list[str]:
    runs = [rest for word, rest in dockerfile() if word == "RUN" and "pip install" in rest]
    assert len(runs) == 1, runs
    cmd = runs[0].split("&&")[0]
    return shlex.split(cmd)


def test_docker_context_holds_what_the_dockerfile_copies_and_installs_the_serving_extra() -> None:
    """No docker engine is needed: every file the Dockerfile copies is in the build context
    (exists, and .dockerignore keeps it), the pip line installs the `serve` extra with the
    constraints file it copied, the extra names no part of the training stack, and the image
    runs `tela serve`."""
    assert (REPO / "Dockerfile").is_file() and (REPO / ".dockerignore").is_file()
    copied: set[str] = set()
    for sources, _dest in copies():
        for src in sources:
            assert (REPO / src).exists(), f"the Dockerfile copies {src}, which is not in the repository"
            assert not dockerignored(src), f".dockerignore leaves {src} out of the build context"
            copied.add(src)
            if (REPO / src).is_dir():
                py = [p for p in (REPO / src).rglob("*.py") if "__pycache__" not in p.parts]
                assert py and not any(dockerignored(str(p.relative_to(REPO))) for p in py)
    # What pip needs to build tela: the project file, its readme, the packages it finds.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert {"pyproject.toml", project["project"]["readme"], "tela_core", "plugins"} <= copied
    # The build context stays small: none of the local venv, caches, runs, history or tests.
    for heavy in (
        ".venv/bin/python",
        ".cache/tela/models",
        ".git/HEAD",
        "runs/knn/tela.json",
        "tests/conftest.py",
        "docs/index.md",
        "tela_core/__pycache__/x.pyc",
    ):
        assert dockerignored(heavy), f"{heavy} would be sent to the docker daemon"

    argv = pip_line()
    assert argv[:2] == ["pip", "install"], argv
    constraint = argv[argv.index("-c") + 1]
    assert constraint in copied and (REPO / constraint).is_file()
    targets = [a for a in argv[2:] if a.startswith(".[")]
    assert targets == [".[serve]"], argv
    serve = project["project"]["optional-dependencies"]["serve"]
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in serve}
    assert not names & TRAINING_DISTS, names & TRAINING_DISTS
    assert {"starlette", "uvicorn", "aiohttp", "prometheus-client", "model2vec", "threadpoolctl"} <= names

    assert json.loads(dict(dockerfile())["ENTRYPOINT"])[:2] == ["tela", "serve"]
    assert any(
        "HF_HUB_OFFLINE=1" in rest for word, rest in dockerfile() if word == "ENV"
    )  # weights never download at run time


# ------------------------------------------------------------------------------------------------
# This venv, the training stack refused
# ------------------------------------------------------------------------------------------------


def test_baseline_routers_serve_without_the_training_stack(tmp_path: Path) -> None:
    """length, random and prompt-features load and serve with torch, transformers, scikit-learn
    (and the rest of the training stack) unimportable, and nothing tries to import them."""
    routers = {f: train(f, tmp_path / f) for f in ("length", "random", "prompt-features")}
    serve_blocked(
        tmp_path, {"length": routers["length"], "random": routers["random"], "features": routers["prompt-features"]}
    )


@pytest.mark.slow
def test_embedding_routers_with_a_static_embedder_serve_without_the_training_stack(
    tmp_path: Path, knn_router: Path
) -> None:
    """kNN, linear, matrix-factorization and ensemble routers with the static embedder (trained
    here, with torch) load and serve with the training stack unimportable."""
    opts = knn_options()
    routers = {
        "knn": knn_router,
        "linear": train("embedding-linear", tmp_path / "linear", *opts),
        "mf": train("matrix-factorization", tmp_path / "mf", *opts),
        "ensemble": train("ensemble", tmp_path / "ensemble", *opts),  # kNN, linear and length stacked
    }
    serve_blocked(tmp_path, routers)


# ------------------------------------------------------------------------------------------------
# A fresh venv with the serving install only
# ------------------------------------------------------------------------------------------------


def du_mb(path: Path) -> float:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.mark.slow
def test_serving_install_in_a_fresh_venv_serves_a_knn_router_through_the_openai_client(
    tmp_path: Path, knn_router: Path
) -> None:
    """The Dockerfile's files and pip line, in a fresh venv (packages from the index): no training
    stack in it, under 300 MB; a kNN router trained in this venv, with its static embedder's model
    copied into the serving cache (as a deployment copies it), serves offline from there."""
    # The files the Dockerfile copies, as its build context has them.
    src = tmp_path / "src"
    for sources, _dest in copies():
        for s in sources:
            if (REPO / s).is_dir():
                shutil.copytree(REPO / s, src / s, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                src.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / s, src / s)
    venv = tmp_path / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    argv = pip_line()
    install = [str(py), "-m", *[a if not a.startswith(".[") else f"{src}{a[1:]}" for a in argv]]
    install[install.index("-c") + 1] = str(src / argv[argv.index("-c") + 1])
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    r = subprocess.run([*install, "-q"], capture_output=True, text=True, timeout=1200, env=pip_env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    listed = subprocess.run(
        [str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    dists = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert not dists & TRAINING_DISTS, f"the serving install pulled {sorted(dists & TRAINING_DISTS)}"
    assert {"tela", "model2vec", "threadpoolctl", "uvicorn"} <= dists
    size = du_mb(venv)
    assert size < MAX_VENV_MB, f"the serving venv is {size:.0f} MB"

    # numpy's BLAS keeps to the threads tela serve gives it (threadpoolctl is in the install).
    probe = (
        "import tela_core.serve.served_routers as r, threadpoolctl, numpy\n"
        "from types import SimpleNamespace\n"
        "r._limit_torch_threads(SimpleNamespace(torch_threads=1, workers=1))\n"
        "print(max(i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'))\n"
    )
    r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stdout + r.stderr[-2000:]

    # A kNN router trained here; its embedder's model copied into a serving cache of its own.
    router = knn_router
    model = static_model_folder()
    cache = tmp_path / "serving-cache"
    shutil.copytree(model, cache / "models" / model.name)
    served = Served(
        [str(venv / "bin" / "tela")],
        {"knn": router},
        {"TELA_CACHE": str(cache), "TELA_MODELS": "", "PYTHONPATH": ""},
        tmp_path,
    )
    try:
        ask_each(served, ["knn"])
        raw = served.client().chat.completions.with_raw_response.create(
            model="router-knn-0", messages=[{"role": "user", "content": "Name a prime number."}]
        )
        assert raw.headers["x-tela-model"] == "big"  # RouteLLM's threshold form: w >= 0 goes strong
    finally:
        out = served.close()
    assert "Traceback" not in out, out[-3000:]
