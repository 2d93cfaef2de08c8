"""``cellscribe.tl.annotate_cells``: grounded labels for every cell, the reasoner only for the least certain."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..cells import (
    CHUNK_SIZE,
    DEFAULT_KEY,
    REFINE_MARGIN,
    UP_MARGIN,
    Panel,
    label_cells,
    transfer_labels,
    write_results,
)
from ..errors import InputError
from ..reasoner import annotate_cells as reason_cells

if TYPE_CHECKING:
    from anndata import AnnData


def annotate_cells(
    adata: AnnData,
    groupby: str | None = None,
    *,
    tissue: str | None = None,
    species: str = "human",
    reference: AnnData | None = None,
    label_key: str | None = None,
    refine: bool = True,
    refine_margin: float = REFINE_MARGIN,
    up_margin: float = UP_MARGIN,
    copy_number: bool = True,
    reasoner_budget: float = 0,
    backend: str = "auto",
    model: str | None = None,
    client: Any = None,
    scheduler: str = "threads",
    chunk_size: int = CHUNK_SIZE,
    store: str | None = None,
    progress: bool | None = None,
    key_added: str = DEFAULT_KEY,
    copy: bool = False,
    **reasoner_options: Any,
) -> AnnData | None:
    """Label every cell: grounded marker scores for all cells, the reasoner for the least certain ones.

    Parameters
    ----------
    adata
        Cells with counts or log-normalised expression (``raw`` is used when ``X`` is scaled); ``X``
        may be a Dask array.
    groupby
        Cluster column whose grounded candidates are scored (``None``: pseudo-clusters propose them).
    tissue, species
        For the grounded retrieval and the reasoner's prompt.
    reference, label_key
        A labelled reference: also transfer its labels (logistic regression on log expression).
    refine
        With clusters: refine each cell's type along the Cell Ontology (the cluster label's parent,
        children and siblings that have markers) from its scores relative to its cluster's mean;
        ``False``: the best prior-weighted type.
    refine_margin
        A cell descends to a child type when the child's score exceeds its cluster's mean by more
        than this (z units; default :data:`cellscribe.cells.REFINE_MARGIN`, chosen leave-one-dataset-out).
        Lower: more cells get subtypes.
    up_margin
        A cell takes its cluster label's parent type when its score for the label is below its
        cluster's mean by more than this (default :data:`cellscribe.cells.UP_MARGIN`); ``inf``: never.
    copy_number
        With clusters of human cells: the cells of clusters with copy-number changes inferred from
        their mean expression are labelled ``malignant cell`` (:mod:`cellscribe.copynumber`); the
        clusters called are listed in ``adata.uns[key_added]["malignant_clusters"]``.
    reasoner_budget
        Cells sent to the reasoner, the least confident first: a fraction (``0 < x < 1``) or a number
        of cells (``>= 1``); ``0``: none. Their choices are the grounded candidates of the cells sent
        (every best and second type among them). On pbmc68k_reduced it has not helped (README).
    backend, model, **reasoner_options
        The reasoner's model (:func:`cellscribe.reasoner.annotate_cells`).
    client, scheduler, chunk_size, store, progress
        Dask and chunking (:func:`cellscribe.cells.label_cells`).
    key_added, copy
        Column prefix; return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), having written

    ``adata.obs[f"{key_added}_label"]``, ``..._cl_id``
        The cell's type (categorical) and its Cell Ontology ID.
    ``..._confidence``, ``..._margin``, ``..._score``, ``..._second_label``
        Confidence (the chosen type's softmax probability, calibrated to estimate its GPTCelltype
        agreement: :data:`cellscribe.cells.CALIBRATION`), chosen-minus-runner-up score, the chosen
        type's marker z-score, the runner-up.
    ``..._cluster``, ``..._cluster_label``, ``..._disagrees``
        The cell's cluster, the cluster's grounded label, and whether the cell's type contradicts it
        (not the same term nor an ancestor or descendant: candidate doublets or mis-clustered cells).
    ``..._source``
        ``"grounded"``, ``"copy number"`` (the cell's cluster was called malignant: ``malignant
        cell``) or ``"reasoner"``: which path decided the label.
    ``..._reference_label``, ``..._reference_confidence``
        With ``reference``: the transferred label and its probability.
    ``adata.uns[key_added]``
        ``params``, ``stats`` (cells, chunks, seconds, cells per second; ``reasoner_cells``,
        ``reasoner_seconds``, ``reasoner_changed``) and ``types`` (the panel: ``cl_id``, ``name``,
        ``n_markers``, ``markers``).
    """
    budget_cells(reasoner_budget, adata.n_obs)  # checked before any work
    adata = adata.copy() if copy else adata
    result = label_cells(adata, groupby, tissue=tissue, species=species, client=client, scheduler=scheduler,
                         chunk_size=chunk_size, store=store, refine=refine, refine_margin=refine_margin,
                         up_margin=up_margin, copy_number=copy_number, progress=progress)
    table = result.table
    stats = dict(result.stats)
    if reasoner_budget:
        table, reasoner_stats = refine_with_reasoner(adata, table, result.panel, reasoner_budget, tissue=tissue,
                                                     species=species, backend=backend, model=model, progress=progress,
                                                     **reasoner_options)
        stats.update(reasoner_stats)
    write_results(table, adata, key=key_added)
    if reference is not None:
        if label_key is None:
            raise InputError("reference= needs label_key=, the reference's label column.")
        transferred = transfer_labels(adata, reference, label_key, client=client, scheduler=scheduler,
                                      chunk_size=chunk_size, progress=progress)
        adata.obs[f"{key_added}_reference_label"] = transferred["label"].values
        adata.obs[f"{key_added}_reference_confidence"] = transferred["confidence"].to_numpy()
        stats["reference"] = transferred.attrs["stats"]
    adata.uns[key_added] = {"params": {**result.params, "reasoner_budget": float(reasoner_budget)},
                            "stats": stats, "types": result.panel.table().to_dict(orient="list")}
    if result.copy_number is not None:
        calls = result.copy_number
        adata.uns[key_added]["malignant_clusters"] = [str(c) for c in calls.index[calls["malignant"]]]
    return adata if copy else None


def budget_cells(budget: float, n_obs: int) -> int:
    """Cells a reasoner ``budget`` stands for: a fraction (``0 < budget < 1``) of ``n_obs`` or a number (``>= 1``)."""
    if budget < 0:
        raise InputError(f"The reasoner budget must be a fraction in (0, 1), a number of cells, or 0; got {budget!r}.")
    if budget == 0:
        return 0
    return min(n_obs, math.ceil(budget * n_obs) if budget < 1 else int(budget))


def refine_with_reasoner(adata: AnnData, table: pd.DataFrame, panel: Panel, budget: float, *, tissue: str | None = None,
                         species: str = "human", backend: str = "auto", model: str | None = None,
                         progress: bool | None = None, **options: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Send the least confident cells of ``table`` to the reasoner, choosing among their grounded candidates.

    Parameters
    ----------
    adata
        The cells of ``table`` (in memory or backed: only the chosen cells are read).
    table, panel
        :attr:`cellscribe.cells.CellLabels.table` and ``.panel``.
    budget
        A fraction (``0 < budget < 1``) or a number of cells (:func:`budget_cells`).
    tissue, species, backend, model, progress, **options
        Passed to :func:`cellscribe.reasoner.annotate_cells` (``on_error="keep"`` by default).

    Returns
    -------
    ``(table, stats)``: a copy of ``table`` where the reasoner's answers replace ``label`` and
    ``cl_id`` and set ``source`` to ``"reasoner"``; stats ``reasoner_cells``, ``reasoner_answered``,
    ``reasoner_changed``, ``reasoner_seconds``.
    """
    n = budget_cells(budget, len(table))
    names, cl_ids = panel.names, panel.cl_ids
    t0 = time.perf_counter()
    order = np.sort(np.argsort(table["confidence"].to_numpy(), kind="stable")[:n])
    picked = table.index[order]
    choices = sorted(set(table.loc[picked, "label"].astype(str)) | set(table.loc[picked, "second_label"].astype(str)))
    view = adata[order]
    sub = view.to_memory() if view.isbacked else view.copy()
    options.setdefault("on_error", "keep")
    reason_cells(sub, candidates=choices, tissue=tissue, species=species, backend=backend, model=model,
                 progress=progress, key_added="reasoner", **options)
    answers = sub.obs["reasoner"].astype(object)
    to_id = dict(zip(names, cl_ids, strict=True))
    table = table.copy()
    changed = 0
    for cell, answer in answers.items():
        if isinstance(answer, str) and answer in to_id:
            changed += int(answer != str(table.at[cell, "label"]))
            table.at[cell, "label"] = answer
            table.at[cell, "cl_id"] = to_id[answer]
            table.at[cell, "source"] = "reasoner"
    return table, {"reasoner_cells": int(n), "reasoner_answered": int(answers.notna().sum()),
                   "reasoner_changed": changed, "reasoner_seconds": round(time.perf_counter() - t0, 2)}
