"""Benchmarks that measure cellscribe, and fitting what is learned from them.

* :mod:`~cellscribe.benchmark.gptcelltype`: the GPTCelltype benchmark: :func:`run_benchmark`
  (``cellscribe benchmark gptcelltype``), :func:`score_column` (``cellscribe score``),
  :func:`score_table`, :func:`read_table`, :func:`plot_means`.
* :mod:`~cellscribe.benchmark.reranker`: fit the grounded mode's re-ranker and cross-validate it
  leave-one-dataset-out.
"""

from .gptcelltype import (
    PUBLISHED_METHODS,
    ROW_COLUMNS,
    BenchmarkResult,
    marker_genes,
    plot_means,
    read_table,
    run_benchmark,
    score_column,
    score_table,
    species_of,
)
from .reranker import (
    TRAIN_LENGTHS,
    C,
    candidate_table,
    choose,
    cross_validate,
    expected_calibration_error,
    fit,
    training_table,
)

__all__ = [
    "C", "PUBLISHED_METHODS", "ROW_COLUMNS", "TRAIN_LENGTHS", "BenchmarkResult", "candidate_table", "choose",
    "cross_validate", "expected_calibration_error", "fit", "marker_genes", "plot_means", "read_table",
    "run_benchmark", "score_column", "score_table", "species_of", "training_table",
]
