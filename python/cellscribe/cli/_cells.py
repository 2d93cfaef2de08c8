"""``cellscribe cells DATA``: a grounded label for every cell of an .h5ad/.zarr on disk, out of core on Dask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cells import (
    CHUNK_SIZE,
    DEFAULT_KEY,
    REFINE_MARGIN,
    SCHEDULERS,
    UP_MARGIN,
    label_cells,
    transfer_labels,
    write_results,
)
from ..errors import InputError
from ..io import read
from ..tl import refine_with_reasoner
from ._app import app, err
from ._options import Backend, CopyNumber, Model, Species, Tissue

Scheduler = typer.Option("threads", "--scheduler", help=f"Local Dask scheduler: {', '.join(SCHEDULERS)}.")
Address = typer.Option(None, "--address", help="Address of a running dask.distributed scheduler "
                       "(e.g. tcp://127.0.0.1:8786); the work runs on its workers, which must see DATA's path.")
# the ontology refinement (cellscribe.cells.label_cells); defaults: cellscribe.cells.REFINE_MARGIN, UP_MARGIN
Refine = Annotated[bool, typer.Option("--refine/--no-refine", help="With --groupby: refine each cell's type along "
                                      "the Cell Ontology from its scores relative to its cluster's mean.")]
RefineMargin = Annotated[float, typer.Option("--refine-margin", help="A cell descends to a child type when the "
                                             "child's score exceeds its cluster's mean by more than this (z units; "
                                             "lower: more subtypes).")]
UpMargin = Annotated[float, typer.Option("--up-margin", help="A cell takes its cluster label's parent type when its "
                                         "score for the label is below its cluster's mean by more than this (z "
                                         "units; inf: never).")]

@app.command("cells")
def cells_command(
    data: Path = typer.Argument(..., help="Cells on disk: .h5ad or .zarr (read lazily, chunk by chunk)."),
    groupby: Optional[str] = typer.Option(None, "--groupby", "-g", help="Cluster column of obs (candidates and "
                                          "priors); default: pseudo-clusters of a sample propose the types."),
    tissue: Tissue = None,
    species: Species = "human",
    layer: Optional[str] = typer.Option(None, help="Read this layer instead of X."),
    use_raw: bool = typer.Option(False, "--use-raw", help="Read raw.X."),
    gene_symbols: Optional[str] = typer.Option(None, help="var column with gene symbols."),
    refine: Refine = True,
    refine_margin: RefineMargin = REFINE_MARGIN,
    up_margin: UpMargin = UP_MARGIN,
    copy_number: CopyNumber = True,
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Labelled reference (.h5ad): also "
                                             "transfer its labels (logistic regression)."),
    label_key: Optional[str] = typer.Option(None, "--label-key", "-l", help="Label column of the reference."),
    reasoner_budget: float = typer.Option(0.0, "--reasoner-budget", help="Least confident cells sent to the "
                                          "reasoner: a fraction (0.01) or a number of cells (200); 0: none."),
    backend: Backend = "auto",
    model: Model = None,
    scheduler: str = Scheduler,
    address: Optional[str] = Address,
    workers: Optional[int] = typer.Option(None, "--workers", help="Local threads or processes (default: cores)."),
    chunk_size: int = typer.Option(CHUNK_SIZE, "--chunk-size", help="Cells per chunk."),
    store: Optional[Path] = typer.Option(None, "--store", help="Folder of finished chunks (default: "
                                         "<DATA>.cellscribe-chunks); a rerun resumes from it."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Keep finished chunks on disk and reuse them."),
    write: str = typer.Option("csv", "--write", help="csv: a sidecar <DATA>.<key>.csv; obs: rewrite DATA's obs "
                              "(X untouched); none."),
    key: str = typer.Option(DEFAULT_KEY, "--key", help="Column prefix of the results."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """Label every cell of DATA with a grounded cell type (Cell Ontology ID, confidence, margin, cluster
    disagreement), out of core on Dask; optionally transfer a reference's labels and send the least
    certain cells to the reasoner. Prints a JSON summary."""
    if write not in ("csv", "obs", "none"):
        raise InputError(f"--write must be csv, obs or none; got {write!r}.")
    client = None
    if address is not None:
        from distributed import Client  # optional heavy dependency, only with --address

        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise InputError(f"No dask scheduler answers at {address} ({exc}). Start one (dask scheduler) or "
                             "drop --address.") from exc
    store_dir = (store or Path(f"{data}.cellscribe-chunks")) if resume else None
    try:
        result = label_cells(data, groupby, tissue=tissue, species=species, layer=layer, use_raw=use_raw or None,
                             gene_symbols=gene_symbols, chunk_size=chunk_size, client=client, scheduler=scheduler,
                             n_workers=workers, store=store_dir, refine=refine, refine_margin=refine_margin,
                             up_margin=up_margin, copy_number=copy_number, progress=progress)
        table = result.table
        stats = dict(result.stats)
        if reasoner_budget:
            if data.suffix != ".h5ad":
                raise InputError("--reasoner-budget reads the chosen cells from an .h5ad file; write the .zarr "
                                 "as .h5ad first.")
            import anndata

            backed = anndata.read_h5ad(data, backed="r")
            table, more = refine_with_reasoner(backed, table, result.panel, reasoner_budget, tissue=tissue,
                                               species=species, backend=backend, model=model, progress=progress)
            stats.update(more)
        if reference is not None:
            if label_key is None:
                raise InputError("--reference needs --label-key, the reference's label column.")
            transferred = transfer_labels(data, read(reference), label_key, layer=layer, use_raw=use_raw or None,
                                          gene_symbols=gene_symbols, chunk_size=chunk_size, client=client,
                                          scheduler=scheduler, n_workers=workers, progress=progress)
            table = table.assign(reference_label=transferred["label"].values,
                                 reference_confidence=transferred["confidence"].to_numpy())
            stats["reference"] = transferred.attrs["stats"]
    finally:
        if client is not None:
            client.close()
    written = None if write == "none" else write_results(table, data, key=key, how=write)  # type: ignore[arg-type]
    counts = table["label"].astype(str).value_counts().head(10).to_dict()
    summary = {"cells": stats["cells"], "written": str(written or ""), "params": result.params, "stats": stats,
               "top_labels": counts, "disagreeing_cells": int(table["disagrees"].sum()),
               "malignant_clusters": [] if result.copy_number is None else
               [str(c) for c in result.copy_number.index[result.copy_number["malignant"]]]}
    typer.echo(json.dumps(summary, indent=1, default=str))
    err.print(f"labelled {stats['cells']} cells at {stats['cells_per_second']} cells/s", highlight=False)
