#!/usr/bin/env bash
# Runs every test suite and ends with pytest's own summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pytest -p no:cacheprovider
