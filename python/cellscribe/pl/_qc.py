"""``cellscribe.pl.qc``: the QC diagnostics, so the user can choose a filtering strategy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ..errors import InputError
from ..pp import smoothed_knee

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: One colour per strategy, used on every panel.
COLORS = {"fixed": "#1b9e77", "knee": "#d95f02", "smoothed_knee": "#7570b3", "mito": "#e7298a"}
LABELS = {"fixed": "fixed", "knee": "knee", "smoothed_knee": "smoothed knee"}


def qc(
    adata: AnnData,
    *,
    key: str = "cellscribe_qc",
    max_pct_mt: float | None = None,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """Four panels: the barcode-rank curve with the three thresholds, and the distributions of
    genes per cell, counts per cell and mitochondrial percentage with their cut lines.

    Draw it after :func:`cellscribe.pp.qc_thresholds` and before filtering, so that the cells a
    strategy would remove are still there to see.

    Parameters
    ----------
    adata
        Data with ``adata.uns[key]`` and the QC metrics in ``obs`` (from ``qc_thresholds``).
    key
        Key of the QC results.
    max_pct_mt
        Draw this mitochondrial cut line too.
    path
        Save the figure here (PNG at 150 dpi) as well.
    title
        Figure title (default: cell and gene counts and the chosen strategy, when one was applied).

    Returns
    -------
    The matplotlib figure.
    """
    # matplotlib is imported when a plot is drawn: it is slow to import, and the Agg backend must be
    # chosen before pyplot loads (without taking over a backend the user already chose)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if key not in adata.uns or "thresholds" not in adata.uns[key]:
        raise InputError(f"adata.uns has no {key!r} QC results: run cellscribe.pp.qc_thresholds(adata) first.")
    qc_res = adata.uns[key]
    thr, params = qc_res["thresholds"], qc_res["params"]
    totals = adata.obs["total_counts"].to_numpy(dtype=float)

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    _rank_panel(axes[0, 0], totals, adata.obs[f"{key}_fixed"].to_numpy(dtype=bool), thr, params)
    _genes_panel(axes[0, 1], adata.obs["n_genes_by_counts"].to_numpy(dtype=float), thr)
    _counts_panel(axes[1, 0], totals, thr)
    _mito_panel(axes[1, 1], adata.obs["pct_counts_mt"].to_numpy(dtype=float), params, max_pct_mt)
    fig.suptitle(_title(qc_res) if title is None else title, fontsize=13)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def _rank_panel(ax: Axes, totals: np.ndarray, fixed_pass: np.ndarray, thr: dict, params: dict) -> None:
    """The barcode-rank curve, coloured by the fixed strategy, with the knee thresholds."""
    lower = float(params["lower"])
    order = np.argsort(-totals)
    ranks = np.arange(1, totals.size + 1)
    fixed_pass = fixed_pass[order]
    shown = totals[order] > 0
    ax.scatter(ranks[shown & fixed_pass], totals[order][shown & fixed_pass], s=6, color="0.35", lw=0,
               label="cells passing fixed", rasterized=True)
    ax.scatter(ranks[shown & ~fixed_pass], totals[order][shown & ~fixed_pass], s=10, color="#c0392b", lw=0,
               label=f"< {thr['fixed']['min_genes']} genes (fail fixed)", rasterized=True)
    smooth = smoothed_knee(totals, lower, n_points=int(params["n_points"]),
                           polynomial_degree=int(params["polynomial_degree"])) if params["counts"] else None
    if smooth is not None:
        ax.plot(10**smooth.curve_x, 10**smooth.curve_y, color=COLORS["smoothed_knee"], lw=1.2, alpha=0.8,
                label="smoothed curve")
    ax.axhline(lower, color="0.6", lw=0.8, ls=":")
    ax.text(0.99, lower, f"lower bound {lower:g} ", va="bottom", ha="right", fontsize=8, color="0.4",
            transform=ax.get_yaxis_transform())
    ax.axvline(thr["fixed"]["n_cells_pass"], color=COLORS["fixed"], lw=1.5, ls="-.",
               label=f"fixed: {thr['fixed']['n_cells_pass']} cells")
    for name in ("knee", "smoothed_knee"):
        t = thr[name]
        if t["available"]:
            ax.axhline(t["min_counts"], color=COLORS[name], lw=1.5, ls="--",
                       label=f"{LABELS[name]}: >= {t['min_counts']:,.0f} counts, {t['n_cells_pass']} cells")
            ax.plot([t["rank"]], [t["min_counts"]], "o", color=COLORS[name], ms=7, mec="white")
        else:
            ax.plot([], [], color=COLORS[name], ls="--", label=f"{LABELS[name]}: n/a ({t['note']})")
    ax.set(xscale="log", yscale="log", xlabel="barcode rank (cells by total counts)", ylabel="total counts",
           title="Barcode-rank curve and the three thresholds")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)


def _genes_panel(ax: Axes, n_genes: np.ndarray, thr: dict) -> None:
    """Genes per cell, with the fixed cut line."""
    _hist(ax, n_genes, log=True)
    ax.axvline(thr["fixed"]["min_genes"], color=COLORS["fixed"], lw=2, ls="-.",
               label=f"fixed: >= {thr['fixed']['min_genes']} genes")
    ax.set(xlabel="genes detected per cell", ylabel="cells", title="Genes per cell")
    ax.legend(fontsize=8)


def _counts_panel(ax: Axes, totals: np.ndarray, thr: dict) -> None:
    """Counts per cell, with the knee cut lines that are available."""
    _hist(ax, totals, log=True)
    for name in ("knee", "smoothed_knee"):
        if thr[name]["available"]:
            ax.axvline(thr[name]["min_counts"], color=COLORS[name], lw=2, ls="--",
                       label=f"{LABELS[name]}: >= {thr[name]['min_counts']:,.0f}")
    ax.set(xlabel="total counts per cell", ylabel="cells", title="Counts per cell")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _mito_panel(ax: Axes, pct_mt: np.ndarray, params: dict, max_pct_mt: float | None) -> None:
    """The mitochondrial percentage, or a note when the data have no mitochondrial genes."""
    if int(params["n_mito_genes"]) == 0:
        ax.text(0.5, 0.5, f"no mitochondrial genes\n(prefixes {', '.join(params['mito_prefixes'])})",
                ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.4")
        ax.set(xticks=[], yticks=[])
    else:
        _hist(ax, pct_mt, log=False)
        if max_pct_mt is not None:
            ax.axvline(max_pct_mt, color=COLORS["mito"], lw=2, ls="--", label=f"<= {max_pct_mt:g}%")
            ax.legend(fontsize=8)
        ax.set(xlabel="% counts from mitochondrial genes", ylabel="cells")
    ax.set_title(f"Mitochondrial fraction ({params['n_mito_genes']} genes)")


def _title(qc_res: dict) -> str:
    """Cell and gene counts, and the strategy applied (when one was)."""
    params = qc_res["params"]
    title = f"QC: {params['n_cells']:,} cells x {params['n_genes']:,} genes"
    if "strategy" in qc_res:
        title += (f"; applied {LABELS[qc_res['strategy']]}: {qc_res['n_cells_after']:,} cells x "
                  f"{qc_res['n_genes_after']:,} genes kept")
    return title


def _hist(ax: Axes, values: np.ndarray, *, log: bool) -> None:
    values = values[np.isfinite(values)]
    if log:
        values = values[values > 0]
        if values.size == 0:
            return
        lo, hi = values.min(), values.max()
        bins = np.logspace(np.log10(lo), np.log10(hi if hi > lo else lo * 10), 50)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        lo, hi = (values.min(), values.max()) if values.size else (0.0, 1.0)
        bins = np.linspace(lo, hi, 51) if hi > lo else np.linspace(lo - 0.5, lo + 0.5, 11)
    ax.hist(values, bins=bins, color="0.55", edgecolor="white", linewidth=0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
