"""``cellscribe.pp.qc_metrics``: per-cell and per-gene QC metrics, mitochondrial fraction included."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..io import matrix_kind

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Gene-name prefixes of mitochondrially encoded genes: human (MT-ND1) and mouse (mt-Nd1).
MITO_PREFIXES = ("MT-", "mt-")
#: The 13 protein-coding mitochondrial genes by their bare names, as NCBI RefSeq annotations name
#: them (scirpy's wu2020 has ND1 ... CYTB); matched case-insensitively when no prefixed gene is found.
MITO_GENES = ("ND1", "ND2", "ND3", "ND4", "ND4L", "ND5", "ND6", "COX1", "COX2", "COX3", "ATP6", "ATP8", "CYTB")


def qc_metrics(
    adata: AnnData,
    *,
    layer: str | None = None,
    mito_prefixes: Sequence[str] = MITO_PREFIXES,
    gene_symbols: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Count genes and molecules per cell and the mitochondrial fraction (``sc.pp.calculate_qc_metrics``).

    Parameters
    ----------
    adata
        Cells x genes with counts (or any non-negative expression where zero means "not detected")
        in ``.X`` or ``layers[layer]``.
    layer
        Layer to read instead of ``.X``.
    mito_prefixes
        Gene-name prefixes that mark mitochondrial genes (default human ``MT-`` and mouse ``mt-``).
        When no gene has one, the bare names in :data:`MITO_GENES` (``ND1`` ... ``CYTB``, as in
        NCBI RefSeq annotations) are used instead.
    gene_symbols
        Column of ``adata.var`` with gene symbols, when ``var_names`` are IDs.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), having written:

    ``adata.obs["n_genes_by_counts"]``, ``adata.obs["total_counts"]``
        Genes detected and total counts per cell.
    ``adata.obs["pct_counts_mt"]``
        Percentage of a cell's counts from mitochondrial genes (0 when none are found).
    ``adata.var["mt"]``, ``adata.var["n_cells_by_counts"]``
        Whether the gene is mitochondrial; cells in which it is detected.

    and scanpy's other ``calculate_qc_metrics`` columns (``obs["total_counts_mt"]``,
    ``var["mean_counts"]``, ``var["pct_dropout_by_counts"]``, ``var["total_counts"]``).
    """
    import scanpy as sc  # heavy (over a second): imported on use, as the CLI imports pp for every command

    adata = adata.copy() if copy else adata
    if layer is not None and layer not in adata.layers:
        raise InputError(f"adata.layers has no {layer!r} (layers: {', '.join(adata.layers) or 'none'}).")
    X = adata.layers[layer] if layer is not None else adata.X
    if matrix_kind(X) == "scaled":
        raise InputError(
            "QC metrics need counts (zero = not detected), but the matrix has negative values (it looks scaled). "
            "Pass the raw counts (layer=, or .raw) or skip QC."
        )
    names = adata.var[gene_symbols].astype(str) if gene_symbols else adata.var_names.to_series().astype(str)
    mito = names.str.startswith(tuple(mito_prefixes)).to_numpy()
    if not mito.any():
        mito = names.str.upper().isin(MITO_GENES).to_numpy()
        if mito.any():
            log.info("no %s genes; counting the bare mitochondrial gene names (%s)", "/".join(mito_prefixes),
                     ", ".join(names[mito]))
        else:
            log.info("no mitochondrial genes (prefixes %s) found; pct_counts_mt is 0", ", ".join(mito_prefixes))
    adata.var["mt"] = mito
    sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, layer=layer, inplace=True)
    adata.obs["pct_counts_mt"] = np.nan_to_num(adata.obs["pct_counts_mt"].to_numpy(dtype=float))
    return adata if copy else None
