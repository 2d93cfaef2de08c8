"""``cellscribe demo``: the main job end to end on scanpy's bundled PBMC data."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .. import datasets, get, pl, tl
from ..engine import DEFAULT_MODE
from ..llm import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S
from ..progress import phase
from ..report import write_report
from ._annotate import Format, render
from ._app import app, err
from ._options import ApiKeyEnv, Backend, BaseUrl, Host, Mode, Model, Timeout, backend_options


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Folder for the report, CSV and plot."),
    backend: Backend = "llamacpp",
    model: Model = None,
    mode: Mode = DEFAULT_MODE,
    host: Host = None,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
) -> None:
    """Annotate pbmc68k_reduced's clusters and write a report (HTML and Markdown), a CSV and a UMAP."""
    import matplotlib.pyplot as plt  # pyplot starts a plotting backend: only when a demo runs

    start = time.perf_counter()
    with phase("loading pbmc68k_reduced and ranking marker genes"):
        adata = datasets.pbmc68k_reduced(groupby="louvain")
    tl.annotate(adata, groupby="louvain", tissue="PBMC", species="human", backend=backend, model=model,
                mode=mode, **backend_options(backend, host=host, base_url=base_url, api_key_env=api_key_env,
                                             timeout=timeout))
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
