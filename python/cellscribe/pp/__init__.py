"""Preprocessing (scanpy's ``pp`` convention): QC metrics, the three QC thresholds, filtering.

>>> cs.pp.qc_thresholds(adata)            # fixed, knee and smoothed knee, nothing removed yet
>>> cs.pl.qc(adata, path="qc.png")        # look, then choose
>>> cs.pp.filter_cells(adata, "fixed")    # the documented default
"""

from ._filter import filter_cells
from ._knee import smoothed_knee
from ._metrics import MITO_GENES, MITO_PREFIXES, qc_metrics
from ._thresholds import DEFAULT_STRATEGY, STRATEGIES, qc_thresholds

__all__ = ["DEFAULT_STRATEGY", "MITO_GENES", "MITO_PREFIXES", "STRATEGIES", "filter_cells", "qc_metrics",
           "qc_thresholds", "smoothed_knee"]
