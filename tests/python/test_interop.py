"""cellscribe.interop: Seurat / SingleCellExperiment .rds files to AnnData and labels back.

R itself (an ``Rscript`` subprocess) writes the .rds files and the values they hold, and reads the
labels written back; the Python side runs R embedded through rpy2 + anndata2ri.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellscribe import InputError
from cellscribe.interop import read_rds, write_labels_rds

# Saves pbmc_small (Seurat) and a SingleCellExperiment built from it, and what R sees in them.
SAVE = r"""
suppressPackageStartupMessages({library(SeuratObject); library(SingleCellExperiment)})
out <- commandArgs(trailingOnly = TRUE)[1]
saveRDS(pbmc_small, file.path(out, "pbmc.rds"))
counts <- GetAssayData(pbmc_small, slot = "counts")
sce <- SingleCellExperiment(
  assays = list(counts = counts, logcounts = GetAssayData(pbmc_small, slot = "data")),
  reducedDims = list(PCA = Embeddings(pbmc_small, "pca")[, 1:5], UMAP = Embeddings(pbmc_small, "tsne")),
  colData = S4Vectors::DataFrame(label = pbmc_small$groups, row.names = colnames(pbmc_small))
)
saveRDS(sce, file.path(out, "sce.rds"))
saveRDS(data.frame(a = 1), file.path(out, "frame.rds"))
expected <- list(
  cells = colnames(pbmc_small), genes = rownames(pbmc_small),
  count_sums = unname(Matrix::colSums(counts)),
  data_sums = unname(Matrix::colSums(GetAssayData(pbmc_small, slot = "data"))),
  pca = unname(Embeddings(pbmc_small, "pca")), tsne = unname(Embeddings(pbmc_small, "tsne")),
  idents = as.character(Idents(pbmc_small)), ident_levels = levels(Idents(pbmc_small)),
  groups = unname(pbmc_small$groups)
)
writeLines(jsonlite::toJSON(expected, digits = NA), file.path(out, "expected.json"))
"""

# Reads an annotated .rds back and reports what R sees.
READ_BACK = r"""
suppressPackageStartupMessages({library(SeuratObject); library(SingleCellExperiment)})
args <- commandArgs(trailingOnly = TRUE)
obj <- readRDS(args[1])
original <- readRDS(args[2])
if (inherits(obj, "Seurat")) {
  meta <- obj@meta.data
  misc <- obj@misc$cellscribe
  same <- identical(GetAssayData(obj, slot = "counts"), GetAssayData(original, slot = "counts")) &&
    identical(Embeddings(obj, "pca"), Embeddings(original, "pca"))
} else {
  meta <- as.data.frame(colData(obj))
  misc <- S4Vectors::metadata(obj)$cellscribe
  same <- identical(assay(obj, "counts"), assay(original, "counts"))
}
clusters <- misc$clusters
writeLines(jsonlite::toJSON(list(
  class = jsonlite::unbox(class(obj)[1]), cells = rownames(meta), unchanged = jsonlite::unbox(same),
  label = as.character(meta$cellscribe_label),
  label_is_factor = jsonlite::unbox(is.factor(meta$cellscribe_label)),
  label_levels = levels(meta$cellscribe_label), confidence = meta$cellscribe_confidence,
  lineage = as.character(meta$cellscribe_lineage),
  clusters = if (!is.null(clusters)) clusters$cluster, cluster_labels = clusters$label,
  n_bullets = if (!is.null(clusters)) lengths(clusters$bullets), explanation = clusters$explanation,
  model = if (!is.null(misc)) jsonlite::unbox(misc$provenance$model)
), auto_unbox = FALSE, digits = NA, na = "null", null = "null"))
"""


@pytest.fixture(scope="module")
def rds_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rds")
    subprocess.run(["Rscript", "-e", SAVE, str(out)], check=True, capture_output=True, text=True)
    return {"dir": out, "seurat": out / "pbmc.rds", "sce": out / "sce.rds", "frame": out / "frame.rds",
            "expected": json.loads((out / "expected.json").read_text())}


def r_read_back(path: Path, original: Path) -> dict:
    proc = subprocess.run(["Rscript", "-e", READ_BACK, str(path), str(original)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_read_seurat_rds(rds_files: dict) -> None:
    exp = rds_files["expected"]
    adata = read_rds(rds_files["seurat"])
    assert adata.shape == (80, 230)
    assert list(adata.obs_names) == exp["cells"]
    assert list(adata.var_names) == exp["genes"]
    # X is Seurat's normalised `data`, the raw counts are a layer.
    np.testing.assert_allclose(np.asarray(adata.layers["counts"].sum(axis=1)).ravel(), exp["count_sums"])
    np.testing.assert_allclose(np.asarray(adata.X.sum(axis=1)).ravel(), exp["data_sums"])
    np.testing.assert_allclose(adata.obs["nCount_RNA"], exp["count_sums"])
    np.testing.assert_allclose(adata.obsm["X_pca"], np.asarray(exp["pca"]))
    np.testing.assert_allclose(adata.obsm["X_tsne"], np.asarray(exp["tsne"]))
    assert isinstance(adata.obs["ident"].dtype, pd.CategoricalDtype)
    assert list(adata.obs["ident"].cat.categories) == exp["ident_levels"]
    assert adata.obs["ident"].astype(str).tolist() == exp["idents"]
    assert adata.uns["rds"]["class"] == "Seurat"
    assert adata.uns["rds"]["X"] == "logcounts"


def test_read_sce_rds(rds_files: dict) -> None:
    exp = rds_files["expected"]
    adata = read_rds(rds_files["sce"])
    assert adata.shape == (80, 230)
    assert set(adata.layers) == {"counts"}
    np.testing.assert_allclose(np.asarray(adata.X.sum(axis=1)).ravel(), exp["data_sums"])
    np.testing.assert_allclose(adata.obsm["X_pca"], np.asarray(exp["pca"])[:, :5])
    np.testing.assert_allclose(adata.obsm["X_umap"], np.asarray(exp["tsne"]))
    assert adata.obs["label"].astype(str).tolist() == exp["groups"]
    assert adata.uns["rds"]["class"] == "SingleCellExperiment"


def test_read_rds_errors(rds_files: dict, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="File not found"):
        read_rds(tmp_path / "missing.rds")
    with pytest.raises(InputError, match="holds a data.frame, not a Seurat or SingleCellExperiment"):
        read_rds(rds_files["frame"])
    bad = tmp_path / "bad.rds"
    bad.write_text("not an rds file")
    with pytest.raises(InputError, match="Cannot read .*bad.rds"):
        read_rds(bad)
    # through the CLI, R's error text is printed once: in the error line, not echoed before it
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cellscribe", "run", str(bad), "--tissue", "PBMC", "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("unknown input format") == 1, out.stderr


@pytest.mark.model
@pytest.mark.slow
def test_labels_written_back_read_in_r(rds_files: dict, qwen15_path: Path, tmp_path: Path) -> None:
    """Annotate for real with the default embedded model and write the results back."""
    import cellscribe as cs

    adata = read_rds(rds_files["seurat"])
    cs.tl.annotate(adata, groupby="ident", backend="llamacpp", model="qwen2.5-coder-1.5b")
    out = write_labels_rds(adata, rds_files["seurat"], tmp_path / "annotated.rds")
    seen = r_read_back(out, rds_files["seurat"])
    assert seen["class"] == "Seurat"
    assert seen["unchanged"] is True
    assert seen["cells"] == list(adata.obs_names)
    assert seen["label"] == adata.obs["cellscribe_label"].astype(str).tolist()
    assert seen["label_is_factor"] is True
    assert seen["label_levels"] == [str(c) for c in adata.obs["cellscribe_label"].cat.categories]
    np.testing.assert_allclose(seen["confidence"], adata.obs["cellscribe_confidence"].to_numpy())
    assert seen["lineage"] == adata.obs["cellscribe_lineage"].astype(str).tolist()
    # The per-cluster explanations in the layout of the R package's annotate_seurat().
    table = cs.get.annotations(adata)
    assert seen["clusters"] == ["0", "1", "2"]
    assert seen["cluster_labels"] == table["label"].tolist()
    assert seen["n_bullets"] == [3, 3, 3]
    assert seen["explanation"] == table["explanation_markdown"].tolist()
    assert seen["model"] == "qwen2.5-coder-1.5b"


def test_labels_from_a_frame_into_an_sce(rds_files: dict, tmp_path: Path) -> None:
    cells = rds_files["expected"]["cells"]
    # Labels for all cells but the first, which must come back as NA.
    frame = pd.DataFrame({
        "cellscribe_label": pd.Categorical(["B cell", "T cell"] * 39 + ["B cell"], categories=["T cell", "B cell"]),
        "cellscribe_confidence": np.linspace(0, 1, 79),
        "other": 1,
    }, index=cells[1:])
    out = write_labels_rds(frame, rds_files["sce"], tmp_path / "sce_annotated.rds")
    seen = r_read_back(out, rds_files["sce"])
    assert seen["class"] == "SingleCellExperiment"
    assert seen["unchanged"] is True
    assert seen["label"] == [None] + frame["cellscribe_label"].astype(str).tolist()
    assert seen["label_levels"] == ["T cell", "B cell"]
    np.testing.assert_allclose(seen["confidence"][1:], frame["cellscribe_confidence"])
    assert seen["confidence"][0] is None
    assert seen["clusters"] is None


def test_write_labels_errors(rds_files: dict, tmp_path: Path) -> None:
    frame = pd.DataFrame({"cellscribe_label": ["x"]}, index=["no-such-cell"])
    with pytest.raises(InputError, match="None of the 1 cell names"):
        write_labels_rds(frame, rds_files["seurat"], tmp_path / "x.rds")
    with pytest.raises(InputError, match="No column\\(s\\) 'nope'"):
        write_labels_rds(frame, rds_files["seurat"], tmp_path / "x.rds", columns=["nope"])
    with pytest.raises(InputError, match="Nothing to write"):
        write_labels_rds(pd.DataFrame(index=["a"]), rds_files["seurat"], tmp_path / "x.rds")
    with pytest.raises(InputError, match="The folder of"):
        write_labels_rds(frame, rds_files["seurat"], tmp_path / "no" / "x.rds")
