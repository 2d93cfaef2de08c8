"""Benchmarks that measure cellscribe, and fitting what is learned from them.

* :mod:`~cellscribe.benchmark.gptcelltype`: the GPTCelltype benchmark: :func:`run_benchmark`
  (``cellscribe benchmark gptcelltype``), :func:`score_column` (``cellscribe score``),
  :func:`score_table`, :func:`read_table`, :func:`plot_means`.
* :mod:`~cellscribe.benchmark.reranker`: fit the grounded mode's re-ranker and the calibration of
  its confidence, and cross-validate both leave-one-dataset-out.
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
    CALIBRATION_C,
    TRAIN_LENGTHS,
    C,
    calibrated,
    calibration_report,
    candidate_table,
    choices,
    choose,
    cross_validate,
    ece_noise,
    expected_calibration_error,
    fit,
    fit_calibration,
    training_table,
)

__all__ = [
    "C", "CALIBRATION_C", "PUBLISHED_METHODS", "ROW_COLUMNS", "TRAIN_LENGTHS", "BenchmarkResult", "calibrated",
    "calibration_report", "candidate_table", "choices", "choose", "cross_validate", "ece_noise",
    "expected_calibration_error", "fit", "fit_calibration", "marker_genes", "plot_means", "read_table",
    "run_benchmark", "score_column", "score_table", "species_of", "training_table",
]
