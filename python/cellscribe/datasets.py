"""Small datasets that install with the dependencies (no download at run time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData


def pbmc68k_reduced(*, groupby: str = "louvain", n_genes: int = 50) -> AnnData:
    """scanpy's bundled PBMC subset (700 cells, 765 genes; ``obs.bulk_labels`` are expert labels)
    with ``rank_genes_groups`` computed on its clusters (``obs[groupby]``, Wilcoxon, log-normalised
    ``.raw``), ready for :func:`cellscribe.tl.annotate` or :func:`cellscribe.markers.read_markers`."""
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    sc.tl.rank_genes_groups(adata, groupby, method="wilcoxon", use_raw=True, n_genes=n_genes)
    return adata
