"""How right are the labels? Ontology-aware scoring, accuracy metrics, marker validation, benchmarks.

Labels are compared through the Cell Ontology, so synonyms, abbreviations, plurals and marker
notation do not count as errors:

* :func:`map_label` / :func:`map_labels`: free text -> Cell Ontology term(s), with the match
  method and score, or ``"unmapped"``.
* :func:`agreement` (the GPTCelltype score: 1 / 0.5 / 0) and :func:`agreement_level` (``exact`` /
  ``major`` / ``related`` / ``wrong``) for any two labels; :func:`score_labels` for many pairs.
* :func:`broad_type` / :func:`broad_types`: the broad lineage of a term, from ontology ancestry.
* :func:`cluster_accuracy`, :func:`cell_accuracy`, :func:`classification_metrics` (macro
  precision/recall/F1); :func:`cellscribe.pl.confusion_matrix` to look at the errors.
* :func:`validate_markers`: stage-1 check of a cluster's markers against CellMarker 2.0's canonical
  markers of its predicted type.
* :func:`run_benchmark` / :func:`score_column`: the GPTCelltype benchmark (``cellscribe benchmark
  gptcelltype`` and ``cellscribe score`` on the command line).
"""

from ._agreement import LEVELS, Side, agreement, agreement_level, side
from ._broad import BROAD_ANCHORS, RELATED_BROAD, broad_type, broad_types
from ._gptcelltype import (
    PUBLISHED_METHODS,
    BenchmarkResult,
    plot_means,
    read_table,
    run_benchmark,
    score_column,
    score_table,
)
from ._mapping import FUZZY_CUTOFF, LabelMapping, map_label, map_labels
from ._markers import validate_markers
from ._metrics import Accuracy, cell_accuracy, classification_metrics, cluster_accuracy
from ._scoring import score_labels

__all__ = [
    "Accuracy", "BROAD_ANCHORS", "BenchmarkResult", "FUZZY_CUTOFF", "LEVELS", "LabelMapping", "PUBLISHED_METHODS",
    "RELATED_BROAD", "Side", "agreement", "agreement_level", "broad_type", "broad_types", "cell_accuracy",
    "classification_metrics", "cluster_accuracy", "map_label", "map_labels", "plot_means", "read_table",
    "run_benchmark", "score_column", "score_labels", "score_table", "side", "validate_markers",
]
