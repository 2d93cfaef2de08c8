#!/usr/bin/env bash
# Runs every test suite (R first, then pytest) and ends with pytest's own summary line; exits
# non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
status=0
# The R package: install, testthat ("N passed, N failed"), R CMD build with the vignette, R CMD check.
VENV=$VENV scripts/run_r_tests.sh || status=1
# The layer order of pyproject.toml ([tool.importlinter]); tests/python/test_layers.py checks it too.
"$VENV/bin/lint-imports" --no-cache || status=1
"$VENV/bin/python" -m pytest -p no:cacheprovider || status=1
exit $status
