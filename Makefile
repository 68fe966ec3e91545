# usd1-indexer: every install step lives here so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
APT_PACKAGES := prometheus prometheus-alertmanager chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-py install-node install-apt demo test lint typecheck unit integration bench dashboards clean

install: install-py install-node

# Python virtualenv with the package and its dev tools (re-run when pyproject changes).
$(BIN)/usd1-indexer: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@
install-py: $(BIN)/usd1-indexer

# anvil, solc (0.8.28, and 0.8.14 for the real USD1 source), the Uniswap artifacts, OpenZeppelin
# 4.8.1 and Chainlink sources, project-local in ./node_modules (versions pinned in package-lock.json).
$(ANVIL): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	test -x $(ANVIL)
	touch $@
install-node: $(ANVIL)

# Prometheus, Alertmanager (promtool/amtool) and Chromium from Debian, when missing and when root.
install-apt:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then \
	    echo "apt-get install:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: cannot install$$missing (not root); tests that need them are skipped"; fi; \
	fi

demo: install
	$(BIN)/usd1-indexer demo

LINT_DIRS := $(wildcard indexer tests bench dashboards)

lint: install-py
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: install-py
	$(BIN)/mypy

unit: install-py
	$(BIN)/pytest -q tests/unit

test: install install-apt lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

dashboards: install-py
	$(BIN)/usd1-indexer dashboards build --out dashboards/build

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) node_modules .usd1 .pytest_cache .mypy_cache .ruff_cache
