# The few commands people run. The README's two one-liners do the same from a fresh checkout.
PY ?= .venv/bin/python

.PHONY: setup test test-fast lint bench bench-quick eval-quick vscode

setup:
	python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[dev]'
	npm ci --prefix editor-configs/vscode && npm ci --prefix tests/editors/vscode_protocol

test:
	$(PY) -m pytest

test-fast:  # no real-model, real-editor or long tests
	$(PY) -m pytest -m "not slow"

lint:
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy lsp_llm benchmarks && .venv/bin/lint-imports

bench:
	$(PY) -m benchmarks --out benchmarks/results/latest.json

bench-quick:
	$(PY) -m benchmarks --quick

eval-quick:
	$(PY) -m benchmarks.eval --quick

vscode:
	cd editor-configs/vscode && npm ci && npm run compile
