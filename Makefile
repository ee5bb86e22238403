# gridflow's developer entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Installing again only when the dependencies may have changed: the stamp is older than pyproject.toml.
STAMP := $(VENV)/.installed

.PHONY: help install deps lint test run bench bench-quick clean distclean

help:
	@echo "make test       lint, type-check and run the tests (what CI runs)"
	@echo "make deps       system packages the tests need: Debian's prometheus, postgresql and chromium"
	@echo "make bench      the benchmark suite (bench/results.json); make bench-quick for a smoke run"
	@echo "make lint       ruff check, ruff format --check, mypy, import contracts (lint-imports)"
	@echo "make run        the dev stack with the demo: Temporal, Kafka (Tansu), the worker"
	@echo "make clean      remove caches, build output and the dev stack's state (.gridflow)"
	@echo "make distclean  clean, and remove the virtual environment too"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[servers,dev]'
	# Bytecode up front: the workflow sandbox re-imports the workflow module for every incident it loads,
	# and compiles it from source each time when no .pyc exists (PYTHONDONTWRITEBYTECODE).
	$(BIN)/python -m compileall -q gridflow workflows activities events > /dev/null
	touch $@

install: $(STAMP)

# Debian packages the tests use: prometheus (promtool, prometheus) judges the metrics rules, postgresql
# runs the archive's database, chromium opens the HTML report. Installed only when missing.
deps:
	@missing=""; \
	{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing="$$missing prometheus"; \
	{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian's packages:$$missing"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: deps lint
	$(BIN)/pytest

run: $(STAMP)
	$(BIN)/gridflow dev --demo

bench: $(STAMP)
	$(BIN)/python -m bench.run --json bench/results.json

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick --json /tmp/gridflow-bench-quick.json

clean:
	rm -rf .gridflow .mypy_cache .pytest_cache .ruff_cache build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
