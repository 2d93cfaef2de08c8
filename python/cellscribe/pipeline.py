"""The end-to-end pipeline of ``cellscribe run``: data in, labelled clusters, plots and a report out.

    read -> find raw counts -> QC (thresholds, plot, filter) -> normalise, HVG, PCA, neighbours,
    Leiden, UMAP, markers -> annotate each cluster -> UMAPs, report, annotated .h5ad

What happens to data without raw counts (documented choice): when ``qc`` is left at ``None``,
already-processed data (log-normalised or scaled ``.X``, no counts in ``layers["counts"]`` or
``.raw``; e.g. scanpy's ``pbmc68k_reduced``) is clustered as it is: QC is skipped and so is
normalisation, with a log message saying so. Asking for a QC strategy explicitly on such data is an
error that names what the file holds, because the thresholds would be meaningless: the knee
strategies need raw counts, and the fixed one needs a matrix where zero means "not detected".

>>> from cellscribe import pipeline
>>> result = pipeline.run("filtered_feature_bc_matrix.h5", tissue="PBMC", out="results/")
>>> result.adata.obs["cellscribe_label"]; result.files["report"]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import datasets, get, io, pl, pp, tl
from .engine import DEFAULT_MODE
from .errors import InputError
from .report import write_report
from .results import LIST_COLUMNS

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

QC_CHOICES = ("fixed", "knee", "smoothed_knee", "none")


@dataclass
class PipelineResult:
    """What :func:`run` returns.

    Attributes
    ----------
    adata
        The annotated data (clusters in ``obs["leiden"]``, labels in ``obs["cellscribe_label"]``, ...).
    annotations
        One row per cluster (:func:`cellscribe.get.annotations`) plus ``n_cells``.
    qc
        The QC strategy applied, or ``"none"``.
    counts_source
        Where the raw counts were found (``".X"``, ``'layers["counts"]'``, ``".raw"``) or ``None``.
    seconds
        Wall time per stage: ``read``, ``qc``, ``cluster``, ``annotate``, ``write``, ``total``.
    files
        Paths written, by kind (``h5ad``, ``report``, ``report_md``, ``csv``, ``umap_labels``,
        ``umap_clusters``, ``qc_plot``); empty when ``out`` was ``None``.
    """

    adata: AnnData
    annotations: pd.DataFrame
    qc: str
    counts_source: str | None
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def load(data: str | Path | AnnData) -> tuple[AnnData, str]:
    """The AnnData and a display name for a path, a dataset name of
    :data:`cellscribe.datasets.REGISTRY`, or an AnnData (used as is)."""
    if not isinstance(data, (str, Path)):
        io.check_not_empty(data)
        return data, "AnnData"
    path = Path(data)
    if not path.exists() and str(data) in datasets.REGISTRY:
        log.info("%s is not a file: loading the bundled dataset of that name", data)
        adata = datasets.load(str(data))
        io.check_not_empty(adata, str(data))
        return adata, str(data)
    if not path.exists():
        raise InputError(f"Data file not found: {path} (or give a bundled dataset: {', '.join(datasets.REGISTRY)}).")
    return io.read(path), path.name


def run(
    data: str | Path | AnnData,
    *,
    tissue: str | None = None,
    species: str = "human",
    qc: str | None = None,
    max_pct_mt: float | None = None,
    resolution: float = 1.0,
    n_top_genes: int = 2000,
    backend: str = "auto",
    model: str | None = None,
    explain: bool = True,
    top_n: int = 10,
    mode: str = DEFAULT_MODE,
    truth: str | None = None,
    out: str | Path | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    **annotate_kwargs: Any,
) -> PipelineResult:
    """Run the whole pipeline.

    Parameters
    ----------
    data
        A file (:func:`cellscribe.io.read`: ``.h5ad``, 10x ``.h5`` or mtx folder, ``.rds``), the name
        of a bundled dataset (``"pbmc68k_reduced"``, ``"wu2020"``, ``"oligodendroglioma"``), or an
        AnnData (modified in place).
    tissue, species
        Put in the prompt (``species`` also checks gene-symbol style).
    qc
        ``"fixed"``, ``"knee"``, ``"smoothed_knee"``, ``"none"``, or ``None``: ``"fixed"`` when the
        data holds raw counts, no QC when it is already processed (see the module docstring).
    max_pct_mt
        Also drop cells with more mitochondrial counts than this percentage (``None``: no filter).
    resolution, n_top_genes, random_state
        Passed to :func:`cellscribe.tl.cluster`.
    backend, model, explain, top_n
        Passed to :func:`cellscribe.tl.annotate` (``explain=False``: labels only, fast).
    mode
        ``"grounded"`` (default: marker databases propose Cell Ontology types, a learned re-ranker
        chooses, the model explains; mean agreement 0.60 on the GPTCelltype benchmark against 0.13
        for the 1.5B model alone), ``"llm"`` (the model names the type) or ``"agentic"``;
        see :func:`cellscribe.annotate`.
    truth
        Column of ``obs`` with expert labels: each cluster's majority expert label goes into the
        table and the report (``expert_majority``) for comparison.
    out
        Folder for the outputs (``annotated.h5ad``, ``report.html``, ``report.md``,
        ``annotations.csv``, ``umap_labels.png``, ``umap_clusters.png``, ``qc.png``); ``None``
        writes nothing.
    progress
        Show the annotation progress bar.
    **annotate_kwargs
        Further options of :func:`cellscribe.annotate` (``timeout``, ``host``, ``cache``, ...).

    Returns
    -------
    A :class:`PipelineResult`; ``adata.uns["cellscribe_run"]`` records the data, the QC choice,
    where the counts came from, and the seconds per stage up to annotation.
    """
    if qc is not None and qc not in QC_CHOICES:
        raise InputError(f"Unknown QC strategy {qc!r}; use one of {', '.join(QC_CHOICES)}.")
    if truth is not None and not isinstance(truth, str):
        raise InputError("truth must be the name of an obs column.")
    seconds: dict[str, float] = {}
    start = clock = time.perf_counter()
    adata, name = load(data)
    if truth is not None and truth not in adata.obs:
        raise InputError(f"{name} has no obs column {truth!r} (columns: {', '.join(map(str, adata.obs.columns))}).")
    out_dir = Path(out) if out is not None else None
    seconds["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    adata, strategy, counts_source = _choose_qc(adata, qc, name)
    qc_plot = _apply_qc(adata, strategy, name=name, max_pct_mt=max_pct_mt, out_dir=out_dir)
    seconds["qc"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tl.cluster(adata, resolution, n_top_genes=n_top_genes, random_state=random_state)
    seconds["cluster"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tl.annotate(adata, groupby="leiden", tissue=tissue, species=species, backend=backend, model=model,
                explain=explain, top_n=top_n, mode=mode, progress=progress, **annotate_kwargs)
    df = _cluster_table(adata, truth)
    seconds["annotate"] = time.perf_counter() - clock

    adata.uns["cellscribe_run"] = {
        "data": name, "qc": strategy, "counts_source": counts_source or "none",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    clock = time.perf_counter()
    files: dict[str, Path] = {}
    if out_dir is not None:
        files = _write(adata, df, out_dir, name=name, tissue=tissue, qc_plot=qc_plot, truth=truth)
    seconds["write"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - start
    return PipelineResult(adata=adata, annotations=df, qc=strategy, counts_source=counts_source,
                          seconds=seconds, files=files)


def _choose_qc(adata: AnnData, qc: str | None, name: str) -> tuple[AnnData, str, str | None]:
    """``(data with the raw counts in .X, the QC strategy, where the counts were)``: the strategy
    asked for, else ``fixed`` on raw counts and ``"none"`` on processed data (an explicit strategy
    on data without counts is an error, see the module docstring)."""
    found = io.find_counts(adata)
    if found is not None:
        log.info("raw counts found in %s", found[0])
        return found[1], qc or pp.DEFAULT_STRATEGY, found[0]
    kind = io.matrix_kind(adata.X)
    if qc is None or qc == "none":
        log.warning("%s has no raw counts (%s): QC skipped%s", name, io.describe_missing_counts(adata),
                    "; .X will be normalised per cell and log-transformed" if kind == "unnormalised"
                    else "; not normalised again, clustered as it is")
        return adata, "none", None
    if qc != "fixed" or kind == "scaled":
        raise InputError(
            f"QC strategy {qc!r} needs raw counts, but {name} has none: {io.describe_missing_counts(adata)}. "
            "Give the raw count matrix (e.g. Cell Ranger's filtered_feature_bc_matrix.h5, or an .h5ad with "
            "layers['counts']), or use --qc none to cluster the data as it is."
        )
    return adata, qc, None


def _apply_qc(adata: AnnData, strategy: str, *, name: str, max_pct_mt: float | None,
              out_dir: Path | None) -> Path | None:
    """Compute the QC thresholds, draw them (into ``out_dir/qc.png``) and filter with ``strategy``;
    the plot's path, or ``None``."""
    if strategy == "none":
        return None
    qc_plot = None
    pp.qc_thresholds(adata)
    if out_dir is not None:
        qc_plot = out_dir / "qc.png"
        thr = adata.uns["cellscribe_qc"]["thresholds"][strategy]
        _close(pl.qc(adata, max_pct_mt=max_pct_mt, path=qc_plot,
                     title=f"QC of {name}: {adata.n_obs:,} cells x {adata.n_vars:,} genes; "
                           f"{strategy.replace('_', ' ')} keeps {thr['n_cells_pass']:,} cells"))
    pp.filter_cells(adata, strategy, max_pct_mt=max_pct_mt)
    return qc_plot


def _cluster_table(adata: AnnData, truth: str | None) -> pd.DataFrame:
    """The annotations, one row per cluster, with ``n_cells`` and (with ``truth``) each cluster's
    majority expert label and its share."""
    df = get.annotations(adata)
    sizes = adata.obs["leiden"].value_counts()
    df.insert(1, "n_cells", df["cluster"].map(lambda c: int(sizes.get(c, 0))))
    if truth is not None:
        majority = adata.obs.groupby("leiden", observed=True)[truth].agg(
            lambda s: f"{s.value_counts().index[0]} ({s.value_counts().iloc[0] / len(s):.0%})")
        df["expert_majority"] = df["cluster"].map(majority.astype(str))
    return df


def _write(adata: AnnData, df: pd.DataFrame, out: Path, *, name: str, tissue: str | None, qc_plot: Path | None,
           truth: str | None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"umap_labels": out / "umap_labels.png", "umap_clusters": out / "umap_clusters.png"}
    _close(pl.umap(adata, "cellscribe_label", path=files["umap_labels"], title=f"cellscribe labels ({name})"))
    _close(pl.umap(adata, "leiden", path=files["umap_clusters"], legend_loc="on data",
                   title=f"Leiden clusters ({name})"))
    images = [(files["umap_labels"], f"UMAP of {name} coloured by cellscribe's cluster labels"),
              (files["umap_clusters"], "The same UMAP coloured by Leiden cluster (the card numbers)")]
    if qc_plot is not None:
        files["qc_plot"] = qc_plot
        images.append((qc_plot, "QC: the barcode-rank curve with the three thresholds, and the distributions"))
    extra = ["n_cells"] + (["expert_majority"] if truth else [])
    title = f"cellscribe: {name}" + (f" ({tissue})" if tissue else "")
    files["report"] = write_report(df, out / "report.html", title=title, images=images, extra_columns=extra)
    files["report_md"] = write_report(df, out / "report.md", title=title, images=images, extra_columns=extra)
    flat = df.copy()
    for col in sorted(LIST_COLUMNS):
        if col in flat:
            flat[col] = flat[col].map(
                lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
    files["csv"] = out / "annotations.csv"
    flat.to_csv(files["csv"], index=False)
    files["h5ad"] = out / "annotated.h5ad"
    adata.write_h5ad(files["h5ad"])
    return files


def _close(fig) -> None:
    import matplotlib.pyplot as plt  # imported after cellscribe.pl has chosen the Agg backend (see pl)

    plt.close(fig)
