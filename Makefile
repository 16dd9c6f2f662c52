# The project's commands. Every target creates ./venv from requirements*.txt when it is missing or stale.
STACK ?= dev
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# The package itself, editable, so that `venv/bin/intrexx-connector` (and `intrexx-connector` in an activated venv)
# runs this folder's code; --no-deps: the dependencies come from requirements.txt above.
PACKAGE := $(VENV)/.package-installed
IDP := tests/idp/node_modules/.package-lock.json
LINT := tests/lint/node_modules/.package-lock.json
# The policy pack runs from a venv of its own, as `pulumi preview --policy-pack policy` runs it (policy/README.md).
POLICY_VENV := policy/venv
POLICY := $(POLICY_VENV)/.installed
CONNECTOR := $(PY) -m intrexx_connector

.PHONY: plan test lint format up render verify status doctor bench clean policy-venv

plan: $(PACKAGE)
	$(CONNECTOR) plan --stack $(STACK) --out build/$(STACK)

# pytest-xdist: one worker per core and one more (the suite waits on timeouts a third of its time); every server
# fixture picks a free port per worker (tests/conftest.py).
test: lint $(IDP) $(LINT) $(POLICY)
	$(PY) -m pytest -n auto

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(DEV)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# `pulumi up` shows its preview and asks before it changes anything; --yes only in CI or with YES=1.
up: $(RUNTIME)
	@if [ "$$CI" = "true" ] || [ "$(YES)" = "1" ]; then \
		pulumi up --stack $(STACK) --yes; \
	elif [ -t 0 ]; then \
		pulumi up --stack $(STACK); \
	else \
		echo "make up: no terminal to confirm the preview on; run \`make up YES=1\` to apply without asking" >&2; \
		exit 2; \
	fi
	$(CONNECTOR) render --stack $(STACK)
	$(CONNECTOR) verify --stack $(STACK)

render: $(RUNTIME)
	$(CONNECTOR) render --stack $(STACK)

verify: $(RUNTIME)
	$(CONNECTOR) verify --stack $(STACK)

status: $(RUNTIME)
	$(CONNECTOR) status --stack $(STACK)

doctor: $(RUNTIME)
	$(CONNECTOR) doctor --stack $(STACK)

bench: $(DEV) $(IDP)
	$(PY) bench/run.py

clean:
	rm -rf build .pytest_cache .hypothesis .mypy_cache .ruff_cache bench/results
	find . -name __pycache__ -not -path './venv/*' -prune -exec rm -rf {} +

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(PACKAGE): pyproject.toml $(RUNTIME)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(DEV): requirements.txt requirements-dev.txt $(RUNTIME)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(IDP): tests/idp/package.json tests/idp/package-lock.json
	npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error

$(LINT): tests/lint/package.json tests/lint/package-lock.json
	npm ci --prefix tests/lint --no-audit --no-fund --loglevel=error

policy-venv: $(POLICY)

$(POLICY): policy/requirements.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $@
