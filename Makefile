# The README's two commands are `make demo` and `make test`; both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

.PHONY: setup demo test lint unit torture bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml deploy/bootstrap.sh
	VENV=$(VENV) ./deploy/bootstrap.sh

demo: setup
	$(VENV)/bin/shopkeeper demo

test: setup lint unit

# Unit, component and hub tests on both cores (pytest-xdist; each test has its own files, ports and brokers),
# then the end-to-end tests one at a time: they start fleets of processes whose timing the cores must carry.
unit: setup
	$(PY) -m pytest -q -n 2 --durations=15 tests --ignore=tests/e2e
	$(PY) -m pytest -q --durations=15 tests/e2e

# The torture tests at their full counts (200 SIGKILLs, 60 durability trials, 30 restarts; about 15 min, estimated).
# `make test` runs the same tests, seeded the same way, at the counts their issues demand.
torture: setup
	SHOPKEEPER_TORTURE=full $(PY) -m pytest -q -m torture

lint: setup
	$(VENV)/bin/ruff check agent drivers firmware_sim hub devtools tests bench
	$(VENV)/bin/ruff format --check agent drivers firmware_sim hub devtools tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf demo-run .pytest_cache .mypy_cache .ruff_cache .numba-cache bench/results.json
