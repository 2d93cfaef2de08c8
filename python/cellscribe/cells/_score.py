"""What is computed on one chunk of cells: pseudo-bulk statistics (first pass) and type scores (second).

Both functions take one block of cells as a Dask task would hand it (SciPy sparse or NumPy), so the
same code runs in the driver's threads and on ``dask.distributed`` workers; their arguments are
plain arrays and a small :class:`Scorer`, cheap to send.

The score of type *t* for a cell is the weighted mean of its markers' z-scores,
``sum_g w_gt (x_g - mean_g) / sd_g``: ``mean_g`` and ``sd_g`` come from the first pass (the
background correction: a gene counts only as far as it is above its own typical level), and the
product is computed as one sparse product for all types at once, ``X @ (W / sd) - (mean / sd) @ W``,
so the sparse block never becomes dense. With clusters, ``prior_weight * log(prior)`` of the cell's
cluster is added (the cluster's grounded candidates). The chosen type's softmax probability at
``temperature`` is mapped by :func:`calibrate` to the confidence; margin is the gap between the chosen
and the best other score.

With clusters and a refined panel (:func:`cellscribe.cells.label_cells`, ``refine=True``), a cell
whose best type (with the prior) stays in its cluster label's broad lineage gets a type along the
Cell Ontology instead, from its scores *relative to its cluster's mean* (``center``: the lineage's
shared markers cancel, the subtype markers that vary inside the cluster remain): it starts at the
cluster's label; drops to the label's parent when its own score for the label is below its cluster's
mean by more than ``up_margin``; then descends to the best-scoring child while that child's
relative score exceeds ``refine_margin``. A cell whose best type lies in another lineage keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse

from ._source import log_normalize

#: Smallest gene standard deviation used in z-scores (rarely detected genes would otherwise dominate).
MIN_SD = 0.1


@dataclass(frozen=True)
class Scorer:
    """Everything a worker needs to score a chunk.

    Attributes
    ----------
    weights
        ``csr_matrix`` genes x types, the marker weights already divided by each gene's sd.
    offset
        ``(mean / sd) @ W``, one value per type.
    log_prior
        ``groups x types`` (already times the prior weight), or an empty array without groups.
    temperature
        Softmax temperature of the chosen type's probability.
    calibration
        ``(a, b)`` of :func:`calibrate`, or ``None``: the confidence is the softmax probability itself.
    normalize
        Whether blocks hold counts to normalise.
    center
        ``groups x types``: each group's mean score (the refinement's reference); empty: no refinement.
    label, parent
        Per group, its label's and the label's parent's type index (-1: none).
    children
        Per type, its children's type indices (the panel's ontology tree).
    lineage
        Per group, a boolean row over types: same broad lineage as the group's label (the
        refinement applies only while the prior-weighted best type is one of these).
    refine_margin, up_margin
        The refinement's margins (z-score units, see the module text).
    """

    weights: sparse.csr_matrix
    offset: np.ndarray
    log_prior: np.ndarray
    temperature: float
    normalize: bool
    calibration: tuple[float, float] | None = None
    center: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    parent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    children: tuple[tuple[int, ...], ...] = ()
    lineage: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    refine_margin: float = 0.0
    up_margin: float = 0.0


def make_scorer(weights: sparse.spmatrix, mean: np.ndarray, sd: np.ndarray, *, prior: np.ndarray | None,
                prior_weight: float, temperature: float, normalize: bool,
                calibration: tuple[float, float] | None = None) -> Scorer:
    """A :class:`Scorer` from marker weights (genes x types), gene means and sds, group priors and the
    confidence's temperature and calibration."""
    sd = np.maximum(np.asarray(sd, dtype=np.float64), MIN_SD)
    w = sparse.csr_matrix(sparse.diags(1.0 / sd) @ sparse.csr_matrix(weights, dtype=np.float64))
    offset = np.asarray(sparse.csr_matrix(weights, dtype=np.float64).T @ (np.asarray(mean) / sd)).ravel()
    log_prior = (prior_weight * np.log(prior)) if prior is not None and len(prior) else np.zeros((0, w.shape[1]))
    return Scorer(weights=w.astype(np.float32), offset=offset.astype(np.float32),
                  log_prior=log_prior.astype(np.float32), temperature=float(temperature), normalize=bool(normalize),
                  calibration=None if calibration is None else (float(calibration[0]), float(calibration[1])))


def calibrate(probability: np.ndarray, calibration: tuple[float, float] | None) -> np.ndarray:
    """The confidence of a softmax probability: ``sigmoid(a + b * logit(probability))`` for
    ``calibration = (a, b)`` (Platt scaling; increasing for ``b > 0``, so it keeps the cells' order);
    ``None``: the probability unchanged."""
    p = np.asarray(probability, dtype=np.float64)
    if calibration is None:
        return p
    a, b = calibration
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-(a + b * np.log(p / (1 - p)))))


def with_refinement(scorer: Scorer, group_means: np.ndarray, *, label: np.ndarray, parent: np.ndarray,
                    children: list[list[int]], lineage: np.ndarray, refine_margin: float, up_margin: float) -> Scorer:
    """``scorer`` with the ontology refinement (see the module text).

    Parameters
    ----------
    group_means
        ``groups x genes``: each group's mean log expression (first pass); the groups' mean scores
        (``center``) are computed from them.
    label, parent, children, lineage, refine_margin, up_margin
        As the :class:`Scorer` attributes of those names.
    """
    product = sparse.csr_matrix(group_means, dtype=np.float64) @ scorer.weights.astype(np.float64)
    center = np.asarray(product.toarray() if sparse.issparse(product) else product) - scorer.offset
    return replace(scorer, center=center.astype(np.float32), label=np.asarray(label, dtype=np.int64),
                   parent=np.asarray(parent, dtype=np.int64), children=tuple(tuple(c) for c in children),
                   lineage=np.asarray(lineage, dtype=bool), refine_margin=float(refine_margin),
                   up_margin=float(up_margin))


def chunk_stats(block: Any, codes: np.ndarray, n_groups: int, normalize: bool) -> dict[str, np.ndarray]:
    """First pass on one chunk: per gene the sum and sum of squares of log expression; per group
    (``codes``: each cell's group, -1 for none) the sum, the number of expressing cells and the size."""
    m = log_normalize(block, normalize)
    out = {"n": np.asarray([m.shape[0]], dtype=np.int64),
           "sum": np.asarray(m.sum(axis=0), dtype=np.float64).ravel(),
           "sumsq": np.asarray(m.multiply(m).sum(axis=0), dtype=np.float64).ravel()}
    if n_groups:
        keep = codes >= 0
        onehot = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                                    (codes[keep], np.flatnonzero(keep))), shape=(n_groups, m.shape[0]))
        binary = m.copy()
        binary.data = np.ones_like(binary.data)
        out["group_sum"] = np.asarray((onehot @ m).todense(), dtype=np.float64)
        out["group_nnz"] = np.asarray((onehot @ binary).todense(), dtype=np.float64)
        out["group_n"] = np.bincount(codes[keep], minlength=n_groups).astype(np.int64)
    return out


def score_chunk(block: Any, codes: np.ndarray, scorer: Scorer) -> dict[str, np.ndarray]:
    """Second pass on one chunk: per cell the best type, the second, confidence and margin.

    Returns
    -------
    ``{"best", "second"}`` (type indices, ``int32``), ``{"confidence", "margin", "score"}`` (``float32``;
    ``score``: the best type's marker score without the prior).
    """
    m = log_normalize(block, scorer.normalize)
    product = m @ scorer.weights
    raw = np.asarray(product.toarray() if sparse.issparse(product) else product, dtype=np.float32) - scorer.offset
    total = raw.copy()
    if scorer.log_prior.size:
        keep = codes >= 0
        total[keep] += scorer.log_prior[codes[keep]]
    n_types = total.shape[1]
    if n_types == 1:
        best = np.zeros(len(total), dtype=np.int32)
        second = best.copy()
        margin = np.full(len(total), np.inf, dtype=np.float32)
        confidence = calibrate(np.ones(len(total)), scorer.calibration).astype(np.float32)
    else:
        order = np.argsort(-total, axis=1, kind="stable")[:, :2]
        best, second = order[:, 0].astype(np.int32), order[:, 1].astype(np.int32)
        rows = np.arange(len(total))
        if scorer.center.size:
            best = _refine(raw, codes, best, scorer)
            masked = total.copy()
            masked[rows, best] = -np.inf
            second = np.argmax(masked, axis=1).astype(np.int32)
        margin = (total[rows, best] - total[rows, second]).astype(np.float32)
        z = (total - total.max(axis=1)[:, None]) / scorer.temperature
        confidence = calibrate(np.exp(z[rows, best]) / np.exp(z).sum(axis=1), scorer.calibration).astype(np.float32)
    return {"best": best, "second": second, "confidence": confidence, "margin": margin,
            "score": raw[np.arange(len(raw)), best].astype(np.float32)}


def _refine(raw: np.ndarray, codes: np.ndarray, best: np.ndarray, scorer: Scorer) -> np.ndarray:
    """Per cell, the type reached along the ontology (module text); ``best`` where it does not apply."""
    out = best.copy()
    cells = np.flatnonzero(codes >= 0)
    cells = cells[(scorer.label[codes[cells]] >= 0) & scorer.lineage[codes[cells], best[cells]]]
    if not len(cells):
        return out
    g = codes[cells]
    rel = raw[cells] - scorer.center[g]
    rows = np.arange(len(cells))
    node = scorer.label[g].copy()
    up = (scorer.parent[g] >= 0) & (rel[rows, node] < -scorer.up_margin)
    skip = np.where(up, node, -1)
    node = np.where(up, scorer.parent[g], node)
    active = np.ones(len(cells), dtype=bool)
    for _ in range(len(scorer.children)):
        moved = False
        for u in np.unique(node[active]):
            kids = np.asarray(scorer.children[u], dtype=np.int64)
            at = np.flatnonzero(active & (node == u))
            if not len(kids):
                active[at] = False
                continue
            sub = rel[np.ix_(at, kids)]
            sub[skip[at][:, None] == kids[None, :]] = -np.inf
            pick = np.argmax(sub, axis=1)
            go = sub[np.arange(len(at)), pick] > scorer.refine_margin
            node[at[go]] = kids[pick[go]]
            active[at[~go]] = False
            moved = moved or bool(go.any())
        if not moved:
            break
    out[cells] = node.astype(np.int32)
    return out
