# `make run` and `make test` set everything up on first use (.venv), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# A CPU build of torch where there is no NVIDIA GPU; the project's own range otherwise.
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_GPU),yes)
TORCH_SPEC ?= torch>=2.4,<3
else
TORCH_SPEC ?= torch==2.13.0
endif

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-quick lint-imports bench tiny-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/grpo-tui

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
