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

.PHONY: run test test-quick test-min gpu-check lint-imports bench tiny-model tiny-agent-model clean

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

# Two workers (pytest-xdist): the tests are mostly single-threaded, and CI has two cores.
TEST_WORKERS ?= 2

test: lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The quick loop: everything but the tests that train or start processes (under a minute).
test-quick: lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

# The declared lower bounds, tried: every direct dependency at the lowest version pyproject.toml
# allows (uv's lowest-direct resolution), except torch (the same build as .venv: an old torch from
# PyPI is a multi-GB CUDA download), then a 3-step run, its final/ loaded by that transformers, and
# the tests of math answers and of viewing a recorded run. CI runs it after `make test`.
MIN_VENV := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed
FIND_LINKS := $(shell test -d /opt/wheels && echo --find-links /opt/wheels)

$(MIN_STAMP): pyproject.toml Makefile $(STAMP)
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	echo "$(TORCH_SPEC)" > $(MIN_VENV)/torch.txt
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --resolution lowest-direct --override $(MIN_VENV)/torch.txt \
		--python $(MIN_VENV)/bin/python $(FIND_LINKS) -o $(MIN_VENV)/requirements.txt
	$(VENV)/bin/uv pip install --quiet --python $(MIN_VENV)/bin/python $(FIND_LINKS) -r $(MIN_VENV)/requirements.txt \
		pytest pytest-timeout
	$(VENV)/bin/uv pip install --quiet --python $(MIN_VENV)/bin/python --no-deps -e .
	touch $(MIN_STAMP)

test-min: export HF_HUB_OFFLINE = 1
test-min: $(MIN_STAMP)
	@grep -E '^(transformers|accelerate|datasets|textual|math-verify|numpy|pyarrow)==' $(MIN_VENV)/requirements.txt | tr '\n' ' '; echo
	rm -rf $(MIN_VENV)/run
	$(MIN_VENV)/bin/grpo-tui train tiny-arithmetic --headless --max-steps 3 --set eval_steps=0 --output $(MIN_VENV)/run
	$(MIN_VENV)/bin/python -c "from transformers import AutoModelForCausalLM, AutoTokenizer; \
		AutoTokenizer.from_pretrained('$(MIN_VENV)/run/final'); AutoModelForCausalLM.from_pretrained('$(MIN_VENV)/run/final'); \
		print('final/ loads')"
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/engine/rewards/test_open_r1_names.py tests/tui/test_tui_screens.py

# The layers (pyproject.toml [tool.importlinter]): the engine never imports the TUI, engine.config
# and engine.run import no torch, engine.algo imports nothing else of the engine.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

# On the GPU machine's image as it is (no venv, no network): see .ci/gpu-check; fetch the wheels it
# needs beforehand, where there is a network, with .ci/gpu-wheels.
gpu-check:
	bash .ci/gpu-check

bench: $(STAMP)
	$(VENV)/bin/grpo-tui bench tiny-arithmetic

# Rebuild the bundled tiny model (deterministic; about a minute on 2 cores).
tiny-model: $(STAMP)
	$(PY) assets/build_tiny_model.py

# Rebuild the bundled agent model (deterministic; about 7 minutes on 2 cores).
tiny-agent-model: $(STAMP)
	$(PY) assets/build_tiny_agent_model.py

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache
