# Runs the testthat suite (R CMD check and scripts/run_tests.sh).
# The tests need the cellscribe Python package: set CELLSCRIBE_PYTHON (or RETICULATE_PYTHON) to a
# python that has it; in the cellscribe repository that is .venv/bin/python.
library(testthat)
library(cellscribe)

test_check("cellscribe")
