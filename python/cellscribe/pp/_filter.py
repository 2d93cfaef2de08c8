"""``cellscribe.pp.filter_cells``: apply one of the three QC strategies."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ._thresholds import DEFAULT_STRATEGY, STRATEGIES, Strategy, qc_thresholds

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def filter_cells(
    adata: AnnData,
    strategy: Strategy = DEFAULT_STRATEGY,
    *,
    max_pct_mt: float | None = None,
    key: str = "cellscribe_qc",
    copy: bool = False,
    **threshold_kwargs,
) -> AnnData | None:
    """Keep the cells that pass one QC strategy, and the genes detected in enough of them.

    The default strategy is ``"fixed"`` (at least 200 genes per cell): it is the usual scanpy and
    Seurat practice, needs only a detection count (so it also works on TPM data) and, unlike the
    knee strategies, does not cut into the cells of a matrix that Cell Ranger already filtered.
    Choose ``"knee"`` or ``"smoothed_knee"`` for unfiltered barcode matrices (cells plus empty
    droplets), after looking at :func:`cellscribe.pl.qc`.

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``.X``. Thresholds already in ``adata.uns[key]`` (from
        :func:`cellscribe.pp.qc_thresholds`) are used; otherwise they are computed here.
    strategy
        ``"fixed"``, ``"knee"`` or ``"smoothed_knee"``.
    max_pct_mt
        Also drop cells with more than this percentage of mitochondrial counts (``None``: no
        mitochondrial filter; 10-20 is usual for tissue, 5 for PBMC).
    key
        Key of the QC results in ``adata.uns``.
    copy
        Return the filtered copy instead of subsetting ``adata`` in place.
    **threshold_kwargs
        Passed to :func:`cellscribe.pp.qc_thresholds` when the thresholds are computed here.

    Returns
    -------
    ``None`` (or the filtered copy). ``adata`` keeps the passing cells and the genes detected in at
    least ``min_cells`` of them (for every strategy), and ``adata.uns[key]`` gains ``strategy``,
    ``max_pct_mt`` (-1 when unused), ``n_cells_after`` and ``n_genes_after``. Raises
    :class:`~cellscribe.errors.InputError` for an unknown or unavailable strategy (the knee
    strategies need raw counts) or when no cell passes.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown QC strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    if key not in adata.uns or "thresholds" not in adata.uns[key]:
        qc_thresholds(adata, key_added=key, **threshold_kwargs)
    qc = adata.uns[key]
    keep = _cells_to_keep(adata, qc["thresholds"][strategy], strategy, key=key, max_pct_mt=max_pct_mt)
    result = adata[keep].copy() if copy else adata
    if not copy:
        adata._inplace_subset_obs(keep)
    detected = np.asarray((result.X > 0).sum(axis=0)).ravel()
    genes = detected >= int(qc["thresholds"]["fixed"]["min_cells"])
    if not genes.any():
        raise InputError(f"No gene is detected in {qc['thresholds']['fixed']['min_cells']} of the remaining cells.")
    if copy:
        result = result[:, genes].copy()
    else:
        result._inplace_subset_var(genes)
    result.uns[key] = {**dict(qc), "strategy": strategy,
                       "max_pct_mt": -1.0 if max_pct_mt is None else float(max_pct_mt),
                       "n_cells_after": int(result.n_obs), "n_genes_after": int(result.n_vars)}
    log.info("QC %s%s: kept %d of %d cells and %d of %d genes", strategy,
             f" (mito <= {max_pct_mt:g}%)" if max_pct_mt is not None else "", result.n_obs, len(keep),
             result.n_vars, len(genes))
    return result if copy else None


def _cells_to_keep(adata: AnnData, chosen: dict, strategy: str, *, key: str, max_pct_mt: float | None) -> np.ndarray:
    """The cells that pass ``strategy`` (and the mitochondrial cut); an error when the strategy is
    unavailable or no cell passes."""
    if strategy != "fixed" and not chosen["available"]:
        raise InputError(
            f"QC strategy {strategy!r} is not available here: {chosen['note']}. Knee points need raw counts "
            "(an unfiltered or filtered count matrix); use --qc fixed, or give the raw counts."
        )
    keep = adata.obs[f"{key}_{strategy}"].to_numpy(dtype=bool).copy()
    if max_pct_mt is not None:
        keep &= adata.obs["pct_counts_mt"].to_numpy() <= max_pct_mt
    if not keep.any():
        median_genes = float(np.median(adata.obs["n_genes_by_counts"]))
        raise InputError(
            f"No cell passes QC strategy {strategy!r}"
            + (f" with at most {max_pct_mt:g}% mitochondrial counts" if max_pct_mt is not None else "")
            + f" ({adata.n_obs} cells before; the median cell has {median_genes:.0f} genes of {adata.n_vars}). "
            "Look at the QC plot (cellscribe.pl.qc, qc.png) and choose another strategy or threshold "
            "(min_genes=; on the command line --qc knee or --qc none)."
        )
    return keep
