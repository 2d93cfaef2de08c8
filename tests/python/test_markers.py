"""Marker input: Seurat FindAllMarkers, scanpy rank_genes_groups, mappings; and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from cellscribe.errors import MarkerInputError
from cellscribe.markers import MarkerWarning, from_scanpy, read_markers

SEURAT_CSV = DATA / "pbmc_small_markers.csv"  # FindAllMarkers(pbmc_small, only.pos = TRUE), Seurat 4.3


def seurat_df() -> pd.DataFrame:
    return pd.read_csv(SEURAT_CSV, index_col=0)


def test_seurat_csv_top_n_in_seurat_order():
    table = read_markers(SEURAT_CSV, top_n=5)
    assert table.source == "seurat"
    assert table.clusters == ["0", "1", "2"]
    df = seurat_df()
    for cl, genes in table.genes.items():
        sub = df[df["cluster"].astype(str) == cl].sort_values(["p_val_adj", "avg_log2FC"], ascending=[True, False])
        assert genes == sub["gene"].head(5).tolist()
    assert list(table.stats.columns[:7]) == ["p_val", "avg_log2FC", "pct.1", "pct.2", "p_val_adj", "cluster", "gene"]


def test_filters_apply():
    full = read_markers(seurat_df(), top_n=100)
    strict = read_markers(seurat_df(), top_n=100, min_log2fc=2.0, min_pct=0.5)
    assert all(len(strict.genes[c]) < len(full.genes[c]) for c in strict.genes)
    assert (strict.stats["avg_log2FC"] > 2.0).all() and (strict.stats["pct.1"] >= 0.5).all()


def test_negative_markers_are_dropped():
    df = seurat_df()
    df.loc[df.index[0], "avg_log2FC"] = -3.0
    first_gene = df.iloc[0]["gene"]
    table = read_markers(df, top_n=100)
    assert first_gene not in table.genes["0"]


def test_mapping_and_two_column_csv(tmp_path):
    table = read_markers({"a": ["CD3D", "CD3E"], 1: "MS4A1, CD79A"})
    assert table.genes == {"a": ["CD3D", "CD3E"], "1": ["MS4A1", "CD79A"]}
    path = tmp_path / "two.csv"
    pd.DataFrame({"cluster": ["x", "x", "y"], "gene": ["LYZ", "CD14", "NKG7"]}).to_csv(path, index=False)
    assert read_markers(path).genes == {"x": ["LYZ", "CD14"], "y": ["NKG7"]}


def test_scanpy_rank_genes_groups_keeps_scanpy_order():
    import scanpy as sc

    from cellscribe.datasets import pbmc68k_reduced

    adata = pbmc68k_reduced(groupby="louvain")
    table = from_scanpy(adata, top_n=8)
    assert table.source == "scanpy"
    assert len(table) == adata.obs["louvain"].nunique()
    ranked = sc.get.rank_genes_groups_df(adata, group="0")
    expected = ranked[ranked["logfoldchanges"] > 0]["names"].head(8).tolist()
    assert table.genes["0"] == expected


def test_missing_columns_names_them():
    df = seurat_df().drop(columns=["gene"])
    with pytest.raises(MarkerInputError, match=r"missing column\(s\) 'gene'.*FindAllMarkers"):
        read_markers(df)


def test_two_column_table_with_wrong_names():
    with pytest.raises(MarkerInputError, match=r"missing column\(s\) 'cluster' and 'gene'"):
        read_markers(pd.DataFrame({"a": [1], "b": [2], "c": [3]}))


def test_empty_table(tmp_path):
    with pytest.raises(MarkerInputError, match=r"empty \(0 rows\)"):
        read_markers(seurat_df().iloc[:0])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MarkerInputError, match="is empty"):
        read_markers(empty)


def test_empty_cluster_is_skipped_with_a_warning():
    df = seurat_df()
    df.loc[df["cluster"] == 2, "avg_log2FC"] = -1.0
    with pytest.warns(MarkerWarning, match=r"Skipped 1 cluster\(s\) with no usable markers: 2 \(no marker passes"):
        table = read_markers(df)
    assert table.clusters == ["0", "1"] and "2" in table.dropped


def test_all_clusters_empty_is_an_error():
    with pytest.raises(MarkerInputError, match="No cluster has a usable marker"):
        read_markers(seurat_df(), min_log2fc=100)


def test_nan_gene_is_an_error_naming_rows():
    df = seurat_df().reset_index(drop=True)
    df.loc[3, "gene"] = np.nan
    with pytest.raises(MarkerInputError, match=r"1 marker row\(s\) have an empty 'gene' \(row\(s\) 4\)"):
        read_markers(df)


def test_nan_statistics_are_dropped_with_a_warning():
    df = seurat_df()
    df.loc[df.index[:2], "avg_log2FC"] = np.nan
    with pytest.warns(MarkerWarning, match=r"Dropped 2 marker row\(s\) with missing or non-numeric statistics"):
        read_markers(df)


def test_duplicated_genes_warn_and_keep_first():
    with pytest.warns(MarkerWarning, match=r"lists gene\(s\) more than once \(CD3D\)"):
        table = read_markers({"0": ["CD3D", "CD3E", "CD3D"]})
    assert table.genes["0"] == ["CD3D", "CD3E"]
    df = seurat_df()
    df = pd.concat([df, df[df["cluster"] == 0].head(1)])
    with pytest.warns(MarkerWarning, match=r"duplicated gene\(s\) within a cluster"):
        read_markers(df)


def test_ensembl_ids_are_rejected():
    ids = {"0": ["ENSG00000167286", "ENSG00000198851", "ENSG00000160654"]}
    with pytest.raises(MarkerInputError, match="look like Ensembl IDs .*ENSG00000167286.*gene symbols"):
        read_markers(ids)


def test_mouse_symbols_with_human_species():
    mouse = {"0": ["Cd3e", "Cd3d", "Ms4a1", "Cd79a", "Lyz2"]}
    with pytest.raises(MarkerInputError, match=r"mouse-style symbols .*species='human'.*species='mouse'"):
        read_markers(mouse)
    assert read_markers(mouse, species="mouse").species == "mouse"


def test_human_orf_symbols_are_not_mouse():
    assert read_markers({"0": ["C1orf112", "C19orf77", "CD3D"]}).genes["0"][0] == "C1orf112"


def test_bad_arguments(tmp_path):
    with pytest.raises(MarkerInputError, match="species must be one of human, mouse"):
        read_markers({"0": ["CD3D"]}, species="zebrafish")
    with pytest.raises(MarkerInputError, match="top_n must be a positive integer"):
        read_markers({"0": ["CD3D"]}, top_n=0)
    xlsx = tmp_path / "markers.xlsx"
    xlsx.write_bytes(b"")
    with pytest.raises(MarkerInputError, match="Unknown marker file type '.xlsx'"):
        read_markers(xlsx)
    with pytest.raises(MarkerInputError, match="Marker file not found"):
        read_markers(tmp_path / "absent.csv")
    with pytest.raises(MarkerInputError, match="Cannot read markers from a int"):
        read_markers(42)


def test_anndata_without_rank_genes_groups():
    import anndata

    with pytest.raises(MarkerInputError, match=r"run sc.tl.rank_genes_groups"):
        read_markers(anndata.AnnData(np.zeros((3, 2))))


def test_unknown_symbols_are_named_in_a_warning():
    """Symbols NCBI Gene does not know (typos, made-up names) are named; known ones, aliases
    (CD20 is MS4A1) and mouse symbols with species='mouse' pass silently."""
    with pytest.warns(MarkerWarning, match=r"2 marker\(s\) are not human gene symbols known to NCBI Gene "
                                           r"\(CD3EE, NOTAGENE1\): check for typos"):
        table = read_markers({"0": ["CD3E", "CD3EE", "CD20", "NOTAGENE1", "IL7R"]})
    assert table.genes["0"] == ["CD3E", "CD3EE", "CD20", "NOTAGENE1", "IL7R"]  # passed on as they are
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", MarkerWarning)
        read_markers(SEURAT_CSV)
        read_markers({"0": ["Cd3e", "Cd3d", "Ms4a1", "Cd79a", "Lyz2"]}, species="mouse")
