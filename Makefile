# The two set-up commands in the README: `make demo` and `make test`. Both create .venv on a
# fresh machine (python3 -m venv + pip; see docs/dependencies.md for why not uv/poetry).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.transferlab-installed

.PHONY: install demo test lint format clean mutation

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

demo: install
	$(BIN)/transferlab bench benchmarks/suites/demo.toml --db demo.sqlite

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Mutation testing of the core (slow; not part of `make test`). MODULE=params runs one module.
mutation: install
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1'
	$(BIN)/python tools/mutation/run.py $(MODULE)

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build/mutation demo.sqlite transferlab.sqlite .pytest_cache .ruff_cache
