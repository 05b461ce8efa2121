# Every target that runs code first makes sure .venv matches the pinned dependencies.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wavepilot-installed
PIP_VERSION := 25.3

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint fmt bench lock schema clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## create or refresh .venv from the pins

demo: $(STAMP) ## run the whole system locally on the embedded default
	$(BIN)/wavepilot demo $(DEMO_ARGS)

test: lint ## lint, then the whole test suite
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, ruff format --check, mypy, zizmor (workflows)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/zizmor --offline --persona pedantic .github/workflows

fmt: $(STAMP) ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## benchmarks: figures and ratios
	$(BIN)/python -m benchmarks.manifests $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.rehearsal

schema: $(STAMP) ## regenerate manifests/wave.schema.json and docs/events/ from the models
	$(BIN)/wavepilot schema --output manifests/wave.schema.json
	$(BIN)/wavepilot schema --events docs/events

lock: ## re-resolve requirements/lock.txt from pyproject.toml (needs the package index)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/python -m pip install --quiet -e '.[local]' --group dev
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements/lock.txt
	rm -rf .lock-venv

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info
