# ml-connector. Every target sets itself up on a fresh machine and can be run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
export AIRFLOW_HOME := $(CURDIR)/.airflow
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
HOME_STAMP := $(AIRFLOW_HOME)/.initialised

.PHONY: help install home demo test test-deps up cluster cluster-down lint format bench clean lock

help:
	@echo "make demo   - run the integration end to end against the sandbox servers"
	@echo "make test   - the whole test suite (SQLite and PostgreSQL)"
	@echo "make up     - Airflow (UI on http://localhost:8080) plus the sandbox servers"
	@echo "make cluster - the docker-compose topology on this machine: CeleryExecutor, Redis, PostgreSQL, 2 workers"
	@echo "make cluster-down - stop everything make cluster started"
	@echo "make lint   - ruff check and format check, import-linter architecture contracts"
	@echo "make bench  - benchmarks (API calls per record, throughput, memory)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip sync -q --python $(PY) requirements.txt
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(HOME_STAMP): $(STAMP) scripts/init_home.py
	@$(PY) scripts/init_home.py
	@echo "Migrating Airflow's metadata database (first time ~10 s)..."
	@airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	@touch $@

home: $(HOME_STAMP)
	@airflow connections import --overwrite $(AIRFLOW_HOME)/connections.demo.json >/dev/null
	@mlc db upgrade
	@mlc pools sync

demo: home
	@scripts/demo.sh

test: install test-deps
	@MLC_TEST_PG_URL=$$(scripts/pg.sh start) && export MLC_TEST_PG_URL && \
	  $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-deps:
	@scripts/install_test_deps.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd include && PYTHONPATH=$(CURDIR)/include $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

up: home
	@scripts/up.sh

cluster: install
	@MLC_PYTHON=$(CURDIR)/$(PY) scripts/cluster.sh up

cluster-down:
	@MLC_PYTHON=$$(test -x $(PY) && echo $(CURDIR)/$(PY) || command -v python3) scripts/cluster.sh down

bench: home
	@$(PY) -m bench

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) .pytest_cache .ruff_cache
	scripts/pg.sh stop || true

lock: install
	$(UV) pip compile -q requirements.in --python-version 3.11 --no-header -o requirements.txt
	sed -i '1i # Pinned by `make lock` (uv pip compile requirements.in). Installs from PyPI alone.' requirements.txt
