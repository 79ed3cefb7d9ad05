PY ?= python

.PHONY: test lint bench

test:
	$(PY) -m pytest -q

lint:
	ruff check .
	ruff format --check chain node api
	mypy

bench:
	pfnode bench ledger
	pfnode bench api
