"""Cell sentences: each cell's expressed genes, in the order of one global gene ranking.

The CellReasoner representation: rank the dataset's highly variable genes once (most variable
first), then write every cell as the genes it expresses, in that global order, up to ``n_genes``.
The ranking is stored with the result (``adata.uns[key]["ranking"]``) so later runs, the reference
cells of a few-shot prompt and a fine-tuned model all read genes in the same order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import matrix_kind

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Genes per cell sentence (CellReasoner uses up to 1000 on a GPU; 32 keeps CPU prompts short).
DEFAULT_N_GENES = 32
#: Genes kept in the global ranking.
DEFAULT_N_TOP_GENES = 2000


def _expression(adata: AnnData, use_raw: bool | None, layer: str | None) -> tuple[Any, pd.Index]:
    """The log-normalised matrix and its gene names (``.raw`` when present, unless told otherwise)."""
    if layer is not None and use_raw:
        raise InputError("Pass either layer= or use_raw=True, not both.")
    if layer is not None:
        if layer not in adata.layers:
            raise InputError(f"adata.layers has no {layer!r}; available: {', '.join(adata.layers) or 'none'}.")
        return adata.layers[layer], adata.var_names
    if use_raw is None:
        use_raw = adata.raw is not None
    if use_raw:
        if adata.raw is None:
            raise InputError("use_raw=True but adata.raw is empty; pass use_raw=False or a layer=.")
        return adata.raw.X, adata.raw.var_names
    return adata.X, adata.var_names


def _check_not_scaled(x: Any) -> None:
    if matrix_kind(x) == "scaled":
        raise InputError(
            "The expression matrix has negative values (scaled data), so 'expressed' is undefined. "
            "Use counts or log-normalised values: keep them in adata.raw (use_raw=True) or a layer (layer=...)."
        )


def gene_ranking(
    adata: AnnData,
    *,
    n_top_genes: int = DEFAULT_N_TOP_GENES,
    use_raw: bool | None = None,
    layer: str | None = None,
) -> list[str]:
    """A global ranking of highly variable genes, most variable first.

    Genes are ranked by scanpy's normalised dispersion (``sc.pp.highly_variable_genes``,
    ``flavor="seurat"``) on log-normalised expression; counts (or other unlogged values) are
    normalised and log-transformed on a copy first.

    Parameters
    ----------
    adata
        Cells × genes.
    n_top_genes
        Length of the ranking.
    use_raw, layer
        Where the log-normalised expression is (default: ``adata.raw`` when present, else ``X``).

    Returns
    -------
    Gene names, most variable first.
    """
    import anndata as ad
    import scanpy as sc

    x, genes = _expression(adata, use_raw, layer)
    _check_not_scaled(x)
    tmp = ad.AnnData(X=x.copy() if hasattr(x, "copy") else np.array(x), var=pd.DataFrame(index=genes.astype(str)))
    tmp.var_names_make_unique()
    if matrix_kind(tmp.X) in ("counts", "unnormalised"):
        log.info("gene_ranking: the matrix is not log-normalised; normalising a copy first")
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
    stats = sc.pp.highly_variable_genes(tmp, flavor="seurat", inplace=False)
    stats.index = tmp.var_names
    disp = stats["dispersions_norm"].astype(float).fillna(-np.inf)
    order = disp.sort_values(ascending=False, kind="stable").index
    return [str(g) for g in order[: min(n_top_genes, len(order))]]


def sentences_from_matrix(x: Any, genes: pd.Index, ranking: list[str], n_genes: int) -> list[list[str]]:
    """Each row's expressed genes (value > 0) in ranking order, at most ``n_genes``."""
    index = pd.Index(genes.astype(str))
    present = [g for g in ranking if g in index]
    if not present:
        raise InputError(
            "None of the ranked genes is in this data (different gene identifiers? the ranking uses "
            f"e.g. {', '.join(ranking[:3])}; the data has e.g. {', '.join(map(str, genes[:3]))})."
        )
    if len(present) < len(ranking) / 2:
        log.warning("only %d of %d ranked genes are in the data", len(present), len(ranking))
    cols = index.get_indexer(present)
    sub = x[:, cols]
    expressed = (sub > 0).toarray() if hasattr(sub, "toarray") else np.asarray(sub) > 0
    names = np.asarray(present, dtype=object)
    return [list(names[row][:n_genes]) for row in expressed]


def cell_sentences(
    adata: AnnData,
    *,
    n_genes: int = DEFAULT_N_GENES,
    ranking: list[str] | None = None,
    n_top_genes: int = DEFAULT_N_TOP_GENES,
    use_raw: bool | None = None,
    layer: str | None = None,
    key_added: str = "cell_sentence",
    copy: bool = False,
) -> AnnData | None:
    """Write each cell's sentence: its expressed genes in the global ranking's order.

    Parameters
    ----------
    adata
        Cells × genes with counts or log-normalised expression in ``.raw``, ``X`` or a layer
        (a cell expresses a gene where the value is above 0).
    n_genes
        Genes per sentence (the first ``n_genes`` expressed genes in ranking order).
    ranking
        The global gene order to use. Default: the ranking already saved in
        ``adata.uns[key_added]`` (so a rerun keeps its order), else :func:`gene_ranking`.
    n_top_genes, use_raw, layer
        See :func:`gene_ranking`; ``use_raw``/``layer`` also choose the matrix read here.
    key_added
        Where results go.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), with

    ``adata.obs[key_added]``
        The sentence: gene symbols separated by spaces.
    ``adata.uns[key_added]["ranking"]``
        The global ranking used (a list of genes, most variable first).
    ``adata.uns[key_added]["params"]``
        ``n_genes``, ``n_top_genes``, ``use_raw``, ``layer``.
    """
    adata = adata.copy() if copy else adata
    if n_genes < 1:
        raise InputError(f"n_genes must be at least 1; got {n_genes}.")
    if adata.n_obs == 0:
        raise InputError("The AnnData has no cells.")
    if ranking is None:
        saved = adata.uns.get(key_added, {})
        ranking = list(saved["ranking"]) if isinstance(saved, dict) and "ranking" in saved else None
    if ranking is None:
        ranking = gene_ranking(adata, n_top_genes=n_top_genes, use_raw=use_raw, layer=layer)
    ranking = [str(g) for g in ranking]
    if use_raw is None and layer is None:
        use_raw = adata.raw is not None
    x, genes = _expression(adata, use_raw, layer)
    _check_not_scaled(x)
    sentences = sentences_from_matrix(x, genes, ranking, n_genes)
    adata.obs[key_added] = [" ".join(s) for s in sentences]
    adata.uns[key_added] = {
        "ranking": ranking,
        "params": {"n_genes": n_genes, "n_top_genes": len(ranking), "use_raw": bool(use_raw), "layer": layer or ""},
    }
    return adata if copy else None
