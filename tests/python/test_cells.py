"""Per-cell grounded labels on Dask (cellscribe.cells, cellscribe.tl.annotate_cells): real marker
index, real Dask schedulers, a real LocalCluster on loopback."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.model_selection import train_test_split

import cellscribe as cs
from cellscribe import cells, datasets
from cellscribe.errors import InputError
from cellscribe.evaluate import cell_accuracy
from cellscribe.knowledge import ontology

MARKERS = {
    "T": ["CD3D", "CD3E", "CD3G", "CD2", "IL7R", "TRAC", "LCK", "CD247"],
    "B": ["MS4A1", "CD79A", "CD79B", "CD19", "BANK1", "PAX5", "CD22", "FCRL1"],
    "Mono": ["CD14", "LYZ", "FCN1", "S100A8", "S100A9", "CSF1R", "VCAN", "CD68"],
}
BROAD = {"T": "CL:0000084", "B": "CL:0000236", "Mono": "CL:0000576"}
BACKGROUND = [f"GENE{i}" for i in range(40)]


def hand_made(n_per_type: int = 60, seed: int = 0) -> ad.AnnData:
    """Counts: each type's cells express its own markers (and background genes), nothing else."""
    rng = np.random.default_rng(seed)
    genes = [g for m in MARKERS.values() for g in m] + BACKGROUND
    rows, types = [], []
    for t, markers in MARKERS.items():
        rate = np.full(len(genes), 0.0)
        rate[[genes.index(g) for g in markers]] = 8.0
        rate[len(genes) - len(BACKGROUND):] = 2.0
        rows.append(rng.poisson(rate, size=(n_per_type, len(genes))))
        types += [t] * n_per_type
    X = sparse.csr_matrix(np.vstack(rows).astype(np.float32))
    obs = pd.DataFrame({"cluster": pd.Categorical(types)}, index=[f"c{i}" for i in range(len(types))])
    return ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes))


def test_hand_made_cells_get_their_types():
    adata = hand_made()
    result = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=50, progress=False)
    cl = ontology.get()
    table = result.table
    for t, broad in BROAD.items():
        ids = table.loc[adata.obs["cluster"] == t, "cl_id"].astype(str)
        assert all(cl.is_a(i, broad) or i == broad for i in ids), (t, ids.value_counts().head())
    assert table["confidence"].between(0, 1).all()
    assert np.isfinite(table["margin"]).all()
    assert set(table["source"]) == {"grounded"}
    assert not table["disagrees"].any()


def test_cell_disagreeing_with_its_cluster_is_flagged():
    adata = hand_made()
    X = adata.X.toarray()
    b_cols = [adata.var_names.get_loc(g) for g in MARKERS["B"]]
    t_cols = [adata.var_names.get_loc(g) for g in MARKERS["T"]]
    X[0, t_cols] = 0  # cell 0 sits in the T cluster but expresses B-cell markers only
    X[0, b_cols] = 10
    adata.X = sparse.csr_matrix(X)
    table = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=50, prior_weight=0.2,
                              progress=False).table
    cl = ontology.get()
    assert cl.is_a(str(table["cl_id"].iloc[0]), BROAD["B"]) or str(table["cl_id"].iloc[0]) == BROAD["B"]
    assert bool(table["disagrees"].iloc[0])
    assert table["disagrees"].mean() < 0.1  # sibling subtypes of the same lineage may disagree too


def test_without_clusters_types_come_from_pseudo_clusters():
    adata = hand_made()
    table = cells.label_cells(adata, None, tissue="blood", progress=False).table
    cl = ontology.get()
    truth = adata.obs["cluster"].astype(str)
    right = [cl.is_a(str(i), BROAD[t]) or str(i) == BROAD[t] for i, t in zip(table["cl_id"], truth, strict=True)]
    assert np.mean(right) > 0.9
    assert (table["cluster_label"].astype(str) == "").all()


def test_tl_writes_documented_obs_and_uns():
    adata = hand_made()
    assert cs.tl.annotate_cells(adata, "cluster", tissue="blood", progress=False) is None
    for col in ("label", "cl_id", "confidence", "margin", "score", "second_label", "cluster_label", "disagrees",
                "source"):
        assert f"cellscribe_cells_{col}" in adata.obs
    assert adata.uns["cellscribe_cells"]["stats"]["cells"] == adata.n_obs
    assert "cl_id" in adata.uns["cellscribe_cells"]["types"]


def test_file_on_disk_is_labelled_lazily_and_obs_written_back(tmp_path):
    adata = hand_made()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    in_memory = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=40, progress=False).table
    from_file = cells.label_cells(path, "cluster", tissue="blood", chunk_size=40, progress=False).table
    pd.testing.assert_series_equal(in_memory["cl_id"], from_file["cl_id"])
    cells.write_results(from_file, path, how="obs")
    back = ad.read_h5ad(path)
    assert (back.obs["cellscribe_cells_cl_id"].astype(str) == from_file["cl_id"].astype(str)).all()
    assert (back.X != adata.X).nnz == 0
    csv = cells.write_results(from_file, path, how="csv")
    assert pd.read_csv(csv, index_col=0).shape[0] == adata.n_obs


def test_zarr_store_reads_lazily(tmp_path):
    adata = hand_made()
    path = tmp_path / "cells.zarr"
    adata.write_zarr(path)
    table = cells.label_cells(path, "cluster", tissue="blood", chunk_size=40, progress=False).table
    expected = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=40, progress=False).table
    assert (table["cl_id"].astype(str) == expected["cl_id"].astype(str)).all()


def test_resume_after_interrupt_skips_finished_chunks(tmp_path):
    adata = hand_made()
    full = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=20, scheduler="synchronous",
                             progress=False).table
    done: list[int] = []

    def interrupt(i: int) -> None:
        done.append(i)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cells.label_cells(adata, "cluster", tissue="blood", chunk_size=20, scheduler="synchronous",
                          store=tmp_path, on_chunk=interrupt, progress=False)
    second: list[int] = []
    result = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=20, scheduler="synchronous",
                               store=tmp_path, on_chunk=second.append, progress=False)
    assert result.stats["chunks_resumed"] == 3
    assert not set(second) & set(done)
    assert sorted(second + done) == list(range(result.stats["chunks"]))
    pd.testing.assert_frame_equal(result.table, full)


def test_distributed_local_cluster_gives_identical_labels():
    distributed = pytest.importorskip("distributed")
    adata = hand_made(n_per_type=100, seed=3)
    threaded = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=37, progress=False).table
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = cells.label_cells(adata, "cluster", tissue="blood", chunk_size=37, client=client,
                                   progress=False).table
    pd.testing.assert_frame_equal(threaded, remote)


def test_reference_transfer_recovers_types():
    adata = hand_made(seed=1)
    reference = hand_made(seed=2)
    out = cells.transfer_labels(adata, reference, "cluster", chunk_size=50, progress=False)
    assert (out["label"].astype(str) == adata.obs["cluster"].astype(str)).mean() > 0.95
    assert set(out["source"]) == {"reference"}


def test_bad_input_errors_are_clear(tmp_path):
    adata = hand_made()
    with pytest.raises(InputError, match="no column 'leiden'"):
        cells.label_cells(adata, "leiden", progress=False)
    with pytest.raises(InputError, match="no cells"):
        cells.label_cells(adata[:0].copy(), "cluster", progress=False)
    with pytest.raises(InputError, match="Unknown species 'fish'"):
        cells.label_cells(adata, "cluster", species="fish", progress=False)
    with pytest.raises(InputError, match="No such file"):
        cells.label_cells(tmp_path / "missing.h5ad", progress=False)
    with pytest.raises(InputError, match="Unknown scheduler"):
        cells.label_cells(adata, "cluster", scheduler="gpu", progress=False)
    scaled = adata.copy()
    scaled.X = sparse.csr_matrix(adata.X.toarray() - 3)
    with pytest.raises(InputError, match="negative values"):
        cells.label_cells(scaled, "cluster", progress=False)
    with pytest.raises(InputError, match="reasoner budget"):
        cs.tl.annotate_cells(adata, "cluster", reasoner_budget=-1, progress=False)


def test_cli_labels_a_file(tmp_path):
    from typer.testing import CliRunner

    from cellscribe.cli import app

    adata = hand_made()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    result = CliRunner().invoke(app, ["cells", str(path), "--groupby", "cluster", "--tissue", "blood",
                                      "--chunk-size", "50", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(f"{path}.cellscribe_cells.csv", index_col=0)
    assert len(table) == adata.n_obs and table["cellscribe_cells_source"].eq("grounded").all()
    assert (tmp_path / "cells.h5ad.cellscribe-chunks").is_dir()


def t_cluster_with_subtypes(n: int = 40, seed: int = 1) -> tuple[ad.AnnData, np.ndarray, np.ndarray]:
    """The hand-made data plus T-cell genes for subtypes: in the T cluster a quarter of the cells express
    CD8A/CD8B, a quarter CD4/IL7R/CD40LG, the rest the shared T markers and KLRB1 (so that a type
    recorded with CD8 genes and KLRB1, as mucosal-associated invariant T cells are, is not a CD8 cell's best)."""
    base = hand_made()
    rng = np.random.default_rng(seed)
    extra = ["CD8A", "CD8B", "CD4", "CD40LG", "KLRB1"]
    X = np.hstack([base.X.toarray(), np.zeros((base.n_obs, len(extra)), dtype=np.float32)])
    genes = list(base.var_names) + extra
    t_rows = np.flatnonzero(base.obs["cluster"].to_numpy() == "T")[:n]
    cd8, cd4 = t_rows[: n // 4], t_rows[n // 4: n // 2]
    il7r = genes.index("IL7R")
    X[:, il7r] = 0
    X[np.ix_(cd8, [genes.index("CD8A"), genes.index("CD8B")])] = rng.poisson(10.0, (len(cd8), 2))
    X[np.ix_(cd4, [genes.index("CD4"), genes.index("CD40LG"), il7r])] = rng.poisson(10.0, (len(cd4), 3))
    X[t_rows[n // 2:], genes.index("KLRB1")] = rng.poisson(10.0, len(t_rows) - n // 2)
    adata = ad.AnnData(sparse.csr_matrix(X), obs=base.obs.copy(), var=pd.DataFrame(index=genes))
    return adata, cd8, cd4


def test_cells_in_a_t_cluster_get_cd8_and_cd4_subtypes():
    adata, cd8, cd4 = t_cluster_with_subtypes()
    cl = ontology.get()
    refined = cells.label_cells(adata, "cluster", tissue="blood", progress=False, refine_margin=0.5).table
    flat = cells.label_cells(adata, "cluster", tissue="blood", progress=False, refine=False).table
    ids = refined["cl_id"].astype(str).to_numpy()
    cd8_ids, cd4_ids = ids[cd8], ids[cd4]
    shown = (refined["label"].iloc[cd8].value_counts().head(), refined["label"].iloc[cd4].value_counts().head())
    # CD8-positive / CD4-positive, alpha-beta T cell or their subtypes; never the other's (with this few genes,
    # some CD8 cells stop at a T-cell type recorded mostly with CD8 genes, e.g. exhausted T cell)
    assert np.mean([cl.is_a(i, "CL:0000625") for i in cd8_ids]) >= 0.5, shown
    assert np.mean([cl.is_a(i, "CL:0000624") for i in cd4_ids]) >= 0.9, shown
    assert not any(cl.is_a(i, "CL:0000624") for i in cd8_ids), shown
    assert not any(cl.is_a(i, "CL:0000625") for i in cd4_ids), shown
    # without the refinement every T cell has one type, so at most one of the two subsets can be right
    flat_ids = flat["cl_id"].astype(str).to_numpy()
    assert len(set(flat_ids[cd8]) | set(flat_ids[cd4])) == 1
    # other lineages keep types of their own lineage, and the refined types are never flagged
    b = adata.obs["cluster"].to_numpy() == "B"
    assert all(cl.is_a(i, "CL:0000236") for i in ids[b])
    assert not refined["disagrees"].iloc[np.concatenate([cd8, cd4])].any()


@pytest.mark.slow
def test_confidence_is_calibrated_to_mean_agreement_on_pbmc68k_reduced():
    """The shipped CALIBRATION maps the softmax probability to the confidence, and on pbmc68k_reduced's
    held-out half (bench_cells.py's split) the mean confidence is within 0.15 of the mean GPTCelltype
    agreement it estimates (the uncalibrated probability: 0.09 against 0.66)."""
    d = datasets.REGISTRY["pbmc68k_reduced"]
    adata = d.load()
    held_out = train_test_split(np.arange(adata.n_obs), test_size=0.5, random_state=0)[1]
    table = cells.label_cells(adata, "louvain", tissue=d.tissue, species=d.species, progress=False).table
    raw = cells.label_cells(adata, "louvain", tissue=d.tissue, species=d.species, calibration=None,
                            progress=False).table
    np.testing.assert_allclose(table["confidence"], cells.calibrate(raw["confidence"], cells.CALIBRATION), rtol=1e-5)
    table = table.iloc[held_out]
    agreement = cell_accuracy(table["label"].astype(str), adata.obs[d.truth_readable].iloc[held_out].astype(str))
    assert abs(table["confidence"].mean() - agreement.mean_agreement) < 0.15, (table["confidence"].mean(), agreement)


def test_refinement_margins_reach_label_cells_from_tl_and_cli(tmp_path):
    from typer.testing import CliRunner

    from cellscribe.cli import app

    adata, cd8, cd4 = t_cluster_with_subtypes()
    expected = cells.label_cells(adata, "cluster", tissue="blood", refine_margin=0.5, up_margin=float("inf"),
                                 progress=False).table
    tl = cs.tl.annotate_cells(adata, "cluster", tissue="blood", refine_margin=0.5, up_margin=float("inf"),
                              progress=False, copy=True)
    assert tl.uns["cellscribe_cells"]["params"]["refine_margin"] == 0.5
    assert (tl.obs["cellscribe_cells_cl_id"].astype(str) == expected["cl_id"].astype(str)).all()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    base = ["cells", str(path), "--groupby", "cluster", "--tissue", "blood", "--no-progress", "--no-resume"]
    runner = CliRunner()
    default = runner.invoke(app, [*base, "--write", "none"])
    assert default.exit_code == 0, default.output
    params = json.loads(default.stdout)["params"]
    assert (params["refine"], params["refine_margin"], params["up_margin"]) == (True, cells.REFINE_MARGIN,
                                                                                 cells.UP_MARGIN)
    tuned = runner.invoke(app, [*base, "--refine-margin", "0.5", "--up-margin", "inf"])
    assert tuned.exit_code == 0, tuned.output
    assert json.loads(tuned.stdout)["params"]["up_margin"] == float("inf")
    written = pd.read_csv(f"{path}.cellscribe_cells.csv", index_col=0)
    assert (written["cellscribe_cells_cl_id"] == expected["cl_id"].astype(str)).all()
    default_table = cells.label_cells(adata, "cluster", tissue="blood", progress=False).table
    assert (expected["cl_id"].astype(str) != default_table["cl_id"].astype(str)).iloc[cd8].any()  # the option matters
    flat = runner.invoke(app, [*base, "--write", "none", "--no-refine"])
    assert flat.exit_code == 0 and json.loads(flat.stdout)["params"]["refine"] is False


@pytest.mark.slow
def test_cells_of_malignant_clusters_are_labelled_from_copy_number(tmp_path):
    """The bundled oligodendroglioma per cell: the four tumours' cells are ``malignant cell`` (source
    ``copy number``, from the first pass's cluster means), microglia and oligodendrocytes keep their
    grounded labels; ``copy_number=False`` turns it off."""
    adata = datasets.oligodendroglioma()
    cs.tl.annotate_cells(adata, "cell_type", tissue="brain", progress=False)
    tumour = adata.obs["cell_type"].astype(str).str.startswith("malignant").to_numpy()
    labels = adata.obs["cellscribe_cells_label"].astype(str).to_numpy()
    assert (labels[tumour] == "malignant cell").all() and not (labels[~tumour] == "malignant cell").any()
    assert (adata.obs["cellscribe_cells_source"].astype(str).to_numpy()[tumour] == "copy number").all()
    assert sorted(adata.uns["cellscribe_cells"]["malignant_clusters"]) == sorted(
        set(adata.obs["cell_type"].astype(str)[tumour]))
    off = cells.label_cells(adata, "cell_type", tissue="brain", copy_number=False, progress=False)
    assert "malignant cell" not in set(off.table["label"].astype(str)) and off.copy_number is None
    from typer.testing import CliRunner

    from cellscribe.cli import app

    path = tmp_path / "oligodendroglioma.h5ad"
    datasets.oligodendroglioma().write_h5ad(path)
    base = ["cells", str(path), "-g", "cell_type", "--tissue", "brain", "--write", "none", "--no-resume",
            "--no-progress"]
    on, off = (CliRunner().invoke(app, [*base, *extra]) for extra in ([], ["--no-copy-number"]))
    assert on.exit_code == 0 and off.exit_code == 0, (on.output, off.output)
    assert len(json.loads(on.stdout)["malignant_clusters"]) == 4
    assert json.loads(off.stdout)["malignant_clusters"] == []
