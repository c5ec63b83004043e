# Two commands set everything up on a fresh machine:
#   make demo   - create .venv, install, run the demo pipeline on the embedded emulator
#   make test   - create .venv, install with the test extra, run the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
NODE_DIR := tests/node

.PHONY: demo demo-worker test bench protos node chromium postgres compat runners clean

$(VENV)/.installed: setup.py beam_tunnel/protocol/_pbdecode_c.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The official Node SDK proves the emulator's table API is wire-compatible;
# without npm those tests are skipped with a reason, the rest still run.
node:
	@if command -v npm >/dev/null 2>&1; then \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the Node SDK compatibility tests will be skipped"; \
	fi

# Headless Chromium renders the `beam-tunnel monitor` page in its tests.
# Installed once from Debian's packages (root with apt-get), skipped when
# already there; elsewhere those tests skip with the install command, and
# with CI=true a missing chromium fails them.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the monitor page tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: the monitor page tests will fail with CI=true, skip otherwise"; \
	else \
		echo "chromium not found (install: apt-get update && apt-get install -y chromium): the monitor page tests will be skipped"; \
	fi

# PostgreSQL for the sync_table tests (they start a throwaway server with
# initdb/pg_ctl). Installed once from Debian's packages (root with apt-get),
# skipped when already there; elsewhere those tests skip with the install
# command, and with CI=true a missing PostgreSQL fails them.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing postgresql for the sync_table tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
			|| echo "postgresql could not be installed: the PostgreSQL tests will fail with CI=true, skip otherwise"; \
	else \
		echo "postgresql not found (install: apt-get update && apt-get install -y postgresql): the PostgreSQL tests will be skipped"; \
	fi

# The official Go and Java SDK programs (tests/compat), built once per version
# of their sources into ~/.cache/beam_tunnel/compat; a no-op when cached.
# Without Go or Java+Maven the official_sdk tests are skipped (fail under CI=true).
compat: $(VENV)/.installed
	$(PY) tests/compat/sdk_build.py

# The real Beam runners (Prism, Flink) the pipeline tests run on, built or
# fetched once into a cache outside the repo (see README "Beam runners").
runners:
	tests/runners/install.sh

test: $(VENV)/.installed node chromium postgres compat runners
	$(PY) -m pytest

# The main job: a Beam pipeline syncs a changing table into SQLite and proves
# target == source. demo-worker is the earlier TunnelWorker demo.
demo: $(VENV)/.installed
	$(VENV)/bin/beam-tunnel demo

demo-worker: $(VENV)/.installed
	$(VENV)/bin/beam-tunnel demo-worker

bench: $(VENV)/.installed compat
	$(PY) benchmarks/codec_bench.py
	$(PY) benchmarks/emulator_bench.py
	$(PY) benchmarks/coder_bench.py
	$(PY) benchmarks/sdk_bench.py
	$(PY) benchmarks/pipeline_bench.py

# Coverage-guided fuzzing of the PlainBuffer decoder, the token parser and the
# emulator's request handling (atheris, libFuzzer); the last line is
# `fuzz: N inputs, K crashes`. FUZZ_ARGS=--inputs 1000000 for a longer run.
.PHONY: fuzz
fuzz: $(VENV)/.installed
	$(PY) -m pip install --quiet 'atheris>=2.3,<4'
	$(PY) benchmarks/fuzz_bench.py $(FUZZ_ARGS)

protos:
	$(PY) -m pip install --quiet 'grpcio-tools>=1.71,<1.72'
	$(PY) -m grpc_tools.protoc -I . --python_out=. \
		beam_tunnel/protocol/tunnel.proto beam_tunnel/protocol/table.proto

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
