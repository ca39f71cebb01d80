# The README's two commands are `make demo` and `make test`; both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

.PHONY: setup demo test lint unit bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml deploy/bootstrap.sh
	VENV=$(VENV) ./deploy/bootstrap.sh

demo: setup
	$(VENV)/bin/shopkeeper demo

test: setup lint unit

unit: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check agent drivers firmware_sim hub devtools tests bench
	$(VENV)/bin/ruff format --check agent drivers firmware_sim hub devtools tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf demo-run .pytest_cache .mypy_cache .ruff_cache .numba-cache bench/results.json
