# Odradek's entry points. Every target creates or refreshes .venv itself, so a fresh
# clone needs nothing but `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9092
DATA_DIR ?= ./data
PYTEST_ARGS ?=

.PHONY: run test test-fast lint bench raft-sim fuzz screenshots compaction-kill venv clean

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

# Everything: tests/unit (pure), tests/integration (one node, real clients), tests/cluster
# (three nodes, namespaces, Docker, chaos) and tests/peers (Kafka 4.4 beside us), on
# one process by default; TEST_WORKERS=2 runs it on pytest-xdist workers, each taking whole
# groups (a file, or the groups in tests/conftest.py: XDIST_GROUPS), the long ones first.
# Not the default yet: a first run on two workers, on a machine loaded by other suites, had
# failures not yet told apart from that load.
TEST_WORKERS ?= 0
# The sources are byte-compiled first: where PYTHONDONTWRITEBYTECODE is set (it is on the
# machines here) every broker or CLI process a test starts would compile them again (a broker's
# start-up took 0.49 s instead of 0.34 s). The .pyc files go to __pycache__ (git ignores it).
test: $(VENV)/.stamp-test
	$(PY) -m compileall -q -j 0 broker protocol storage replication tests
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# The pure tests alone: no sockets, under a minute.
test-fast: $(VENV)/.stamp-test
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

# ruff, then mypy (config in pyproject.toml) over the code as installed: odradek.broker, ...
# mypy cannot follow the editable install's import hook, so it reads a tree of symlinks.
MYPY_SRC := $(VENV)/mypy-src
lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check broker protocol storage replication tests bench
	@mkdir -p $(MYPY_SRC)/odradek
	@for p in broker protocol storage replication; do ln -sfn ../../../$$p $(MYPY_SRC)/odradek/$$p; done
	MYPYPATH=$(MYPY_SRC) $(VENV)/bin/mypy --config-file pyproject.toml --cache-dir $(VENV)/mypy-cache \
		-p odradek.broker -p odradek.protocol -p odradek.storage -p odradek.replication

# The request-path fuzzer (tests/integration/test_fuzz.py) for FUZZ_SECONDS instead of
# the few seconds make test gives it.
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.stamp-test
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -q -s --timeout=0 tests/integration/test_fuzz.py

# The README's pictures of the web console, taken by its browser test in headless Chromium.
screenshots: $(VENV)/.stamp-test
	ODRADEK_SCREENSHOTS=broker/console/screenshots $(PY) -m pytest -q tests/integration/test_console.py -k chromium

# The seeded SIGKILL-during-cleaning test (tests/integration/test_compaction.py) with more
# runs than make test gives it (3).
COMPACTION_KILL_RUNS ?= 30
compaction-kill: $(VENV)/.stamp-test
	COMPACTION_KILL_RUNS=$(COMPACTION_KILL_RUNS) $(PY) -m pytest -q tests/integration/test_compaction.py -k sigkill

# Issue 20's share-group scale scenario (tests/share_scale.py; make test runs it too) alone,
# for both clients, printing each run's time and throughput; SHARE_SCALE_RECORDS=N resizes it.
.PHONY: share-scale
share-scale: $(VENV)/.stamp-test
	@out=$$(mktemp); $(PY) -m pytest -q -s tests/integration/test_share_groups.py tests/peers/test_java_client.py \
		-k at_scale_with_one_killed >$$out 2>&1; status=$$?; \
	grep -E "records/s|passed|failed|Error" $$out; rm -f $$out; exit $$status

# Kafka Connect 4.4's distributed worker against Odradek (tests/peers/test_connect.py): two
# worker JVMs, too slow for make test.
.PHONY: connect
connect: $(VENV)/.stamp-test
	ODRADEK_CONNECT=1 $(PY) -m pytest -q tests/peers/test_connect.py
# Kafka Streams with exactly_once_v2 against Odradek (tests/peers/test_java_client.py), with
# STREAMS_KILLS instances SIGKILLed mid-stream (make test runs it with none).
STREAMS_KILLS ?= 2
.PHONY: streams-eos
streams-eos: $(VENV)/.stamp-test
	STREAMS_KILLS=$(STREAMS_KILLS) $(PY) -m pytest -q tests/peers/test_java_client.py -k streams

bench: $(VENV)/.stamp-test
	$(PY) -m bench

# The cluster simulation (Raft quorum + partition replication) with many more seeds than
# make test runs (500).
RAFT_SIM_SEEDS ?= 20000
raft-sim: $(VENV)/.stamp-test
	RAFT_SIM_SEEDS=$(RAFT_SIM_SEEDS) $(PY) -m pytest -q tests/unit/test_raft_sim.py

# The reliability suite: every chaos scenario against fresh three-node clusters, checked
# by the history checker, within CHAOS_BUDGET_S; histories stay in chaos-out/.
.PHONY: chaos
CHAOS_BUDGET_S ?= 1800
CHAOS_ARGS ?=
chaos: $(VENV)/.stamp-test
	$(PY) -m tests.reliability --budget-s $(CHAOS_BUDGET_S) --out chaos-out $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

# Docker: a three-node cluster (docker-compose.yml). Where no image registry is reachable,
# docker-base builds the base image from Debian's packages (debootstrap, as root; kept once
# built) and cluster-up installs wheels built here into the image, then waits until healthy.
.PHONY: docker-base docker-image cluster-up cluster-down
DOCKER ?= docker
COMPOSE ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)
DOCKER_BASE_IMAGE ?= odradek-base:bookworm
ODRADEK_IMAGE ?= odradek:latest
DEBIAN_MIRROR ?= http://deb.debian.org/debian
DOCKER_WHEELS := build/docker-wheels
CLUSTER_WAIT_S ?= 180

docker-base:
	@if $(DOCKER) image inspect $(DOCKER_BASE_IMAGE) >/dev/null 2>&1; then \
		echo "$(DOCKER_BASE_IMAGE) exists"; \
	else \
		set -e; rootfs=$$(mktemp -d); trap 'rm -rf "$$rootfs" "$$rootfs.tar"' EXIT; \
		echo "debootstrap bookworm into $$rootfs (about a minute)"; \
		debootstrap --variant=minbase --include=python3,python3-venv bookworm "$$rootfs" $(DEBIAN_MIRROR) >"$$rootfs.log" 2>&1 \
			|| { tail -20 "$$rootfs.log"; exit 1; }; \
		rm -rf "$$rootfs"/var/cache/apt/archives/*.deb "$$rootfs"/var/lib/apt/lists/* "$$rootfs.log"; \
		tar -C "$$rootfs" -cf "$$rootfs.tar" .; \
		$(DOCKER) import "$$rootfs.tar" $(DOCKER_BASE_IMAGE); \
	fi

docker-image: docker-base $(VENV)/.stamp-base
	rm -f $(DOCKER_WHEELS)/odradek-*.whl
	$(PY) -m pip wheel -q -w $(DOCKER_WHEELS) .
	$(DOCKER) build -q --build-arg BASE_IMAGE=$(DOCKER_BASE_IMAGE) -t $(ODRADEK_IMAGE) .
	$(DOCKER) image prune -f --filter label=org.opencontainers.image.title=odradek >/dev/null

cluster-up: docker-image
	ODRADEK_IMAGE=$(ODRADEK_IMAGE) $(COMPOSE) up -d --no-build
	@ids=$$($(COMPOSE) ps -a -q); end=$$(( $$(date +%s) + $(CLUSTER_WAIT_S) )); \
	until [ -n "$$ids" ] && [ "$$($(DOCKER) inspect -f '{{.State.Health.Status}}' $$ids | sort -u)" = healthy ]; do \
		if [ $$(date +%s) -ge $$end ]; then echo "not healthy after $(CLUSTER_WAIT_S) s:"; $(COMPOSE) ps; exit 1; fi; \
		sleep 2; \
	done; echo "cluster healthy; bootstrap 127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"

cluster-down:
	$(COMPOSE) --profile monitoring down

# The same cluster with SASL_SSL for clients and between nodes (docker-compose.sasl-ssl.yml),
# certificates made here into build/sasl-ssl-certs. Stop it with cluster-down.
.PHONY: cluster-sasl-ssl-up
cluster-sasl-ssl-up:
	broker/deploy/sasl-ssl/make-certs.sh build/sasl-ssl-certs
	$(MAKE) cluster-up COMPOSE="$(COMPOSE) -f docker-compose.yml -f docker-compose.sasl-ssl.yml"

# Prometheus beside the cluster (docker-compose's `monitoring` profile), from Debian's
# prometheus package: a base image with it (debootstrap --include=prometheus, as root,
# kept once built), then the image, with no network inside the build.
.PHONY: docker-prometheus-base monitoring-up
PROMETHEUS_BASE_IMAGE ?= odradek-prometheus-base:bookworm
PROMETHEUS_IMAGE ?= odradek-prometheus:latest
docker-prometheus-base:
	@if $(DOCKER) image inspect $(PROMETHEUS_BASE_IMAGE) >/dev/null 2>&1; then \
		echo "$(PROMETHEUS_BASE_IMAGE) exists"; \
	else \
		set -e; rootfs=$$(mktemp -d); trap 'rm -rf "$$rootfs" "$$rootfs.tar"' EXIT; \
		debootstrap --variant=minbase --include=prometheus bookworm "$$rootfs" $(DEBIAN_MIRROR) >"$$rootfs.log" 2>&1 \
			|| { tail -20 "$$rootfs.log"; exit 1; }; \
		rm -rf "$$rootfs"/var/cache/apt/archives/*.deb "$$rootfs"/var/lib/apt/lists/* "$$rootfs.log"; \
		tar -C "$$rootfs" -cf "$$rootfs.tar" .; \
		$(DOCKER) import "$$rootfs.tar" $(PROMETHEUS_BASE_IMAGE); \
	fi

monitoring-up: cluster-up docker-prometheus-base
	$(DOCKER) build -q --build-arg BASE_IMAGE=$(PROMETHEUS_BASE_IMAGE) -t $(PROMETHEUS_IMAGE) broker/deploy/prometheus
	ODRADEK_IMAGE=$(ODRADEK_IMAGE) ODRADEK_PROMETHEUS_IMAGE=$(PROMETHEUS_IMAGE) $(COMPOSE) --profile monitoring up -d --no-build
	@echo "Prometheus on http://127.0.0.1:9090; Grafana: import broker/deploy/grafana/odradek.json"
