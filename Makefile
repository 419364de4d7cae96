# Resource Monitor. Quick start: `make run`, then `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint fmt bench install install-dev browser-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## The whole product on SQLite at http://127.0.0.1:8000 with a simulated network.
run: $(VENV)/.installed
	$(BIN)/resmon run $(RUN_ARGS)

## Debian's Chromium for the browser tests (never a downloaded browser).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "could not install chromium: browser tests will be skipped"; }

test: $(VENV)/.installed-dev browser-deps
	$(BIN)/resmon check --fail-level WARNING
	$(BIN)/resmon makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy resourcemonitor simulator

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks at a small size; each prints JSON lines.
bench: $(VENV)/.installed-dev
	@for script in bench/*.py; do $(BIN)/python $$script --small || exit 1; done

clean:
	rm -rf $(VENV) data build *.egg-info
