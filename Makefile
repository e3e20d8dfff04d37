# Odradek's entry points. Every target creates or refreshes .venv itself, so a fresh
# clone needs nothing but `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9092
DATA_DIR ?= ./data
PYTEST_ARGS ?=

.PHONY: run test lint bench raft-sim venv clean

$(VENV)/.stamp-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.stamp-base

run: $(VENV)/.stamp-base
	$(VENV)/bin/odradek serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test: $(VENV)/.stamp-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check broker protocol storage replication tests bench

bench: $(VENV)/.stamp-test
	$(PY) -m bench

# The Raft simulation with many more seeds than CI runs (make test runs 1,000).
RAFT_SIM_SEEDS ?= 20000
raft-sim: $(VENV)/.stamp-test
	RAFT_SIM_SEEDS=$(RAFT_SIM_SEEDS) $(PY) -m pytest -q tests/test_raft_sim.py

clean:
	rm -rf $(VENV) build *.egg-info
