# The two commands a new user needs: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean debian-packages

# What the demo needs and no more (a cold `make demo` does not wait for the test and dev tools).
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (none found on PATH)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# ... and the test and dev tools (pytest, playwright, schemathesis, ruff, mypy) for test, lint, bench.
$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(DEV_STAMP)

demo: $(STAMP)  ## run the whole system with simulated plant; prints the desk URL and a login
	$(BIN)/facility demo $(ARGS)

test: debian-packages $(DEV_STAMP)  ## the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

# The Debian packages the tests run: one apt-get command for what is missing (as root: installs them).
debian-packages:
	@scripts/check-debian-packages

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(DEV_STAMP)  ## each benchmark prints one JSON object on a line of its own
	@for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
