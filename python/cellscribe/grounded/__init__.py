"""Knowledge-grounded cell-type annotation (``cellscribe.annotate(..., mode="grounded")``).

* :func:`retrieve`: candidate Cell Ontology types for a cluster's markers from CellMarker 2.0 and
  singleCellBase (species- and tissue-aware hypergeometric enrichment and related features; no
  language model).
* :func:`candidates`: the same, re-ranked by the shipped learned model (:func:`default_reranker`),
  each with ``probability``.
* :mod:`._rerank`: the re-ranker, its leave-one-dataset-out cross-validation and the calibration
  error (``benchmarks/bench_grounded.py`` prints the figures).
* :func:`annotate_cluster`: one cluster's grounded answer (the model chooses among near-ties and
  explains); :func:`cellscribe.annotate` with ``mode="grounded"`` runs it over a marker table.
"""

from ._annotate import EXTRA_COLUMNS, UNMAPPED, annotate_cluster, candidates, near_ties
from ._rerank import Reranker, candidate_table, cross_validate, default_reranker, expected_calibration_error, fit
from ._retrieval import FEATURES, Candidate, retrieve, tissue_matches

__all__ = [
    "EXTRA_COLUMNS", "FEATURES", "UNMAPPED", "Candidate", "Reranker", "annotate_cluster", "candidate_table",
    "candidates", "cross_validate", "default_reranker", "expected_calibration_error", "fit", "near_ties",
    "retrieve", "tissue_matches",
]
