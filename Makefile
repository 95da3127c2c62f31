# The two set-up commands in the README: `make demo` and `make test`. Both create .venv on a
# fresh machine (python3 -m venv + pip; see docs/dependencies.md for why not uv/poetry).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.transferlab-installed
SITE := build/site
# silences mkdocs-material's banner about MkDocs 2 on every build (mkdocs is pinned below 2)
DOCS_ENV := NO_MKDOCS_2_WARNING=1

.PHONY: install demo test docs serve-docs lint format clean mutation

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
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --quiet --site-dir $(SITE)
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/): built offline and strict into build/site; open
# build/site/index.html, or `make serve-docs` for a live preview on http://127.0.0.1:8000.
docs: install
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --site-dir $(SITE)

serve-docs: install
	$(DOCS_ENV) $(BIN)/mkdocs serve

# Mutation testing of the core (slow; not part of `make test`). MODULE=params runs one module.
mutation: install
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1'
	$(BIN)/python tools/mutation/run.py $(MODULE)

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build/mutation $(SITE) demo.sqlite transferlab.sqlite .pytest_cache .ruff_cache
