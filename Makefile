# cellscribe: the two commands of the quick start are `make demo` and `make test`.
# Both set up what they need first (scripts/setup.sh: apt packages, the venv, pinned wheels,
# the local models); the second run of either skips what is already installed.

VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup setup-python setup-r demo test test-quick test-python lint benchmark clean

setup:
	scripts/setup.sh all

setup-python:
	scripts/setup.sh python

setup-r:
	scripts/setup.sh r

## Annotate scanpy's bundled PBMC data with the embedded model; writes demo_output/.
demo: setup-python
	$(VENV)/bin/cellscribe demo --out demo_output

## All tests; the last line is pytest's summary.
test: setup
	scripts/run_tests.sh

## Day-to-day: the Python tests not marked slow (a few minutes once set up); no R.
test-quick: setup-python
	$(PY) -m pytest -m "not slow" -q

test-python: setup-python
	$(PY) -m pytest

## ruff, and the layer order of pyproject.toml ([tool.importlinter]).
lint:
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

benchmark: setup-python
	$(PY) benchmarks/bench_annotate.py
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache build *.egg-info python/*.egg-info
