"""Malignant clusters from inferred copy number (cellscribe.copynumber), on the bundled tumour
(Tirosh et al.'s oligodendroglioma, malignant cells known from their copy number) and normal
T cells (wu2020): the real infercnvpy on real cells, no stand-ins."""

from __future__ import annotations

import pandas as pd
import pytest
import scanpy as sc

import cellscribe
from cellscribe import copynumber, datasets, tl
from cellscribe.knowledge import genes


def _fetched(loader, folder):
    old = cellscribe.settings.cache_dir
    cellscribe.settings.cache_dir = folder
    try:
        return loader()
    finally:
        cellscribe.settings.cache_dir = old


@pytest.fixture(scope="module")
def oligo(tmp_path_factory):
    """The oligodendroglioma (184 cells, TPM-like values, gene places in var), fetched once."""
    return _fetched(datasets.oligodendroglioma, tmp_path_factory.mktemp("datasets-cache"))


@pytest.fixture(scope="module")
def wu(tmp_path_factory):
    """wu2020's T cells (raw counts), fetched once."""
    return _fetched(datasets.wu2020, tmp_path_factory.mktemp("datasets-cache"))


def test_positions_of_genes():
    places = genes.positions(["MS4A1", "CD3E", "Olig2", "NOTAGENE123"])
    assert list(places.index) == ["MS4A1", "CD3E", "Olig2"]
    assert places.loc["MS4A1", "chromosome"] == "chr11" and places.loc["MS4A1", "arm"] == "11q"
    assert places.loc["Olig2", "arm"] == "21q"
    assert (places["end"] > places["start"]).all()


@pytest.mark.slow
def test_malignant_groups_of_the_oligodendroglioma(oligo):
    calls = copynumber.copy_number(oligo, "cell_type")
    malignant = calls.index[calls["malignant"]]
    assert sorted(malignant) == sorted(c for c in calls.index if c.startswith("malignant"))
    assert calls.loc["Microglia/Macrophage", "reference"]  # PTPRC-expressing: the reference
    assert not calls.loc["Oligodendrocytes (non-malignant)", "malignant"]
    assert calls.loc["Oligodendrocytes (non-malignant)", "losses"] == ()
    for c in malignant:  # the oligodendroglioma's hallmark: 1p lost in every tumour group
        assert "1p" in calls.loc[c, "losses"]
    # the same calls from NCBI Gene's places when the data bring none
    bare = oligo.copy()
    bare.var = bare.var[[]]
    again = copynumber.copy_number(bare, "cell_type")
    assert list(again.index[again["malignant"]]) == list(malignant)


@pytest.mark.slow
def test_normal_cells_are_never_called(wu, oligo):
    adata = wu.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    calls = copynumber.copy_number(adata, "cluster_orig")
    assert calls["reference"].all() and not calls["malignant"].any()  # all T cells: all reference
    # T-cell clusters against the largest one alone, and oligodendrocytes against microglia and back
    means = pd.DataFrame(adata.X.toarray(), columns=adata.var_names).groupby(
        adata.obs["cluster_orig"].astype(str).to_numpy()).mean()
    sizes = adata.obs["cluster_orig"].astype(str).value_counts()
    calls = copynumber.copy_number_of_clusters(means, sizes, pd.Series(0.0, index=sizes.index),
                                               reference=[sizes.idxmax()])
    assert not calls["malignant"].any()
    assert all(not g and not loss for g, loss in zip(calls["gains"], calls["losses"], strict=True))
    normal = oligo[~oligo.obs["cell_type"].str.startswith("malignant")].copy()
    sc.pp.normalize_total(normal, target_sum=1e4)
    sc.pp.log1p(normal)
    for reference in normal.obs["cell_type"].astype(str).unique():
        calls = copynumber.copy_number(normal, "cell_type", reference=[reference])
        assert not calls["malignant"].any(), calls


def test_no_call_without_what_it_needs(oligo):
    assert copynumber.copy_number(oligo, "cell_type", species="mouse") is None
    scaled = oligo.copy()
    sc.pp.log1p(scaled)
    sc.pp.scale(scaled)
    assert copynumber.copy_number(scaled, "cell_type") is None  # negative values: not expression
    no_immune = oligo[:, oligo.var_names != copynumber.REFERENCE_GENE].copy()
    assert copynumber.copy_number(no_immune, "cell_type") is None  # nothing to compare with
    few = oligo[:, :500].copy()
    assert copynumber.copy_number(few, "cell_type") is None


@pytest.mark.slow
def test_annotate_relabels_malignant_clusters(oligo):
    adata = oligo.copy()
    tl.annotate(adata, "cell_type", tissue="brain", explain="knowledge")
    label = adata.obs.groupby("cell_type", observed=True)["cellscribe_label"].first().astype(str)
    assert (label[label.index.str.startswith("malignant")] == "malignant cell").all()
    assert label["Oligodendrocytes (non-malignant)"] != "malignant cell"
    clusters = adata.uns["cellscribe"]["clusters"]
    row = clusters["malignant_MGH36"]
    assert row["cl_id"] == "CL:0001064" and row["chosen_by"] == "copy number"
    assert "1p" in row["bullets"][0] and copynumber.CAVEAT in list(row["caveats"])
    assert adata.uns["cellscribe"]["copy_number"]["malignant_MGH36"]["malignant"]
    plain = oligo.copy()
    tl.annotate(plain, "cell_type", tissue="brain", explain=False, copy_number=False)
    assert "malignant cell" not in set(plain.obs["cellscribe_label"].astype(str))
    assert "copy_number" not in plain.uns["cellscribe"]
