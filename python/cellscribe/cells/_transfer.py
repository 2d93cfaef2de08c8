"""Label transfer from a labelled reference: logistic regression on log expression, applied chunk by chunk.

The classifier is the one that beats SCREADER and GenePT on our datasets
(:class:`cellscribe.embed.LogisticReference`'s recipe: ``LogisticRegression`` on log-normalised
expression), fitted on the reference's most variable genes shared with the data, then applied to
the cells chunk by chunk on Dask exactly as :func:`~._api.label_cells` scores them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import InputError
from ._runner import ChunkStore, check_scheduler, run_chunks
from ._source import CHUNK_SIZE, Normalize, log_normalize, open_cells

if TYPE_CHECKING:
    from anndata import AnnData

#: Most variable reference genes (shared with the data) the classifier reads.
N_GENES = 3000


def transfer_labels(data: AnnData | str | os.PathLike[str], reference: AnnData, label_key: str, *,
                    layer: str | None = None, use_raw: bool | None = None, gene_symbols: str | None = None,
                    normalize: Normalize = "auto", chunk_size: int = CHUNK_SIZE, client: Any = None,
                    scheduler: str = "threads", n_workers: int | None = None,
                    store: str | os.PathLike[str] | None = None, n_genes: int = N_GENES, C: float = 1.0,
                    seed: int = 0, on_chunk: Callable[[int], None] | None = None,
                    progress: bool | None = None) -> pd.DataFrame:
    """Label every cell of ``data`` with the reference's labels.

    Parameters
    ----------
    data
        Cells to label: an AnnData or an ``.h5ad``/``.zarr`` path (read lazily).
    reference
        Labelled cells in memory (its expression is read as ``data``'s is: counts are normalised).
    label_key
        Column of ``reference.obs`` with the labels.
    layer, use_raw, gene_symbols, normalize, chunk_size
        How ``data`` is read (:func:`~cellscribe.cells.open_cells`); the reference uses its own ``raw``
        when its ``X`` is scaled.
    client, scheduler, n_workers, store, on_chunk, progress
        As for :func:`~cellscribe.cells.label_cells`.
    n_genes, C, seed
        Genes the classifier reads; inverse regularisation; seed.

    Returns
    -------
    One row per cell (index: cell names): ``label`` (categorical), ``confidence`` (the classifier's
    probability of it), ``source`` (``"reference"``); ``attrs["stats"]`` has cells, seconds and cells
    per second. Raises :class:`~cellscribe.errors.InputError` for a missing label column, fewer than
    two labels, or no gene shared with the reference.
    """
    from sklearn.linear_model import LogisticRegression

    check_scheduler(scheduler)
    if label_key not in reference.obs.columns:
        raise InputError(f"reference.obs has no column {label_key!r}; columns: "
                         f"{', '.join(map(str, reference.obs.columns)) or 'none'}.")
    y = reference.obs[label_key].astype(str).to_numpy()
    if len(set(y)) < 2:
        raise InputError(f"reference.obs[{label_key!r}] holds fewer than two labels; nothing to learn.")
    t0 = time.perf_counter()
    ref = open_cells(reference, chunk_size=max(1, reference.n_obs))
    R = log_normalize(ref.X.compute(scheduler="synchronous"), ref.normalize)
    source = open_cells(data, layer=layer, use_raw=use_raw, gene_symbols=gene_symbols, chunk_size=chunk_size,
                        normalize=normalize)
    target = {g: i for i, g in enumerate(source.genes)}
    shared = [j for j, g in enumerate(ref.genes) if g in target]
    if not shared:
        raise InputError("The reference shares no gene with the data; check var_names (or gene_symbols=).")
    mean = np.asarray(R[:, shared].mean(axis=0)).ravel()
    var = np.asarray(R[:, shared].multiply(R[:, shared]).mean(axis=0)).ravel() - mean ** 2
    chosen = [shared[k] for k in np.argsort(-var, kind="stable")[:n_genes]]
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(R[:, chosen], y)
    columns = np.asarray([target[ref.genes[j]] for j in chosen], dtype=np.int64)
    n = source.n_obs
    best = np.zeros(n, dtype=np.int32)
    conf = np.zeros(n, dtype=np.float32)
    starts = source.starts
    chunk_store = ChunkStore(store, f"transfer-{source.identity}-{abs(hash((tuple(chosen), C, seed))) % 10**12}") \
        if store is not None else None
    t1 = time.perf_counter()
    for i, res, _fresh in run_chunks(_predict_chunk, source, range(source.n_chunks),
                                     lambda i: (columns, model, source.normalize), client=client,
                                     scheduler=scheduler, n_workers=n_workers, store=chunk_store,
                                     on_chunk=on_chunk, description="transferring labels", progress=progress):
        best[starts[i]:starts[i + 1]], conf[starts[i]:starts[i + 1]] = res["best"], res["confidence"]
    t2 = time.perf_counter()
    classes = [str(c) for c in model.classes_]
    out = pd.DataFrame({"label": pd.Categorical.from_codes(best, categories=classes), "confidence": conf,
                        "source": pd.Categorical(["reference"] * n)}, index=source.obs.index.copy())
    out.attrs["stats"] = {"cells": n, "genes": len(chosen), "seconds_fit": round(t1 - t0, 3),
                          "seconds_predict": round(t2 - t1, 3), "cells_per_second": round(n / max(t2 - t0, 1e-9), 1)}
    return out


def _predict_chunk(block: Any, columns: np.ndarray, model: Any, normalize: bool) -> dict[str, np.ndarray]:
    """One chunk's predicted class index and its probability."""
    m = log_normalize(block, normalize)[:, columns]
    proba = model.predict_proba(sparse.csr_matrix(m))
    return {"best": proba.argmax(axis=1).astype(np.int32), "confidence": proba.max(axis=1).astype(np.float32)}
