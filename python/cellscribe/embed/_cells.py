"""Cell representations from gene embeddings.

* Ranked genes (SCREADER, as in the seed): for each cell, genes sorted by expression
  (optionally over each gene's median non-zero expression, Geneformer's normalisation), the top
  ``k`` kept (2048 in the paper; fewer on a CPU). Gene ``i`` of a cell becomes
  ``p_i = (e_gene * expression) ⊕ PE(i)``: its embedding scaled by its expression, concatenated
  with a sinusoidal encoding of its rank. Cells with fewer than ``k`` expressed genes are padded
  and the padding is masked. :class:`RankedCells` holds the indices and values; the vectors are
  gathered inside the model, batch by batch, so memory stays ``cells x k`` instead of
  ``cells x k x dim``.
* Weighted mean (GenePT-w): the expression-weighted average of the gene embeddings, L2-normalised.
  It is also the "initial" cell embedding the UMAPs start from.

Expression must be log-normalised (scanpy's ``.raw`` of processed data, or ``.X`` after
``normalize_total`` + ``log1p``); raw counts are normalised here (to 10,000 per cell, ``log1p``);
scaled data (negative values) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ..errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData


@dataclass
class RankedCells:
    """Top-``k`` genes of each cell.

    Attributes
    ----------
    index
        ``(n_cells, k)`` int64 column indices into the gene list, highest expression first.
    value
        ``(n_cells, k)`` float32 expression of those genes (0 where padded).
    mask
        ``(n_cells, k)`` bool, ``False`` where a cell had fewer than ``k`` expressed genes.
    """

    index: np.ndarray
    value: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return self.index.shape[0]

    def subset(self, rows: np.ndarray) -> RankedCells:
        return RankedCells(self.index[rows], self.value[rows], self.mask[rows])


def expression(adata: AnnData, *, use_raw: bool | None = None, layer: str | None = None
               ) -> tuple[sparse.csr_matrix, list[str]]:
    """Log-normalised expression (cells x genes, CSR float32) and its gene names.

    ``use_raw=None`` takes ``.raw`` when present (scanpy keeps the log-normalised matrix there),
    else ``layer`` or ``.X``. Integer counts are normalised to 10,000 per cell and ``log1p``-ed.
    """
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"The AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    if use_raw is None:
        use_raw = adata.raw is not None and layer is None
    if use_raw:
        if adata.raw is None:
            raise InputError("use_raw=True but adata.raw is empty; pass use_raw=False or a layer.")
        X, names = adata.raw.X, list(adata.raw.var_names)
    elif layer is not None:
        if layer not in adata.layers:
            raise InputError(f"adata.layers has no {layer!r}; layers: {', '.join(adata.layers) or 'none'}.")
        X, names = adata.layers[layer], list(adata.var_names)
    else:
        X, names = adata.X, list(adata.var_names)
    X = sparse.csr_matrix(X, dtype=np.float32, copy=True)
    X.eliminate_zeros()
    if X.nnz and X.data.min() < 0:
        raise InputError("The expression matrix has negative values (scaled data?). Give log-normalised "
                         "expression or counts: set use_raw=True or layer='counts'.")
    if X.nnz and np.all(np.mod(X.data[: 100_000], 1) == 0):
        totals = np.asarray(X.sum(axis=1)).ravel()
        totals[totals == 0] = 1
        X = sparse.diags((1e4 / totals).astype(np.float32)) @ X
        X.data = np.log1p(X.data)
    return X.tocsr(), names


def check_cells(X: sparse.csr_matrix, obs_names: list[str] | None = None) -> None:
    """Refuse cells without any expressed gene (they have no representation)."""
    n_expr = np.diff(X.indptr)
    empty = np.flatnonzero(n_expr == 0)
    if len(empty):
        names = [obs_names[i] for i in empty[:5]] if obs_names is not None else [str(i) for i in empty[:5]]
        raise InputError(f"{len(empty)} cell(s) express no gene (e.g. {', '.join(names)}); filter them out first "
                         "(sc.pp.filter_cells(adata, min_genes=1)).")


def gene_medians(X: sparse.csr_matrix) -> np.ndarray:
    """Median of each gene's non-zero expression over the cells of ``X`` (1 for genes never expressed)."""
    csc = sparse.csc_matrix(X)
    out = np.ones(csc.shape[1], dtype=np.float32)
    for j in range(csc.shape[1]):
        vals = csc.data[csc.indptr[j]:csc.indptr[j + 1]]
        vals = vals[vals > 0]
        if len(vals):
            out[j] = np.median(vals)
    return out


def rank_genes(X: sparse.csr_matrix, k: int, scale: np.ndarray | None = None) -> RankedCells:
    """Top-``k`` expressed genes of each cell, highest first (ties by gene order).

    With ``scale`` (one positive number per gene, e.g. :func:`gene_medians` of the training
    cells), genes are ranked by ``expression / scale`` (Geneformer's normalisation): genes high
    everywhere (ribosomal, ``MALAT1``) make way for genes unusually high in this cell, but rarely
    expressed genes are favoured too. ``value`` is still the expression.
    """
    if k < 1:
        raise InputError(f"k (genes per cell) must be at least 1; got {k}.")
    check_cells(X)
    n = X.shape[0]
    index = np.zeros((n, k), dtype=np.int64)
    value = np.zeros((n, k), dtype=np.float32)
    mask = np.zeros((n, k), dtype=bool)
    for i in range(n):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        cols, vals = X.indices[lo:hi], X.data[lo:hi]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -(vals if scale is None else vals / scale[cols])))[:k]
        m = len(order)
        index[i, :m], value[i, :m], mask[i, :m] = cols[order], vals[order], True
    return RankedCells(index, value, mask)


def positional_encoding(k: int, dim: int) -> np.ndarray:
    """Sinusoidal encoding of ranks ``0..k-1`` (Vaswani et al.), ``(k, dim)`` float32."""
    if dim <= 0:
        return np.zeros((k, 0), dtype=np.float32)
    pos = np.arange(k, dtype=np.float64)[:, None]
    freq = np.exp(-math.log(10000.0) * (np.arange(0, dim, 2, dtype=np.float64) / dim))
    pe = np.zeros((k, dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq[: dim // 2])
    return pe.astype(np.float32)


def weighted_mean(X: sparse.csr_matrix, gene_matrix: np.ndarray) -> np.ndarray:
    """GenePT-w cell embeddings: expression-weighted mean of gene embeddings, L2-normalised."""
    check_cells(X)
    out = np.asarray(X @ gene_matrix, dtype=np.float32)
    out /= np.asarray(X.sum(axis=1), dtype=np.float32).reshape(-1, 1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)
