"""``cellscribe.pp.qc_thresholds``: the three QC filters of the DeepSeq seed, computed side by side."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import InputError
from ..io import matrix_kind
from . import _knee
from ._metrics import MITO_PREFIXES, qc_metrics

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

Strategy = Literal["fixed", "knee", "smoothed_knee"]
STRATEGIES: tuple[str, ...] = ("fixed", "knee", "smoothed_knee")
#: The strategy :func:`cellscribe.pp.filter_cells` applies unless told otherwise (see its docstring).
DEFAULT_STRATEGY: Strategy = "fixed"
MIN_GENES = 200
MIN_CELLS = 3


def qc_thresholds(
    adata: AnnData,
    *,
    min_genes: int = MIN_GENES,
    min_cells: int = MIN_CELLS,
    lower: float = _knee.DEFAULT_LOWER,
    n_points: int = _knee.DEFAULT_POINTS,
    polynomial_degree: int = _knee.DEFAULT_DEGREE,
    layer: str | None = None,
    mito_prefixes: Sequence[str] = MITO_PREFIXES,
    key_added: str = "cellscribe_qc",
    copy: bool = False,
) -> AnnData | None:
    """Compute the thresholds of the three QC strategies without filtering anything.

    ``fixed``
        A cell passes with at least ``min_genes`` detected genes; a gene stays when detected in
        at least ``min_cells`` cells (scanpy's and Seurat's usual 200 / 3).
    ``knee``
        A cell passes with at least the total counts at the knee of the barcode-rank curve
        (:class:`kneed.KneeLocator`; see :mod:`cellscribe.pp._knee`).
    ``smoothed_knee``
        The same on the smoothed curve: resampled evenly in log-rank and replaced by kneed's
        polynomial fit of degree ``polynomial_degree``.

    The knee strategies need raw counts: on other non-negative data (TPM, log-normalised) they are
    recorded as unavailable and only ``fixed`` can be applied.
    :func:`cellscribe.pl.qc` draws the curve and the distributions with all three cut lines.

    Parameters
    ----------
    adata
        Cells x genes; raw counts in ``.X`` (or ``layers[layer]``) for the knee strategies.
    min_genes, min_cells
        The fixed thresholds.
    lower
        Barcodes with fewer total counts are left out of the barcode-rank curve (default 100).
    n_points, polynomial_degree
        Resampling and smoothing of the smoothed knee.
    layer
        Layer with the counts instead of ``.X``.
    mito_prefixes
        Prefixes of mitochondrial gene names (human ``MT-``, mouse ``mt-``).
    key_added
        Key of ``adata.uns`` and prefix of the ``obs`` flags written.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), having written the metrics of :func:`cellscribe.pp.qc_metrics`
    (``obs["n_genes_by_counts"]``, ``obs["total_counts"]``, ``obs["pct_counts_mt"]``, ...) and:

    ``adata.obs[f"{key_added}_{strategy}"]``
        Whether each cell passes each strategy (bool; all ``False`` for an unavailable one).
    ``adata.uns[key_added]["thresholds"][strategy]``
        ``fixed``: ``min_genes``, ``min_cells``, ``n_cells_pass``. ``knee`` and
        ``smoothed_knee``: ``min_counts`` (the threshold), ``rank`` (rank of the knee barcode),
        ``n_cells_pass``, ``available`` (bool) and ``note`` (why unavailable, or empty).
    ``adata.uns[key_added]["params"]``
        The parameters above, ``n_cells`` and ``n_genes`` before filtering, ``n_mito_genes``,
        ``counts`` (whether the matrix holds raw counts) and ``smoothing`` (a description).
    """
    adata = adata.copy() if copy else adata
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"QC needs cells and genes; the matrix is {adata.n_obs} x {adata.n_vars}.")
    X = adata.layers[layer] if layer is not None and layer in adata.layers else adata.X
    qc_metrics(adata, layer=layer, mito_prefixes=mito_prefixes)
    is_counts = matrix_kind(X) == "counts"
    n_genes = adata.obs["n_genes_by_counts"].to_numpy()
    totals = adata.obs["total_counts"].to_numpy(dtype=float)

    thresholds: dict[str, dict] = {}
    passes = n_genes >= min_genes
    thresholds["fixed"] = {"min_genes": int(min_genes), "min_cells": int(min_cells), "n_cells_pass": int(passes.sum())}
    adata.obs[f"{key_added}_fixed"] = passes
    for name in ("knee", "smoothed_knee"):
        thresholds[name], passes = _knee_threshold(name, totals, is_counts=is_counts, lower=lower, n_points=n_points,
                                                   polynomial_degree=polynomial_degree)
        adata.obs[f"{key_added}_{name}"] = passes

    adata.uns[key_added] = {
        "thresholds": thresholds,
        "params": {
            "min_genes": int(min_genes), "min_cells": int(min_cells), "lower": float(lower),
            "n_points": int(n_points), "polynomial_degree": int(polynomial_degree),
            "mito_prefixes": list(mito_prefixes), "layer": layer or "X",
            "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars),
            "n_mito_genes": int(adata.var["mt"].sum()), "counts": bool(is_counts),
            "smoothing": (f"log-log barcode-rank curve resampled at {n_points} ranks evenly spaced in log-rank, "
                          f"fitted by kneed's polynomial of degree {polynomial_degree}"),
        },
    }
    return adata if copy else None


def _knee_threshold(name: str, totals: np.ndarray, *, is_counts: bool, lower: float, n_points: int,
                    polynomial_degree: int) -> tuple[dict, np.ndarray]:
    """The threshold of a knee strategy (``"knee"`` or ``"smoothed_knee"``) and the cells that pass it;
    unavailable, with a note saying why, on data without raw counts or where no knee is found."""
    found, note = None, ""
    if not is_counts:
        note = "needs raw counts (the matrix holds non-integer values)"
    else:
        found = (_knee.knee(totals, lower) if name == "knee"
                 else _knee.smoothed_knee(totals, lower, n_points=n_points, polynomial_degree=polynomial_degree))
        if found is None:
            n_above = int((totals >= lower).sum())
            note = (f"no knee found ({n_above} cells with >= {lower:g} counts)" if n_above >= _knee.MIN_BARCODES
                    else f"too few cells with >= {lower:g} counts ({n_above}) for a barcode-rank curve")
    passes = totals >= found.min_counts if found is not None else np.zeros(totals.size, dtype=bool)
    if note:
        log.info("QC strategy %s unavailable: %s", name, note)
    return {
        "available": found is not None,
        "min_counts": float(found.min_counts) if found is not None else float("nan"),
        "rank": int(found.rank) if found is not None else -1,
        "n_cells_pass": int(passes.sum()),
        "note": note,
    }, passes
