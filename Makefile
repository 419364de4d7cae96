# Resource Monitor. Quick start: `make run`, then `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-pg test-chaos lint fmt bench install install-dev browser-deps snmpsim-deps promtool-deps clean

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

## snmpsim (a real SNMP agent simulator) for the SNMP probe's tests. Its own venv from
## Debian's /usr/bin/python3: snmpsim drops root to nobody, who cannot read a Python
## installed in root's home directory.
SNMPSIM := .snmpsim-venv/bin/snmpsim-command-responder
$(SNMPSIM):
	/usr/bin/python3 -m venv .snmpsim-venv
	.snmpsim-venv/bin/pip install -q snmpsim==1.2.2 pysmi==2.0.0 cryptography==50.0.2 \
	  || echo "could not install snmpsim: the SNMP tests will be skipped"

snmpsim-deps: $(SNMPSIM)

## Debian's prometheus package for promtool, which validates /metrics in the tests.
promtool-deps:
	@command -v promtool >/dev/null || { \
	  echo "installing Debian's prometheus package for promtool"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
	  || echo "could not install promtool: the promtool checks will be skipped"; }

test: $(VENV)/.installed-dev browser-deps snmpsim-deps promtool-deps
	$(BIN)/resmon check --fail-level WARNING
	$(BIN)/resmon makemigrations --check --dry-run
	$(BIN)/python -m pytest --ignore=tests/integration/faults $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-pg test-chaos

## The storage, collector and API tests a second time, on PostgreSQL (pytest-django makes
## test_test from PG_TEST_URL). Skipped, saying so, when no PostgreSQL is running.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
PG_TESTS := tests/unit/storage tests/unit/monitoring tests/integration/collector tests/unit/api
test-pg: $(VENV)/.installed-dev
	@if pg_isready -q -h 127.0.0.1 -p 5432; then \
	  DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -p no:cacheprovider $(PG_TESTS) $(PYTEST_ARGS); \
	else echo "no PostgreSQL on 127.0.0.1:5432: the PostgreSQL pass is skipped"; fi

## Fault injection (docs/operations.md): database outages, kill -9, SIGTERM, hung devices,
## a 100 MB feed, three collectors losing one. Real processes; about 4 minutes.
test-chaos: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -p no:cacheprovider tests/integration/faults $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy resourcemonitor simulator

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks at a small size; each prints JSON lines (full sizes: docs/scaling.md).
## bench/_*.py are helpers, not benchmarks. vs_blackbox installs Debian's prometheus and
## prometheus-blackbox-exporter with apt-get when they are missing.
bench: $(VENV)/.installed-dev
	@for script in bench/[!_]*.py; do $(BIN)/python $$script --small || exit 1; done

clean:
	rm -rf $(VENV) .snmpsim-venv data build *.egg-info
