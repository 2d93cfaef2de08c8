"""``cellscribe run``: the pipeline end to end from the command line (real models, real files),
the readers (10x .h5, 10x mtx folder, .h5ad), and bad inputs as one clear line (exit 2)."""

from __future__ import annotations

import gzip
import subprocess
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import cli_env

from cellscribe import io
from cellscribe.errors import InputError


def cli(*args: str) -> subprocess.CompletedProcess:
    env = cli_env()
    return subprocess.run([sys.executable, "-m", "cellscribe", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def cli_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """``cellscribe.cli.main`` in this process (fast): exit status and standard error."""
    from cellscribe.cli import main

    monkeypatch.setattr(sys, "argv", ["cellscribe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns


def small_counts(n_cells: int = 60, n_genes: int = 300, seed: int = 0) -> anndata.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(rng.gamma(0.3, 2.0, size=n_genes), size=(n_cells, n_genes)).astype(np.float32))
    adata = anndata.AnnData(X)
    adata.obs_names = [f"AAAC{i:04d}-1" for i in range(n_cells)]
    adata.var_names = ["MT-CO1", "MT-ND1"] + [f"GENE{i}" for i in range(n_genes - 2)]
    adata.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(n_genes)]
    return adata


def write_10x_h5(adata: anndata.AnnData, path) -> None:
    """Cell Ranger 3+'s HDF5 layout: genes x cells in CSC (= the cells x genes CSR arrays)."""
    X = sp.csr_matrix(adata.X)
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(adata.obs_names, dtype="S")
        m["data"] = X.data.astype(np.int32)
        m["indices"] = X.indices.astype(np.int64)
        m["indptr"] = X.indptr.astype(np.int64)
        m["shape"] = np.array([adata.n_vars, adata.n_obs], dtype=np.int32)
        feats = m.create_group("features")
        feats["id"] = np.array(adata.var["gene_ids"], dtype="S")
        feats["name"] = np.array(adata.var_names, dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")
        feats["_all_tag_keys"] = np.array([b"genome"])


def write_10x_mtx(adata: anndata.AnnData, folder) -> None:
    """Cell Ranger 3+'s folder: matrix.mtx.gz (genes x cells), features.tsv.gz, barcodes.tsv.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.csr_matrix(adata.X).T.astype(np.int64).tocoo())
    features = pd.DataFrame({"id": adata.var["gene_ids"], "name": adata.var_names, "type": "Gene Expression"})
    features.to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False, compression="gzip")
    pd.Series(adata.obs_names).to_csv(folder / "barcodes.tsv.gz", header=False, index=False, compression="gzip")


def test_readers_10x_h5_mtx_and_h5ad(tmp_path):
    adata = small_counts()
    write_10x_h5(adata, tmp_path / "filtered_feature_bc_matrix.h5")
    write_10x_mtx(adata, tmp_path / "filtered_feature_bc_matrix")
    adata.write_h5ad(tmp_path / "data.h5ad")
    for path in (tmp_path / "filtered_feature_bc_matrix.h5", tmp_path / "filtered_feature_bc_matrix",
                 tmp_path / "filtered_feature_bc_matrix" / "matrix.mtx.gz", tmp_path / "data.h5ad"):
        read = io.read(path)
        assert read.shape == adata.shape, path
        assert list(read.var_names) == list(adata.var_names) and list(read.obs_names) == list(adata.obs_names)
        assert (sp.csr_matrix(read.X) != adata.X).nnz == 0
        assert io.matrix_kind(read.X) == "counts"


def test_matrix_kind_and_where_counts_are():
    import scanpy as sc

    counts = small_counts()
    assert io.find_counts(counts)[0] == ".X"
    logged = counts.copy()
    logged.layers["counts"] = logged.X.copy()
    sc.pp.normalize_total(logged)
    sc.pp.log1p(logged)
    assert io.matrix_kind(logged.X) == "log_normalised"
    source, found = io.find_counts(logged)
    assert source == 'layers["counts"]' and (found.X != counts.X).nnz == 0
    in_raw = counts.copy()
    in_raw.raw = in_raw.copy()
    sc.pp.normalize_total(in_raw, target_sum=1e6)
    assert io.matrix_kind(in_raw.X) == "unnormalised"
    assert io.find_counts(in_raw)[0] == ".raw"
    pbmc = sc.datasets.pbmc68k_reduced()
    assert io.matrix_kind(pbmc.X) == "scaled" and io.find_counts(pbmc) is None
    assert io.describe_missing_counts(pbmc) == (
        '.X looks scaled (non-integer values from -2.03 to 28.4); .raw looks log-normalised; no layers["counts"]')


@pytest.mark.model
@pytest.mark.slow
def test_run_pbmc68k_reduced_end_to_end(qwen15_path, tmp_path):
    """No raw counts in pbmc68k_reduced: QC is skipped with a message, the rest runs for real with
    the embedded 1.5B model (labels only, few clusters)."""
    import scanpy as sc

    data = tmp_path / "pbmc68k_reduced.h5ad"
    sc.datasets.pbmc68k_reduced().write_h5ad(data)
    out = tmp_path / "out"
    res = cli("run", str(data), "--tissue", "PBMC", "--backend", "llamacpp", "--no-explain", "--resolution", "0.3",
              "--truth", "bulk_labels", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "has no raw counts" in res.stderr and "QC skipped (no raw counts)" in res.stderr
    assert "Traceback" not in res.stderr
    adata = anndata.read_h5ad(out / "annotated.h5ad")
    n_clusters = adata.obs["leiden"].nunique()
    assert 4 <= n_clusters <= 12
    assert adata.obs["cellscribe_label"].notna().all()
    assert adata.uns["cellscribe_run"]["qc"] == "none" and adata.uns["cellscribe_run"]["counts_source"] == "none"
    assert set(adata.uns["cellscribe"]["clusters"]) == set(adata.obs["leiden"].cat.categories)
    table = pd.read_csv(out / "annotations.csv", dtype={"cluster": str})
    assert len(table) == n_clusters and table["n_cells"].sum() == adata.n_obs
    assert {"label", "markers", "expert_majority"} <= set(table.columns)
    # the cluster of the experts' B cells (CD79A, MS4A1 among its markers) is labelled a B cell
    b = table.loc[table["expert_majority"].str.startswith("CD19+ B")].sort_values("n_cells").iloc[-1]
    assert {"CD79A", "MS4A1"} & set(b["markers"].split("; ")) and "B cell" in b["label"]
    # grounded by default: every label carries a Cell Ontology ID, the B cells CL:0000236 or a subtype
    assert adata.obs["cellscribe_cl_id"].str.match(r"^(CL:\d{7}|unmapped)$").all()
    assert b["cl_id"].startswith("CL:") and adata.uns["cellscribe"]["params"]["mode"] == "grounded"
    # list columns are "; "-joined in the CSV (after the round trip through uns they are numpy arrays)
    assert not table["evidence_genes"].str.contains(r"[\[\]']").any() and "; " in table["candidates"].iloc[0]
    html = (out / "report.html").read_text()
    assert html.count('<div class="card">') == n_clusters and html.count("data:image/png;base64,") == 2
    assert html.count("<b>Cell Ontology:</b>") == n_clusters
    md = (out / "report.md").read_text()
    assert md.count("### Cluster ") == n_clusters and "](umap_labels.png)" in md and "- **n_cells:**" in md
    for png in ("umap_labels.png", "umap_clusters.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "qc.png").exists()


@pytest.mark.model
@pytest.mark.slow
def test_run_raw_counts_mtx_folder_with_knee_qc(smollm_path, tmp_path, capsys, monkeypatch):
    """wu2020's raw counts as a 10x mtx folder through the knee QC (in this process; plumbing: the
    tiny model's labels are not checked)."""
    from cellscribe import datasets

    wu = datasets.wu2020()
    folder = tmp_path / "wu2020_mtx"
    write_10x_mtx(wu, folder)
    out = tmp_path / "out"
    code, stderr = cli_in_process(["run", str(folder), "--tissue", "tumour T cells", "--backend", "llamacpp",
                                   "--model", "smollm2-135m", "--no-explain", "--qc", "knee", "--resolution", "0.5",
                                   "-o", str(out)], capsys, monkeypatch)
    assert code == 0, stderr
    assert "QC knee: 95 of 200 cells kept" in stderr
    adata = anndata.read_h5ad(out / "annotated.h5ad")
    qc = adata.uns["cellscribe_qc"]
    assert qc["strategy"] == "knee" and adata.n_obs == qc["thresholds"]["knee"]["n_cells_pass"] == 95
    assert adata.obs["total_counts"].min() >= qc["thresholds"]["knee"]["min_counts"] == 2362
    assert adata.uns["cellscribe_run"]["counts_source"] == ".X" and "counts" in adata.layers
    assert (out / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "qc.png" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: p / "missing.h5ad", [], "Data file not found:"),
        (lambda p: (p / "cells.loom").write_text("x") and p / "cells.loom", [], "Unknown data format '.loom'"),
        (lambda p: small_counts()[:0].copy().write_h5ad(p / "e.h5ad") or p / "e.h5ad", [],
         "holds an empty matrix (0 cells x 300 genes)"),
        (lambda p: anndata.AnnData(np.zeros((5, 4), dtype=np.float32)).write_h5ad(p / "z.h5ad") or p / "z.h5ad", [],
         "holds only zeros (5 cells x 4 genes)"),
        (lambda p: (p / "broken.h5").write_bytes(b"not hdf5") and p / "broken.h5", [],
         "as a 10x Genomics .h5 file"),
        (lambda p: (p / "folder").mkdir() or p / "folder", [], "is a folder without a matrix.mtx"),
        (lambda p: __import__("scanpy").datasets.pbmc68k_reduced().write_h5ad(p / "pbmc.h5ad") or p / "pbmc.h5ad",
         ["--qc", "knee"], "QC strategy 'knee' needs raw counts, but pbmc.h5ad has none: .X looks scaled"),
        (lambda p: small_counts().write_h5ad(p / "c.h5ad") or p / "c.h5ad", ["--truth", "cell_type"],
         "has no obs column 'cell_type'"),
    ],
    ids=["missing", "unknown-format", "empty", "all-zero", "broken-h5", "no-mtx-folder", "no-counts", "no-truth"],
)
def test_bad_inputs_are_one_clear_line(make, args, message, tmp_path, capsys, monkeypatch):
    path = make(tmp_path)
    code, stderr = cli_in_process(["run", str(path), "--backend", "llamacpp", *args], capsys, monkeypatch)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert stderr.startswith("Error:")


def test_rds_without_interop_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "seurat.rds").write_bytes(b"\x1f\x8b")
    monkeypatch.setitem(sys.modules, "cellscribe.interop", None)  # as if the interop module could not load
    with pytest.raises(InputError, match=r"needs R and the interop extra: `pip install cellscribe\[interop\]`"):
        io.read(tmp_path / "seurat.rds")


def test_error_line_keeps_brackets_and_is_not_wrapped(tmp_path, capsys, monkeypatch):
    """The CLI prints the message as it is (rich markup would swallow ``[interop]``), on one line."""
    from cellscribe.cli import main

    (tmp_path / "seurat.rds").write_bytes(b"\x1f\x8b")
    monkeypatch.setitem(sys.modules, "cellscribe.interop", None)
    monkeypatch.setattr(sys, "argv", ["cellscribe", "run", str(tmp_path / "seurat.rds")])
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err
    assert "`pip install cellscribe[interop]`" in err
    assert err.startswith("Error:") and err.count("\n") == 1


@pytest.mark.slow
def test_run_oligodendroglioma_calls_the_tumour_clusters_malignant(tmp_path):
    """`cellscribe run oligodendroglioma` (labels only): the tumour's Leiden clusters are 'malignant cell'
    from their copy number, and --no-copy-number leaves them to the markers."""
    for extra, out in (([], tmp_path / "on"), (["--no-copy-number"], tmp_path / "off")):
        proc = cli("run", "oligodendroglioma", "--tissue", "brain", "--no-explain", "--out", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
    on = pd.read_csv(tmp_path / "on" / "annotations.csv")
    off = pd.read_csv(tmp_path / "off" / "annotations.csv")
    assert (on["label"] == "malignant cell").sum() >= 4
    assert set(on.loc[on["label"] == "malignant cell", "chosen_by"]) == {"copy number"}
    assert "malignant cell" not in set(off["label"])
