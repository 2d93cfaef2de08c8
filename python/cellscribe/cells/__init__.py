"""Per-cell grounded cell types at atlas scale, on Dask.

Every cell is scored against the cell types its clusters' marker genes propose (the grounded
candidates of :mod:`cellscribe.grounded`), with the marker index's genes as weighted signatures,
computed chunk by chunk as sparse products on a Dask array: from an AnnData in memory or lazily
from an ``.h5ad``/``.zarr`` file, on the threaded scheduler or a ``dask.distributed`` cluster,
resumable by chunk.

* :func:`label_cells`: per-cell label, CL ID, confidence, margin, cluster disagreement -> :class:`CellLabels`.
* :func:`calibrate`: the map from a cell's softmax probability to its confidence (:data:`CALIBRATION`).
* :func:`transfer_labels`: label transfer from a labelled reference (logistic regression on log expression).
* :func:`write_results`: results into an AnnData's ``obs``, a file's ``obs`` (without loading ``X``) or a sidecar CSV.
* :func:`open_cells`: the lazy, chunked reader the others use.

``cellscribe.tl.annotate_cells`` is the scanpy-style entry point (with the reasoner budget);
``cellscribe cells`` the command line.
"""

from ._api import (
    CALIBRATION,
    COLUMNS,
    PRIOR_WEIGHT,
    REFINE_MARGIN,
    SOURCES,
    STATS_CELLS,
    TEMPERATURE,
    UP_MARGIN,
    CellLabels,
    label_cells,
)
from ._runner import SCHEDULERS, ChunkStore, run_chunks
from ._score import calibrate
from ._signatures import SPECIES, Panel, build_panel, check_species, group_markers
from ._source import CHUNK_SIZE, CellSource, log_normalize, open_cells
from ._transfer import N_GENES, transfer_labels
from ._write import DEFAULT_KEY, obs_columns, write_results

__all__ = [
    "CALIBRATION", "CHUNK_SIZE", "COLUMNS", "DEFAULT_KEY", "N_GENES", "PRIOR_WEIGHT", "REFINE_MARGIN", "SCHEDULERS",
    "SOURCES", "SPECIES", "STATS_CELLS", "TEMPERATURE", "UP_MARGIN", "CellLabels", "CellSource", "ChunkStore", "Panel",
    "build_panel", "calibrate", "check_species", "group_markers", "label_cells", "log_normalize", "obs_columns",
    "open_cells", "run_chunks", "transfer_labels", "write_results",
]
