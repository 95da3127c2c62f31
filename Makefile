# The two set-up commands in the README: `make demo` and `make test`. Both create .venv on a
# fresh machine (python3 -m venv + pip; see docs/dependencies.md for why not uv/poetry).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.transferlab-installed

.PHONY: install demo test lint format clean

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

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) demo.sqlite transferlab.sqlite .pytest_cache .ruff_cache
