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

Mapping labels to the Cell Ontology is knowledge (:mod:`cellscribe.knowledge.labels`,
:mod:`cellscribe.knowledge.lineage`), re-exported here; running benchmarks is
:mod:`cellscribe.benchmark`.
"""

from ..knowledge.labels import FUZZY_CUTOFF, LabelMapping, map_label, map_labels
from ..knowledge.lineage import BROAD_ANCHORS, RELATED_BROAD, broad_type, broad_types
from ._agreement import LEVELS, Side, agreement, agreement_level, side
from ._markers import validate_markers
from ._metrics import Accuracy, cell_accuracy, classes, classification_metrics, cluster_accuracy
from ._scoring import SCORE_COLUMNS, score_labels

__all__ = [
    "Accuracy", "BROAD_ANCHORS", "FUZZY_CUTOFF", "LEVELS", "RELATED_BROAD", "SCORE_COLUMNS", "LabelMapping", "Side",
    "agreement", "agreement_level", "broad_type", "broad_types", "cell_accuracy", "classes",
    "classification_metrics", "cluster_accuracy", "map_label", "map_labels", "score_labels", "side",
    "validate_markers",
]
