# Two entry points, both self-contained on a fresh clone:
#   make demo  - create .venv, install the runtime only (no test or framework extras), then run
#                the default comparison study (balancer study) on the shipped RetinaMNIST:
#                13 strategies x 5 seeds, two runs at a time (--jobs 2)
#   make test  - create .venv, install the development extras, run the test suite
# and one for the documentation:
#   make docs  - install the docs extra, build the site into site/ (offline, warnings are errors)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SITE   ?= site
# One stamp per set of extras: `make demo` then `make test` adds the dev extras to the same venv.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev
DOCS_STAMP    := $(VENV)/.installed-docs
# torch is installed first and explicitly (on the project's machines torch==2.13.0 resolves to a
# local CPU build; pass TORCH="torch==2.13.0 --index-url URL" to choose another build); the
# project's own range (torch>=2.2) then admits it and installs nothing more.
TORCH  ?= torch==2.13.0
# pip shows its progress; PIP_FLAGS=--quiet silences it.
PIP_FLAGS ?=

.PHONY: install install-demo demo test test-all docs typecheck lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install $(PIP_FLAGS) $(TORCH)
	touch $@

$(RUNTIME_STAMP): pyproject.toml | $(VENV)/.torch
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/.torch
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[dev]"
	touch $@

$(DOCS_STAMP): pyproject.toml | $(VENV)/.torch
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[docs]"
	touch $@

install-demo: $(RUNTIME_STAMP)

install: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/balancer study --jobs 2

test: $(DEV_STAMP)
	$(BIN)/python -m pytest

test-all: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

# -E: read every page again, so a warning is reported on every build, not only the first.
docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -E -W --keep-going -b html docs $(SITE)
	@echo "documentation: $(SITE)/index.html"

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(SITE) build *.egg-info .pytest_cache
