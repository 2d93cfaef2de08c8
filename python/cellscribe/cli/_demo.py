"""``cellscribe demo``: the main job end to end on scanpy's bundled PBMC data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app, err
from ._options import mode_option


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Folder for the report, CSV and plot."),
    backend: str = typer.Option("llamacpp", "--backend", "-b", help="Backend (default: the embedded model)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the backend."),
    mode: str = mode_option(),
) -> None:
    """Annotate pbmc68k_reduced's clusters and write a report (HTML and Markdown), a CSV and a UMAP."""
    import time

    import matplotlib.pyplot as plt

    from .. import datasets, get, pl, tl
    from ..progress import phase
    from ..report import write_report
    from ._annotate import Format, render

    start = time.perf_counter()
    with phase("loading pbmc68k_reduced and ranking marker genes"):
        adata = datasets.pbmc68k_reduced(groupby="louvain")
    tl.annotate(adata, groupby="louvain", tissue="PBMC", species="human", backend=backend, model=model,
                mode=mode)
    df = get.annotations(adata)
    expert = adata.obs.groupby("louvain", observed=True)["bulk_labels"].agg(lambda s: s.value_counts().index[0])
    df["expert_majority"] = df["cluster"].map(expert.astype(str))
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "annotations.csv"
    csv.write_text(render(df.assign(cached=False, seconds=0.0), Format.csv), encoding="utf-8")
    umap = out / "umap_labels.png"
    plt.close(pl.umap(adata, "cellscribe_label", path=umap, title="cellscribe labels (pbmc68k_reduced)"))
    images = [(umap, "UMAP of pbmc68k_reduced coloured by cellscribe's cluster labels")]
    for suffix in (".html", ".md"):
        write_report(df, out / f"report{suffix}", title="cellscribe demo: pbmc68k_reduced (PBMC)",
                     images=images, extra_columns=["expert_majority"])
    adata.write_h5ad(out / "pbmc68k_annotated.h5ad")
    typer.echo(render(df.assign(cached=False, seconds=0.0), Format.table))
    err.print(f"Done in {time.perf_counter() - start:.0f} s. Report: {out / 'report.html'} (and report.md), "
              f"table: {csv}, plot: {umap}")
