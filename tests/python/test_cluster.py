"""Clustering and markers (cellscribe.tl.cluster) on raw counts, TPM-like values and scaled data."""

from __future__ import annotations

import numpy as np
import pytest

import cellscribe
from cellscribe import pp, tl
from cellscribe.errors import InputError
from cellscribe.markers import MarkerTable, from_scanpy


@pytest.fixture(scope="module")
def wu2020_qc(tmp_path_factory):
    """wu2020 after the fixed QC (196 cells), fetched once for this module."""
    from cellscribe import datasets

    old = cellscribe.settings.cache_dir
    cellscribe.settings.cache_dir = tmp_path_factory.mktemp("datasets-cache")
    try:
        adata = datasets.wu2020()
    finally:
        cellscribe.settings.cache_dir = old
    pp.filter_cells(adata)
    return adata


@pytest.mark.slow
def test_cluster_raw_counts(wu2020_qc):
    adata = wu2020_qc.copy()
    counts = adata.X.copy()
    tl.cluster(adata, resolution=1.0)
    params = adata.uns["cellscribe_cluster"]["params"]
    assert params["input"] == "counts" and params["normalised"] and params["markers_on"] == "X"
    assert (adata.layers["counts"] != counts).nnz == 0  # counts kept, .X now log-normalised
    assert adata.X.max() < 12 and np.allclose(np.expm1(adata.X).sum(axis=1), 1e4, rtol=1e-3)
    assert adata.var["highly_variable"].sum() == 2000
    clusters = adata.obs["leiden"]
    assert clusters.dtype.name == "category" and 3 <= clusters.nunique() == params["n_clusters"] <= 12
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2) and adata.obsm["X_pca"].shape[1] == 50
    # markers in the core's marker-table type, one list per cluster
    table = from_scanpy(adata)
    assert isinstance(table, MarkerTable) and table.clusters == list(clusters.cat.categories)
    assert adata.uns["rank_genes_groups"]["params"]["groupby"] == "leiden"
    # the clusters follow the experts' CD4 / CD8 split (their codes start with 4 or 8): each cluster's
    # majority lineage holds most of its cells
    lineage = adata.obs["cluster_orig"].astype(str).str[0]
    majority = adata.obs.assign(lineage=lineage).groupby("leiden", observed=True)["lineage"].agg(
        lambda s: s.value_counts().iloc[0])
    assert majority.sum() / adata.n_obs >= 0.7
    cd8 = adata.obs.assign(lineage=lineage).groupby("leiden", observed=True)["lineage"].agg(
        lambda s: (s == "8").mean()).idxmax()
    assert {"CD8A", "CD8B"} & set(np.asarray(adata.uns["rank_genes_groups"]["names"][cd8])[:50].tolist())


def test_cluster_unnormalised_values_are_log_normalised(wu2020_qc):
    """TPM-like input (non-integer, not logged), as in infercnvpy's oligodendroglioma."""
    import scanpy as sc

    adata = wu2020_qc.copy()
    sc.pp.normalize_total(adata, target_sum=1e6)  # CPM
    tl.cluster(adata, resolution=0.5)
    params = adata.uns["cellscribe_cluster"]["params"]
    assert params["input"] == "unnormalised" and params["normalised"] and "counts" not in adata.layers
    assert adata.X.max() < 12


def test_cluster_scaled_data_ranks_markers_on_raw():
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    adata = sc.datasets.pbmc68k_reduced()
    raw_before, x_before = adata.raw.X.copy(), adata.X.copy()
    again = adata.copy()
    tl.cluster(adata, resolution=0.3)
    params = adata.uns["cellscribe_cluster"]["params"]
    assert params["input"] == "scaled" and not params["normalised"] and params["markers_on"] == "raw"
    assert (adata.raw.X != raw_before).nnz == 0 and np.array_equal(adata.X, x_before)
    # same input and seed, same clusters and embedding
    tl.cluster(again, resolution=0.3)
    assert again.obs["leiden"].tolist() == adata.obs["leiden"].tolist()
    assert np.allclose(again.obsm["X_umap"], adata.obsm["X_umap"])
    assert adjusted_rand_score(adata.obs["bulk_labels"], adata.obs["leiden"]) > 0.3
    table = from_scanpy(adata)
    b_cluster = adata.obs.groupby("leiden", observed=True)["bulk_labels"].agg(
        lambda s: (s == "CD19+ B").sum()).idxmax()
    assert {"CD79A", "CD79B", "MS4A1"} & set(table.genes[b_cluster])


def test_cluster_bad_input(wu2020_qc):
    with pytest.raises(InputError, match="empty matrix"):
        tl.cluster(wu2020_qc[:0].copy())
    for n in (2, 3):  # 3 cells used to end in a scipy traceback from UMAP's spectral layout
        with pytest.raises(InputError, match=f"at least 10 cells .*; the data has {n}"):
            tl.cluster(wu2020_qc[:n].copy())
