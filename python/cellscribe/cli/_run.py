"""``cellscribe run DATA``: the whole pipeline, from a count matrix to a labelled report."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .. import datasets, pipeline
from ..engine import DEFAULT_MODE
from ..llm import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S
from ..markers import DEFAULT_TOP_N
from ._annotate import Format, render
from ._app import app, err, warnings_shown
from ._options import (
    ApiKeyEnv,
    Backend,
    BaseUrl,
    Cache,
    Concurrency,
    CopyNumber,
    Explain,
    ExplainFrom,
    Host,
    Mode,
    Model,
    Species,
    Temperature,
    Timeout,
    Tissue,
    TopN,
    backend_options,
    explain_value,
    given,
)


class QC(str, Enum):
    fixed = "fixed"
    knee = "knee"
    smoothed_knee = "smoothed_knee"
    none = "none"


@app.command("run")
def run_command(
    data: str = typer.Argument(..., help="An .h5ad, 10x .h5, 10x matrix.mtx folder or .rds file; or a bundled "
                               f"dataset: {', '.join(datasets.REGISTRY)}."),
    tissue: Tissue = None,
    species: Species = "human",
    backend: Backend = "auto",
    model: Model = None,
    qc: Optional[QC] = typer.Option(None, help="QC strategy (default: fixed when the data holds raw counts, none "
                                    "when it is already processed). See qc.png to choose."),
    max_mito: Optional[float] = typer.Option(None, help="Also drop cells with more than this %% of mitochondrial "
                                             "counts."),
    resolution: float = typer.Option(1.0, help="Leiden resolution (higher: more clusters)."),
    n_top_genes: int = typer.Option(2000, help="Highly variable genes for the PCA."),
    top_n: TopN = DEFAULT_TOP_N,
    explain: Explain = True,
    explain_from: ExplainFrom = "model",
    mode: Mode = DEFAULT_MODE,
    copy_number: CopyNumber = True,
    truth: Optional[str] = typer.Option(None, help="obs column with expert labels, shown beside each cluster."),
    out: Path = typer.Option(Path("cellscribe_output"), "--out", "-o", help="Folder for the outputs."),
    seed: int = typer.Option(0, help="Seed of PCA, neighbours, Leiden, UMAP and sampling."),
    host: Host = None,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    concurrency: Concurrency = None,
    temperature: Temperature = None,
    cache: Cache = True,
) -> None:
    """Run QC, clustering, markers and annotation on DATA; write an annotated .h5ad, plots and a report.

    Outputs in --out: annotated.h5ad, report.html, report.md, annotations.csv, umap_labels.png,
    umap_clusters.png and (with raw counts) qc.png. Data without raw counts (log-normalised or scaled,
    e.g. pbmc68k_reduced) is clustered as it is, without QC; asking for --qc on it is an error.
    """
    with warnings_shown(own_only=True):  # cellscribe's own warnings (markers dropped, ...); library chatter stays out
        result = pipeline.run(data, tissue=tissue, species=species, qc=qc.value if qc else None, max_pct_mt=max_mito,
                              resolution=resolution, n_top_genes=n_top_genes, backend=backend, model=model,
                              explain=explain_value(explain, explain_from), top_n=top_n, mode=mode, truth=truth,
                              out=out, random_state=seed, copy_number=copy_number,
                              seed=seed, cache=cache, **given(concurrency=concurrency, temperature=temperature),
                              **backend_options(backend, host=host, base_url=base_url, api_key_env=api_key_env,
                                                timeout=timeout))
    adata = result.adata
    run_info = adata.uns["cellscribe_run"]
    qc_line = (f"QC skipped ({'no raw counts' if result.counts_source is None else '--qc none'})"
               if result.qc == "none" else
               f"QC {result.qc}: {adata.uns['cellscribe_qc']['n_cells_after']:,} of "
               f"{adata.uns['cellscribe_qc']['params']['n_cells']:,} cells kept")
    typer.echo(render(result.annotations.assign(cached=False, seconds=0.0), Format.table))
    err.print(f"{run_info['data']}: {qc_line}; {len(result.annotations)} clusters of {adata.n_obs:,} cells; "
              f"{result.seconds['total']:.0f} s (annotation {result.seconds['annotate']:.0f} s).",
              highlight=False, soft_wrap=True)
    err.print(f"Report: {result.files['report']} (and report.md); data: {result.files['h5ad']}; "
              f"table: {result.files['csv']}; plots: " + ", ".join(
                  str(result.files[k]) for k in ("umap_labels", "umap_clusters", "qc_plot") if k in result.files),
              highlight=False, soft_wrap=True)
