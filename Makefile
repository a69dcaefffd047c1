# shipstack: `make run` serves the API on http://127.0.0.1:8000, `make test`
# runs the whole suite. Both install everything first (Python packages from
# uv.lock, the Go-built toolchain, cached under $(SHIPSTACK_CACHE)).

SHELL := /bin/bash
export SHIPSTACK_CACHE ?= $(HOME)/.cache/shipstack
export SHIPSTACK_DATA ?= $(CURDIR)/.shipstack
export PULUMI_HOME ?= $(SHIPSTACK_CACHE)/pulumi-home
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PATH := $(CURDIR)/toolchain/bin:$(SHIPSTACK_CACHE)/bin:$(PATH)
# Bytecode is cached (in the ignored __pycache__ folders): without it every process
# (each pulumi program run, each test run) compiles its imports again, ~2 s apiece.
unexport PYTHONDONTWRITEBYTECODE
UV_VERSION := 0.13.9
PY := .venv/bin/python

.PHONY: install toolchain cluster-up cluster-down run test test-unit lint env clean

install:
	@command -v uv >/dev/null 2>&1 && [ "$$(uv --version | awk '{print $$2}')" = "$(UV_VERSION)" ] || \
		{ echo "[install] installing uv $(UV_VERSION) from PyPI"; python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; }
	@echo "[install] Python packages from uv.lock"
	@uv sync --frozen --quiet

toolchain: install
	@toolchain/build.sh

cluster-up: toolchain
	@$(PY) -m toolchain.cluster up --dir "$(SHIPSTACK_DATA)/cluster"

cluster-down:
	@$(PY) -m toolchain.cluster down --dir "$(SHIPSTACK_DATA)/cluster"

run: toolchain
	@if [ -z "$$KUBECONFIG" ]; then $(PY) -m toolchain.cluster up --dir "$(SHIPSTACK_DATA)/cluster" >/dev/null; fi
	@$(PY) -m api serve

test: toolchain
	@toolchain/postgres.sh install
	@toolchain/chromium.sh install
	@$(PY) -m pytest $(PYTEST_ARGS)

# The fast loop: what needs no toolchain (pure functions, the HTTP service on SQLite),
# without the slow schemathesis run and the PostgreSQL variants (`make test` runs both),
# spread over the machine's cores (pytest-xdist).
test-unit: install
	@SHIPSTACK_TEST_DATABASES=sqlite $(PY) -m pytest tests/unit -q -m "not slow" -n auto $(PYTEST_ARGS)

lint: install
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

# `eval "$$(make -s env)"` sets up a shell for the ordinary pulumi CLI.
env:
	@echo "export PATH=\"$(CURDIR)/toolchain/bin:$(SHIPSTACK_CACHE)/bin:\$$PATH\""
	@echo "export PULUMI_HOME=\"$(PULUMI_HOME)\""
	@echo "export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"
	@echo "export PULUMI_BACKEND_URL=\"$${PULUMI_BACKEND_URL:-file://$(SHIPSTACK_DATA)/state}\""
	@echo "export PULUMI_CONFIG_PASSPHRASE=\"$${PULUMI_CONFIG_PASSPHRASE:-shipstack-local-passphrase}\""

clean: cluster-down
	rm -rf "$(SHIPSTACK_DATA)"
