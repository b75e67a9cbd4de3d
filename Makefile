# Everyday commands. `make check` (lint, types, import contracts) is what CI runs besides the tests.
PY ?= python3

.PHONY: check lint fmt typecheck imports test test-fast demo

check: lint typecheck imports

lint:
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts

fmt:
	$(PY) -m ruff format src tests benchmarks scripts
	$(PY) -m ruff check --fix src tests benchmarks scripts

typecheck:
	$(PY) -m mypy

# import-linter contracts in pyproject.toml: core never imports ui/cli/textual/rich; no cycles.
imports:
	lint-imports

test:
	$(PY) -m pytest -q

test-fast:
	$(PY) -m pytest -q -m "not integration"

demo:
	$(PY) -m coder_tui demo
