"""``label_cells``: a grounded label for every cell, from an AnnData or a file, on Dask.

Two passes over the cells, both chunk by chunk (:func:`~._runner.run_chunks`):

1. statistics on a sample of evenly spaced chunks (at most ``stats_cells`` cells): per gene mean and
   sd of log expression; per cluster pseudo-bulk means and detection rates -> each cluster's marker
   genes -> its grounded candidates (:func:`cellscribe.grounded.candidates`) -> one panel of types
   with marker weights (:func:`~._signatures.build_panel`). Without clusters, the sample is clustered
   (k-means on PCA) into pseudo-clusters that only propose candidates.
2. every chunk scored against the panel (:func:`~._score.score_chunk`), saved to the chunk store
   when there is one. With clusters (and ``refine``), each cell's type is then refined along the Cell
   Ontology from its scores relative to its cluster's mean (the panel holds the cluster label's
   parent, children and siblings that have markers; see :mod:`~._score`).

With clusters of human cells, the first pass's pseudo-bulk means also go to the copy-number check
(:func:`cellscribe.copynumber.copy_number_of_clusters`): every cell of a cluster it calls malignant
is labelled ``malignant cell`` (``source`` ``"copy number"``), as :func:`cellscribe.tl.annotate`
labels the cluster.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .. import copynumber
from ..errors import InputError
from ..knowledge import ontology
from ..knowledge.labels import MALIGNANT_CELL
from ..knowledge.lineage import broad_type
from ._runner import ChunkStore, check_scheduler, run_chunks
from ._score import chunk_stats, make_scorer, score_chunk, with_refinement
from ._signatures import Panel, build_panel, check_species, group_markers
from ._source import CHUNK_SIZE, CellSource, Normalize, log_normalize, open_cells

if TYPE_CHECKING:
    from anndata import AnnData

#: Cells (at most) read by the first pass.
STATS_CELLS = 200_000
#: Cells (at most) clustered into pseudo-clusters when no cluster column is given.
PSEUDO_CELLS = 20_000
#: Softmax temperature of the chosen type's probability (the value of 0.25, 1, 2, 4, 8, 16 with the lowest Brier
#: score against exact agreement on pbmc68k_reduced, wu2020 and oligodendroglioma); :data:`CALIBRATION` maps it.
TEMPERATURE = 4.0
#: ``(a, b)``: confidence = ``sigmoid(a + b * logit(p))`` of the chosen type's softmax probability ``p`` at
#: :data:`TEMPERATURE` (:func:`~._score.calibrate`), so that confidence estimates the cell's GPTCelltype agreement
#: (1 / 0.5 / 0) as the grounded re-ranker's confidence does. Fitted (logistic loss) on the held-out halves of
#: pbmc68k_reduced, wu2020 and oligodendroglioma, the cells labelled from their scores (not those of clusters
#: called malignant by the copy-number check), with clusters and the default margins
#: (``benchmarks/bench_cells.py calibration``). Expected calibration error (10 bins) of each dataset held out of
#: the fit: 0.022 / 0.092 / 0.175 (uncalibrated: 0.574 / 0.548 / 0.580); the three folds' slopes agree
#: (0.39-0.57). Fitted while the tumour cells were still labelled from markers, the map was nearly flat.
CALIBRATION = (1.974, 0.492)
#: Weight of the cluster's log prior added to the marker scores.
PRIOR_WEIGHT = 4.0
#: A cell descends to a child type when the child's score exceeds the cluster's mean by this much (z units).
#: Chosen by leave-one-dataset-out over pbmc68k_reduced, wu2020 and oligodendroglioma
#: (``benchmarks/bench_cells.py tune``); 1.5 on both folds that hold out wu2020 or oligodendroglioma.
REFINE_MARGIN = 1.5
#: A cell takes its cluster label's parent type when its score for the label is below the cluster's mean by
#: more than this much (chosen as :data:`REFINE_MARGIN`; 0 on all three folds).
UP_MARGIN = 0.0
#: Smallest gene sd when scaling the pseudo-cluster sample.
MIN_SD_PSEUDO = 0.1
#: Sources of a cell's label.
SOURCES = ("grounded", "copy number", "reasoner", "reference")
#: Columns of :attr:`CellLabels.table`.
COLUMNS = ("label", "cl_id", "confidence", "margin", "score", "second_label", "cluster", "cluster_label",
           "disagrees", "source")


@dataclass
class CellLabels:
    """Per-cell labels and how they were made.

    Attributes
    ----------
    table
        One row per cell (index: cell names) with :data:`COLUMNS`: ``label`` and ``cl_id`` (the chosen
        panel type: the best prior-weighted one, refined along the ontology), ``confidence`` (its
        calibrated softmax probability, an estimate of its GPTCelltype agreement: :data:`CALIBRATION`),
        ``margin`` (its score minus the best other type's; negative where the refinement chose a type
        that is not the top scorer), ``score`` (the chosen type's marker z-score), ``second_label``,
        ``cluster`` and
        ``cluster_label`` (the cluster's grounded label; empty without clusters), ``disagrees``
        (the cell's type and its cluster's are not the same term or an ancestor/descendant of each
        other), ``source`` (``"grounded"``, or ``"copy number"`` for the cells of a cluster called
        malignant, whose ``label`` is then ``malignant cell`` with :data:`cellscribe.copynumber.CONFIDENCE`).
    panel
        The types scored (:class:`~._signatures.Panel`).
    params, stats
        The settings; cells, chunks computed and resumed, seconds per pass, cells per second.
    copy_number
        The clusters' copy-number measurement (:func:`cellscribe.copynumber.copy_number_of_clusters`),
        or ``None`` when it was not made.
    """

    table: pd.DataFrame
    panel: Panel
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    copy_number: pd.DataFrame | None = None


def label_cells(
    data: AnnData | str | os.PathLike[str],
    groupby: str | None = None,
    *,
    tissue: str | None = None,
    species: str = "human",
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    normalize: Normalize = "auto",
    chunk_size: int = CHUNK_SIZE,
    client: Any = None,
    scheduler: str = "threads",
    n_workers: int | None = None,
    store: str | os.PathLike[str] | None = None,
    stats_cells: int = STATS_CELLS,
    temperature: float = TEMPERATURE,
    calibration: tuple[float, float] | None = CALIBRATION,
    prior_weight: float = PRIOR_WEIGHT,
    refine: bool = True,
    refine_margin: float = REFINE_MARGIN,
    up_margin: float = UP_MARGIN,
    copy_number: bool = True,
    seed: int = 0,
    on_chunk: Callable[[int], None] | None = None,
    progress: bool | None = None,
) -> CellLabels:
    """Label every cell with a grounded cell type (see the module text for the two passes).

    Parameters
    ----------
    data
        An AnnData, or the path of an ``.h5ad`` file / ``.zarr`` store (read lazily: only ``obs``
        and ``var`` are loaded).
    groupby
        Column of ``obs`` with clusters: their markers propose the candidate types and each cell's
        cluster adds its prior. ``None``: pseudo-clusters of a sample propose them, no prior.
    tissue, species
        Passed to the grounded retrieval (``species``: ``"human"`` or ``"mouse"``).
    layer, use_raw, gene_symbols, normalize, chunk_size
        Which expression to read and how (:func:`~._source.open_cells`).
    client, scheduler, n_workers
        A ``dask.distributed.Client``; otherwise the local scheduler (``"threads"``, ``"processes"``,
        ``"synchronous"``) and its number of workers.
    store
        Folder for finished chunks (resumable runs); ``None``: nothing saved.
    stats_cells
        Cells read by the first pass (evenly spaced chunks).
    temperature, calibration
        Softmax temperature of the chosen type's probability, and ``(a, b)`` of the map from it to the
        confidence (:data:`CALIBRATION`; ``None``: the probability itself).
    prior_weight
        Weight of the cluster prior.
    refine, refine_margin, up_margin
        With clusters: refine each cell's type along the Cell Ontology (the cluster label's parent,
        children and siblings with markers) from its scores relative to its cluster's mean; a child is
        taken when its relative score exceeds ``refine_margin``, the parent when the cell's relative
        score for the label is below ``-up_margin``. ``refine=False``: the best prior-weighted type.
    copy_number
        With clusters of human cells: label the cells of clusters with copy-number changes
        ``malignant cell`` (:mod:`cellscribe.copynumber`, on the first pass's cluster means).
    seed
        Seed of the pseudo-clusters.
    on_chunk
        Called with each chunk's index once it is scored (and saved).
    progress
        Show progress (default ``settings.progress``).

    Returns
    -------
    :class:`CellLabels`. Raises :class:`~cellscribe.errors.InputError` for a missing cluster column,
    no cells or genes, an unknown species or scheduler, or markers that name no known type.
    """
    species = check_species(species)
    check_scheduler(scheduler)
    if temperature <= 0:
        raise InputError(f"temperature must be positive; got {temperature!r}.")
    source = open_cells(data, layer=layer, use_raw=use_raw, gene_symbols=gene_symbols, chunk_size=chunk_size,
                        normalize=normalize)
    codes, groups = _codes(source, groupby)
    run = {"client": client, "scheduler": scheduler, "n_workers": n_workers, "progress": progress}
    t0 = time.perf_counter()
    sample = _sample_chunks(source, stats_cells)
    stats = _first_pass(source, sample, codes, len(groups), **run)
    mean, sd = _moments(stats)
    if groups:
        sizes = stats["group_n"].astype(np.float64)
        denom = np.maximum(sizes, 1)[:, None]
        markers = group_markers(stats["group_sum"] / denom, stats["group_nnz"] / denom, sizes, source.genes,
                                groups)
        panel = build_panel(markers, source.genes, tissue=tissue, species=species, refine=refine)
        calls = _copy_number(stats, sizes, groups, source.genes) if copy_number and species == "human" else None
    else:
        calls = None
        markers = _pseudo_markers(source, sample, seed=seed)
        panel = build_panel(markers, source.genes, tissue=tissue, species=species, with_prior=False)
    t1 = time.perf_counter()
    scorer = make_scorer(panel.weights, mean, sd, prior=panel.prior if groups else None, prior_weight=prior_weight,
                         temperature=temperature, normalize=source.normalize, calibration=calibration)
    if groups and refine:
        scorer = with_refinement(scorer, stats["group_sum"] / np.maximum(stats["group_n"], 1)[:, None],
                                 label=panel.group_labels, parent=panel.parent, children=panel.children,
                                 lineage=_same_lineage(panel), refine_margin=refine_margin, up_margin=up_margin)
    params = {"groupby": groupby or "", "tissue": tissue or "", "species": species, "chunk_size": int(chunk_size),
              "stats_cells": int(stats_cells), "temperature": float(temperature),
              "calibration": [float(c) for c in calibration or ()], "prior_weight": float(prior_weight),
              "refine": bool(refine and groups), "refine_margin": float(refine_margin),
              "up_margin": float(up_margin), "normalize": source.normalize, "n_types": len(panel.cl_ids)}
    chunk_store = _store(store, source, scorer, params)
    n = source.n_obs
    best = np.zeros(n, dtype=np.int32)
    second = np.zeros(n, dtype=np.int32)
    conf, margin, score = (np.zeros(n, dtype=np.float32) for _ in range(3))
    starts = source.starts
    computed = resumed = 0
    for i, res, fresh in run_chunks(score_chunk, source, range(source.n_chunks),
                                    lambda i: (codes[starts[i]:starts[i + 1]], scorer), store=chunk_store,
                                    on_chunk=on_chunk, description=f"labelling cells ({len(panel.cl_ids)} types)",
                                    **run):
        sl = slice(starts[i], starts[i + 1])
        best[sl], second[sl], conf[sl], margin[sl], score[sl] = (res["best"], res["second"], res["confidence"],
                                                                 res["margin"], res["score"])
        computed, resumed = computed + fresh, resumed + (not fresh)
    t2 = time.perf_counter()
    table = _table(source, panel, codes, groups, best, second, conf, margin, score)
    if calls is not None:
        table = _malignant(table, calls)
    stats_out = {"cells": n, "chunks": source.n_chunks, "chunks_computed": computed, "chunks_resumed": resumed,
                 "first_pass_cells": int(sum(starts[i + 1] - starts[i] for i in sample)),
                 "seconds_first_pass": round(t1 - t0, 3), "seconds_scoring": round(t2 - t1, 3),
                 "cells_per_second": round(n / max(t2 - t0, 1e-9), 1)}
    return CellLabels(table=table, panel=panel, params=params, stats=stats_out, copy_number=calls)


def _copy_number(stats: dict[str, np.ndarray], sizes: np.ndarray, groups: list[str], genes: pd.Index
                 ) -> pd.DataFrame | None:
    """The copy-number check on the first pass's per-cluster means and PTPRC detection."""
    denom = np.maximum(sizes, 1)
    means = pd.DataFrame(stats["group_sum"] / denom[:, None], index=groups, columns=[str(g) for g in genes])
    where = np.flatnonzero(np.asarray(genes) == copynumber.REFERENCE_GENE)
    share = stats["group_nnz"][:, where[0]] / denom if where.size else np.zeros(len(groups))
    return copynumber.copy_number_of_clusters(means, pd.Series(sizes, index=groups), pd.Series(share, index=groups))


def _malignant(table: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """The cells of clusters ``calls`` finds malignant relabelled ``malignant cell``."""
    malignant = [str(c) for c in calls.index[calls["malignant"]]]
    cells = table["cluster"].astype(str).isin(malignant).to_numpy()
    if not cells.any():
        return table
    name, cl_id = "malignant cell", MALIGNANT_CELL
    for column, value in (("label", name), ("cluster_label", name), ("cl_id", cl_id),
                          ("source", "copy number")):
        if value not in table[column].cat.categories:
            table[column] = table[column].cat.add_categories([value])
        table.loc[cells, column] = value
    table.loc[cells, "confidence"] = np.float32(copynumber.CONFIDENCE)
    table.loc[cells, "disagrees"] = False
    return table


def _same_lineage(panel: Panel) -> np.ndarray:
    """``groups x types``: whether each type shares the broad lineage of the group's label (all ``False`` for a
    label without one: those groups are not refined)."""
    lineage = [broad_type(c) for c in panel.cl_ids]
    out = np.zeros((len(panel.groups), len(panel.cl_ids)), dtype=bool)
    for g, j in enumerate(panel.group_labels):
        if j < 0:
            continue
        if lineage[j] is not None:
            out[g] = [b == lineage[j] for b in lineage]
    return out


def _codes(source: CellSource, groupby: str | None) -> tuple[np.ndarray, list[str]]:
    if groupby is None:
        return np.full(source.n_obs, -1, dtype=np.int32), []
    if groupby not in source.obs.columns:
        raise InputError(f"obs has no column {groupby!r}; columns: {', '.join(map(str, source.obs.columns)) or 'none'}."
                         " Pass groupby=None to label cells without clusters.")
    values = source.obs[groupby]
    cat = values.astype("category") if not isinstance(values.dtype, pd.CategoricalDtype) else values
    codes = cat.cat.codes.to_numpy().astype(np.int32)
    return codes, [str(c) for c in cat.cat.categories]


def _sample_chunks(source: CellSource, stats_cells: int) -> list[int]:
    """Evenly spaced chunk indices covering at most ``stats_cells`` cells (at least one chunk)."""
    sizes = np.diff(source.starts)
    k = max(1, min(source.n_chunks, int(stats_cells // max(1, int(sizes.max())))))
    return sorted({int(round(x)) for x in np.linspace(0, source.n_chunks - 1, k)})


def _first_pass(source: CellSource, chunks: list[int], codes: np.ndarray, n_groups: int, **run: Any
                ) -> dict[str, np.ndarray]:
    starts = source.starts
    total: dict[str, np.ndarray] = {}
    for _i, res, _fresh in run_chunks(chunk_stats, source, chunks,
                                      lambda i: (codes[starts[i]:starts[i + 1]], n_groups, source.normalize),
                                      description="gene statistics (first pass)", **run):
        for k, v in res.items():
            total[k] = total[k] + v if k in total else v.copy()
    return total


def _moments(stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = float(stats["n"][0])
    mean = stats["sum"] / n
    var = np.maximum(stats["sumsq"] / n - mean ** 2, 0.0)
    return mean, np.sqrt(var)


def _pseudo_markers(source: CellSource, chunks: list[int], *, seed: int) -> dict[str, list[str]]:
    """Markers of pseudo-clusters: k-means on the PCA of at most :data:`PSEUDO_CELLS` sampled cells."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    per = max(1, PSEUDO_CELLS // max(1, len(chunks)))
    parts = []
    for i in chunks:
        block = log_normalize(source.X.blocks[i].compute(scheduler="synchronous"), source.normalize)
        parts.append(block[:: max(1, block.shape[0] // per)][:per])
    m = sparse.vstack(parts).tocsr()
    mean = np.asarray(m.mean(axis=0)).ravel()
    var = np.asarray(m.multiply(m).mean(axis=0)).ravel() - mean ** 2
    genes = np.argsort(-var, kind="stable")[: min(2000, m.shape[1])]
    sub = m[:, genes].toarray()
    sub = (sub - sub.mean(axis=0)) / np.maximum(sub.std(axis=0), MIN_SD_PSEUDO)
    n_comp = max(1, min(30, sub.shape[0] - 1, sub.shape[1] - 1))
    pcs = TruncatedSVD(n_components=n_comp, random_state=seed).fit_transform(sub) if n_comp > 1 else sub
    k = max(2, min(15, m.shape[0] // 50))
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(pcs)
    onehot = sparse.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    binary = m.copy()
    binary.data[:] = 1
    means = np.asarray((onehot @ m).todense()) / np.maximum(sizes, 1)[:, None]
    fractions = np.asarray((onehot @ binary).todense()) / np.maximum(sizes, 1)[:, None]
    return group_markers(means, fractions, sizes, source.genes, [f"pseudo{j}" for j in range(k)])


def _store(store: str | os.PathLike[str] | None, source: CellSource, scorer: Any, params: dict[str, Any]
           ) -> ChunkStore | None:
    if store is None:
        return None
    digest = hashlib.sha256()
    digest.update(source.identity.encode())
    digest.update(repr(sorted(params.items())).encode())
    for a in (scorer.weights.data, scorer.weights.indices, scorer.offset, scorer.log_prior):
        digest.update(np.ascontiguousarray(a).tobytes())
    chunk_store = ChunkStore(store, digest.hexdigest()[:16])
    chunk_store.write_meta({"params": params, "identity": source.identity, "path": str(source.path or "")})
    return chunk_store


def _table(source: CellSource, panel: Panel, codes: np.ndarray, groups: list[str], best: np.ndarray,
           second: np.ndarray, conf: np.ndarray, margin: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    names = np.asarray(panel.names, dtype=object)
    table = pd.DataFrame({
        "label": pd.Categorical.from_codes(best, categories=panel.names),
        "cl_id": pd.Categorical.from_codes(best, categories=panel.cl_ids),
        "confidence": conf, "margin": margin, "score": score,
        "second_label": pd.Categorical.from_codes(second, categories=panel.names),
    }, index=source.obs.index.copy())
    if groups:
        valid = codes >= 0
        cl_codes = np.where(valid, panel.group_labels[np.maximum(codes, 0)], -1)
        cluster_label = np.where(cl_codes >= 0, names[np.maximum(cl_codes, 0)], "")
        table["cluster"] = pd.Categorical.from_codes(codes, categories=groups)
        table["cluster_label"] = pd.Categorical(cluster_label)
        compatible = _compatible(panel.cl_ids)
        table["disagrees"] = valid & (cl_codes >= 0) & ~compatible[best, np.maximum(cl_codes, 0)]
    else:
        table["cluster"] = pd.Categorical([""] * len(table))
        table["cluster_label"] = pd.Categorical([""] * len(table))
        table["disagrees"] = np.zeros(len(table), dtype=bool)
    table["source"] = pd.Categorical(["grounded"] * len(table), categories=list(SOURCES))
    return table


def _compatible(cl_ids: list[str]) -> np.ndarray:
    """``[i, j]``: type ``i`` and type ``j`` are the same term or one is an ancestor of the other."""
    cl = ontology.get()
    n = len(cl_ids)
    out = np.eye(n, dtype=bool)
    for i, a in enumerate(cl_ids):
        for j, b in enumerate(cl_ids):
            if i != j and (cl.is_a(a, b) or cl.is_a(b, a)):
                out[i, j] = True
    return out
