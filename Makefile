# The two set-up commands in the README: `make demo` and `make test`. Both create .venv on a
# fresh machine (python3 -m venv + pip; see docs/dependencies.md for why not uv/poetry).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.transferlab-installed
SITE := build/site
# silences mkdocs-material's banner about MkDocs 2 on every build (mkdocs is pinned below 2)
DOCS_ENV := NO_MKDOCS_2_WARNING=1

.PHONY: install browser demo test docs serve-docs lint format clean mutation

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

# Headless Chromium for the HTML report's browser tests (tests/test_html_report.py): Debian's
# chromium and chromium-driver, installed with apt-get when running as root and missing.
# Never fails: without root or apt those tests skip, saying why.
BROWSER_OK := command -v chromedriver >/dev/null 2>&1 && { command -v chromium || \
	command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1
browser:
	@if ! { $(BROWSER_OK); }; then \
	  if [ "$$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        chromium chromium-driver; } >/dev/null 2>&1 || \
	      echo "could not install chromium (apt-get failed); the browser tests will skip"; \
	  else \
	    echo "no chromium/chromedriver and not root with apt-get; the browser tests will skip"; \
	  fi; \
	fi

demo: install
	$(BIN)/transferlab bench benchmarks/suites/demo.toml --db demo.sqlite
	$(BIN)/transferlab report --db demo.sqlite --suite demo --format html --out demo.html

test: install browser
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
	rm -rf $(VENV) build/mutation $(SITE) demo.sqlite demo.html demo.work transferlab.sqlite .pytest_cache .ruff_cache
