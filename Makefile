# Two entry points, both self-contained on a fresh machine:
#   make demo  - create .venv, install, run the default comparison study (balancer study) on the
#                shipped RetinaMNIST: 13 strategies x 5 seeds, two runs at a time (--jobs 2)
#   make test  - create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is installed first and explicitly (on the project's machines torch==2.13.0 resolves to a
# local CPU build; pass TORCH="torch==2.13.0 --index-url URL" to choose another build); the
# project's own range (torch>=2.2) then admits it and installs nothing more.
TORCH  ?= torch==2.13.0

.PHONY: install demo test test-all bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/balancer study --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
