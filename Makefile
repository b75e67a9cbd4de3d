# Everyday commands. `make check` is what CI runs besides the tests.
PY ?= python3

.PHONY: check lint fmt typecheck test test-fast demo

check: lint typecheck

lint:
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts

fmt:
	$(PY) -m ruff format src tests benchmarks scripts
	$(PY) -m ruff check --fix src tests benchmarks scripts

typecheck:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q

test-fast:
	$(PY) -m pytest -q -m "not integration"

demo:
	$(PY) -m coder_tui demo
