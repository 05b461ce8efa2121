# Every target that runs code first makes sure .venv matches the pinned dependencies.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wavepilot-installed
# checkov pins an older boto3 than the lock: it gets its own virtualenv and pins.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov-installed
PIP_VERSION := 25.3

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint fmt bench lock schema clean package

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

$(CHECKOV_STAMP): requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	@touch $(CHECKOV_STAMP)

venv: $(STAMP) ## create or refresh .venv from the pins

demo: $(STAMP) ## run the whole system locally on the embedded default
	$(BIN)/wavepilot demo $(DEMO_ARGS)

# Four workers on the two cores: most end-to-end tests wait on the embedded system's clocks
# rather than compute, so four overlap them (measured: 864 s -> 667 s for the suite, same
# load); worksteal keeps a worker from idling behind one long test at the end.
test: lint ## lint, then the whole test suite
	$(BIN)/pytest -n 4 --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP) $(CHECKOV_STAMP) ## ruff, ruff format --check, mypy, workflow schema, zizmor, checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --persona pedantic .github/workflows
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

fmt: $(STAMP) ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## benchmarks: figures and ratios
	$(BIN)/python -m benchmarks.manifests $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.rehearsal --vms 200 --designs per-vm,batched
	$(BIN)/python -m benchmarks.rehearsal --vms 1000 --designs batched

schema: $(STAMP) ## regenerate manifests/wave.schema.json and docs/events/ from the models
	$(BIN)/wavepilot schema --output manifests/wave.schema.json
	$(BIN)/wavepilot schema --events docs/events

lock: ## re-resolve requirements/lock.txt and the Lambda's requirements/lambda.txt (hashes); needs the index
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/python -m pip install --quiet -e '.[cli,local]' --group dev
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements/lock.txt
	.lock-venv/bin/python -m orchestration.lambda_lock
	rm -rf .lock-venv

package: $(STAMP) ## the Lambda zip for Terraform's runtime from requirements/lambda.txt, into dist/
	$(BIN)/python -m orchestration.packaging $(PACKAGE_ARGS)

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache build *.egg-info dist .lambda-cache
