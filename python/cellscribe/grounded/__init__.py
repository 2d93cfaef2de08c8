"""Knowledge-grounded candidates for a cluster: what the marker databases say, re-ranked.

* :func:`retrieve`: candidate Cell Ontology types for a cluster's markers from the marker databases
  CellMarker 2.0 and singleCellBase and the curated marker sets of Pegasus and besca
  (:data:`SOURCES`; species- and tissue-aware hypergeometric enrichment and related features; no
  language model), with the subtypes of the leading types that a leading marker names.
* :func:`candidates`: the same, re-ranked by the shipped learned model (:func:`default_reranker`),
  each with ``probability`` (the top one's is the calibrated confidence of choosing it,
  :class:`Calibration`, :func:`context`); :func:`near_ties`: the candidates a model may choose among.
* :func:`go_profiles`: GO biological-process profiles of the index's genes and types, and the
  similarity of a marker list to each type (a retrieval feature, :class:`GoProfiles`).
* :func:`infer_tissue`: the organ a sample's clusters most likely come from, when no tissue is
  given (a :class:`TissueGuess` to show: ``"tissue inferred: brain (...)"``).

The grounded annotation mode (``cellscribe.annotate(..., mode="grounded")``, the default) is
:mod:`cellscribe.engine.modes.grounded`; fitting and cross-validating the re-ranker is
:mod:`cellscribe.benchmark.reranker`.
"""

from ._function import GoProfiles, go_profiles
from ._index import SOURCES, canonical_symbols, get_index
from ._rerank import (
    CONTEXT_FEATURES,
    MARGIN,
    MAX_CHOICES,
    MODEL_FILE,
    SUB_RATIO_CAP,
    SUBTYPE_RATIO,
    TOP_K,
    UNMAPPED,
    Calibration,
    Reranker,
    candidates,
    chosen_index,
    context,
    default_reranker,
    near_ties,
)
from ._retrieval import FEATURES, Candidate, retrieve, tissue_matches
from ._tissue import TissueGuess, infer_tissue

__all__ = [
    "CONTEXT_FEATURES", "FEATURES", "MARGIN", "MAX_CHOICES", "MODEL_FILE", "SOURCES", "SUBTYPE_RATIO",
    "SUB_RATIO_CAP", "TOP_K", "UNMAPPED", "Calibration", "Candidate", "GoProfiles", "Reranker", "TissueGuess",
    "candidates", "canonical_symbols", "chosen_index", "context", "default_reranker", "get_index", "go_profiles",
    "infer_tissue", "near_ties", "retrieve", "tissue_matches",
]
