"""``cellscribe.pl.embedding_umaps``: UMAPs of several cell embeddings side by side, coloured by label."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


def embedding_umaps(
    adata: AnnData,
    bases: Sequence[str] = ("X_genept_init", "X_genept", "X_screader"),
    color: str = "cell_type",
    *,
    titles: Sequence[str] | None = None,
    path: str | Path | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
) -> Figure:
    """One UMAP per embedding in ``adata.obsm`` (the seed's Fig. 5/6: initial, GenePT, SCREADER).

    Parameters
    ----------
    adata
        Cells with the embeddings written by :func:`cellscribe.tl.genept` (``X_genept_init``,
        ``X_genept``) and :func:`cellscribe.tl.screader` (``X_screader``), or any others.
    bases
        Keys of ``adata.obsm``; missing keys raise an error naming the tool that writes them.
    color
        Column of ``adata.obs`` with the labels to colour by.
    titles
        Panel titles (default: the keys).
    path
        Save the figure here (PNG at 150 dpi) as well.
    seed, n_neighbors
        UMAP settings (umap-learn).

    Returns
    -------
    The matplotlib figure; the 2-D coordinates are stored in ``adata.obsm[f"{basis}_umap"]``.
    """
    # matplotlib is imported when a plot is drawn: it is slow to import, and the Agg backend must be
    # chosen before pyplot loads (without taking over a backend the user already chose)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import umap  # optional heavy dependency (the ml extra)

    missing = [b for b in bases if b not in adata.obsm]
    if missing:
        raise InputError(f"adata.obsm has no {', '.join(missing)}: run cellscribe.tl.genept / cellscribe.tl.screader "
                         "first (they write X_genept_init, X_genept, X_screader).")
    if color not in adata.obs:
        raise InputError(f"adata.obs has no {color!r} to colour by.")
    labels = adata.obs[color].astype(str).to_numpy()
    cats = sorted(set(labels))
    cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
    colours = {c: cmap(i % cmap.N) for i, c in enumerate(cats)}
    fig, axes = plt.subplots(1, len(bases), figsize=(4.6 * len(bases) + 2.2, 4.6), squeeze=False)
    for ax, basis, title in zip(axes[0], bases, titles or bases, strict=False):
        coords = umap.UMAP(n_neighbors=min(n_neighbors, adata.n_obs - 1), random_state=seed).fit_transform(
            np.asarray(adata.obsm[basis], dtype=np.float32))
        adata.obsm[f"{basis}_umap"] = coords
        for c in cats:
            sel = labels == c
            ax.scatter(coords[sel, 0], coords[sel, 1], s=6, color=colours[c], label=c, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, markerscale=2.5, frameon=False)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig
