# Two commands set everything up on a fresh machine:
#   make demo   - create .venv, install, run the demo pipeline on the embedded emulator
#   make test   - create .venv, install with the test extra, run the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
NODE_DIR := tests/node

.PHONY: demo test bench protos node runners clean

$(VENV)/.installed: setup.py
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

# The real Beam runners (Prism, Flink) the pipeline tests run on, built or
# fetched once into a cache outside the repo (see README "Beam runners").
runners:
	tests/runners/install.sh

test: $(VENV)/.installed node runners
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/beam-tunnel demo

bench: $(VENV)/.installed
	$(PY) benchmarks/codec_bench.py
	$(PY) benchmarks/emulator_bench.py

protos:
	$(PY) -m pip install --quiet 'grpcio-tools>=1.71,<1.72'
	$(PY) -m grpc_tools.protoc -I . --python_out=. \
		beam_tunnel/protocol/tunnel.proto beam_tunnel/protocol/table.proto

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
