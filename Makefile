# `make run` and `make test` set everything up on first use (.venv), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch 2.13.0: the release the vllm extra's window of vLLM releases is built against. On Linux
# without an NVIDIA GPU, PyTorch's CPU build from PyTorch's own index when it can be reached
# (PyPI's Linux wheel is the CUDA build, several GB); else the default index (macOS: its only build).
TORCH_SPEC ?= torch==2.13.0
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifneq ($(HAVE_GPU),yes)
ifeq ($(shell uname -s),Linux)
TORCH_INDEX ?= $(shell $(PYTHON) -c "import socket; socket.getaddrinfo('download.pytorch.org', 443)" >/dev/null 2>&1 \
	&& echo --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple)
endif
endif

export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-quick lint-imports bench tiny-model clean

# Set up again when the project's requirements or this file change.
$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 'grpo-tui needs Python 3.10 or newer, $(PYTHON) is ' + sys.version.split()[0] + ': try make PYTHON=python3.11')"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/grpo-tui

# The tests never reach a hub (`make run` may: a GPU preset downloads its model).
test test-quick: export HF_HUB_OFFLINE = 1

test: lint-imports
	$(PY) -m pytest -q

# The quick loop: everything but the tests that train or start processes (under a minute).
test-quick: lint-imports
	$(PY) -m pytest -q -m "not slow"

# The layers (pyproject.toml [tool.importlinter]): the engine never imports the TUI, engine.config
# and engine.run import no torch, engine.algo imports nothing else of the engine.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/grpo-tui bench tiny-arithmetic

# Rebuild the bundled tiny model (deterministic; about a minute on 2 cores).
tiny-model: $(STAMP)
	$(PY) assets/build_tiny_model.py

clean:
	rm -rf $(VENV) .pytest_cache
