"""Knowledge-grounded candidates for a cluster: what the marker databases say, re-ranked.

* :func:`retrieve`: candidate Cell Ontology types for a cluster's markers from CellMarker 2.0 and
  singleCellBase (species- and tissue-aware hypergeometric enrichment and related features; no
  language model).
* :func:`candidates`: the same, re-ranked by the shipped learned model (:func:`default_reranker`),
  each with ``probability``; :func:`near_ties`: the candidates a model may choose among.

The grounded annotation mode (``cellscribe.annotate(..., mode="grounded")``, the default) is
:mod:`cellscribe.engine.modes.grounded`; fitting and cross-validating the re-ranker is
:mod:`cellscribe.benchmark.reranker`.
"""

from ._index import canonical_symbols, get_index
from ._rerank import MARGIN, MAX_CHOICES, MODEL_FILE, TOP_K, UNMAPPED, Reranker, candidates, default_reranker, near_ties
from ._retrieval import FEATURES, Candidate, retrieve, tissue_matches

__all__ = [
    "FEATURES", "MARGIN", "MAX_CHOICES", "MODEL_FILE", "TOP_K", "UNMAPPED", "Candidate", "Reranker", "candidates",
    "canonical_symbols", "default_reranker", "get_index", "near_ties", "retrieve", "tissue_matches",
]
