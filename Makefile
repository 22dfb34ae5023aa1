# The two commands: `make up` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV := .venv
LFR := $(VENV)/bin/lfr
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Licence acknowledgements for opt-in models (comma-separated tokens), passed through to `lfr models build`:
# unset, setup/up/test never build a model whose terms forbid operational use (w600k_mbf: InsightFace,
# non-commercial research only; token insightface-non-commercial-research). A deployment never sets it.
export LFR_MODELS_ACCEPT_LICENCES

.PHONY: venv proto setup up down status test test-fast test-slow lint clean-state bench help

help:
	@echo "make up      set up what is missing, start the stack and the services, run the demo until Ctrl-C"
	@echo "make test    set up what is missing, start the stack, run all tests, stop the stack"
	@echo "make proto   regenerate services/gen from proto/"
	@echo "make lint    ruff check (config: [tool.ruff] in pyproject.toml); make test runs it too"

venv:
	@deploy/local/bootstrap.sh

proto: venv
	@$(PY) -m services.cli.protogen

# Install everything the stack and the models need (idempotent, cached under ~/.cache/lfr).
setup: venv
	@$(LFR) stack install
	@$(LFR) models build
	@deploy/tools/install-tools.sh
	@deploy/tools/install-browser.sh

up: setup
	@$(LFR) up

down: venv
	@$(LFR) stack down

status: venv
	@$(LFR) stack status

test: setup
	@deploy/local/run-tests.sh $(PYTEST_ARGS)

# ruff (pinned in requirements/lint.txt, config in pyproject.toml); the first step of make test
lint: venv
	@$(VENV)/bin/ruff check .

# unit tests only: no servers
test-fast: venv
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

bench: setup
	@$(LFR) bench --help
