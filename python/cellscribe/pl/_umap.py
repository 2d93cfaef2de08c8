"""``cellscribe.pl.umap``: the embedding coloured by cellscribe's labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


def umap(
    adata: AnnData,
    color: str = "cellscribe_label",
    *,
    path: str | Path | None = None,
    title: str | None = None,
    legend_loc: str = "right margin",
    basis: str = "X_umap",
) -> Figure:
    """Scatter of ``adata.obsm[basis]`` coloured by ``adata.obs[color]``.

    Parameters
    ----------
    adata
        Data with a 2-D embedding (``sc.tl.umap``) and the colour column.
    color
        Column of ``adata.obs`` (default: the labels written by :func:`cellscribe.tl.annotate`).
    path
        Save the figure here (PNG at 150 dpi) as well.
    title
        Plot title (default: the column name).
    legend_loc
        ``"right margin"`` or ``"on data"`` (labels drawn at cluster centres).
    basis
        Key of ``adata.obsm`` holding the embedding.

    Returns
    -------
    The matplotlib figure.
    """
    # matplotlib is imported when a plot is drawn: it is slow to import, and the Agg backend must be
    # chosen before pyplot loads (without taking over a backend the user already chose)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import scanpy as sc  # heavy (~1.3 s): the CLI imports cellscribe.pl for every command

    if basis not in adata.obsm:
        raise InputError(f"adata.obsm has no {basis!r}: run sc.pp.neighbors(adata) and sc.tl.umap(adata) first.")
    if color not in adata.obs:
        raise InputError(f"adata.obs has no {color!r}; run cellscribe.tl.annotate(adata, ...) first.")
    n_groups = adata.obs[color].nunique()
    fig, ax = plt.subplots(figsize=(7.5 + (0 if legend_loc == "on data" else 0.12 * max(0, 20 - n_groups) + 2.5), 6))
    sc.pl.embedding(adata, basis=basis, color=color, ax=ax, show=False, title=title or color,
                    legend_loc=legend_loc, legend_fontsize=9, legend_fontoutline=2, frameon=False)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig
