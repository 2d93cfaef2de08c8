"""Accuracy of labels against expert labels: per cluster, per cell, and macro precision/recall/F1.

All three score with the ontology-aware agreement (:func:`~cellscribe.evaluate.agreement`), so
``"CD14+ Monocytes"`` against ``"CD14-positive monocyte"`` counts as right. Typical use on an
annotated AnnData (labels from :func:`cellscribe.tl.annotate`, experts' labels in ``obs``)::

    from cellscribe import evaluate as ev

    ev.cluster_accuracy(adata.obs["leiden"], adata.obs["cellscribe_label"], adata.obs["bulk_labels"])
    ev.cell_accuracy(adata.obs["cellscribe_label"], adata.obs["bulk_labels"])
    ev.classification_metrics(adata.obs["cellscribe_label"], adata.obs["bulk_labels"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd

from ._scoring import score_labels


@dataclass(frozen=True)
class Accuracy:
    """Summary of agreement scores.

    Attributes
    ----------
    mean_agreement
        Mean GPTCelltype agreement (1 / 0.5 / 0), weighted as described by the function.
    exact, major, related, wrong
        Share (0-1) of each of the four levels (``exact`` is the share of full matches).
    n
        Number of clusters or cells scored.
    """

    mean_agreement: float
    exact: float
    major: float
    related: float
    wrong: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def cell_accuracy(predicted: Sequence[Any], truth: Sequence[Any]) -> Accuracy:
    """Cell-level accuracy: every cell's predicted label scored against its own true label.

    Parameters
    ----------
    predicted, truth
        One label per cell (e.g. ``adata.obs["cellscribe_label"]`` and ``adata.obs["cell_type"]``).
        Each distinct pair is scored once, so a million cells cost what their label pairs cost.

    Returns
    -------
    :class:`Accuracy` over cells.
    """
    pairs = pd.DataFrame({"p": _as_list(predicted), "t": _as_list(truth)})
    counts = pairs.value_counts(dropna=False).reset_index(name="n")
    scored = score_labels(counts["p"], counts["t"])
    return _summarise(scored["agreement"], scored["level"], weights=counts["n"])


def cluster_accuracy(clusters: Sequence[Any], predicted: Sequence[Any], truth: Sequence[Any], *,
                     return_table: bool = False) -> Accuracy | tuple[Accuracy, pd.DataFrame]:
    """Cluster-level accuracy: each cluster's label scored against the majority true label of its cells.

    Parameters
    ----------
    clusters, predicted, truth
        One value per cell: cluster ID, predicted label (normally the cluster's label on every cell)
        and true label. A cluster whose cells carry several predicted labels is scored by its most
        common one.
    return_table
        Also return the per-cluster table.

    Returns
    -------
    :class:`Accuracy` over clusters (each cluster weighs the same); with ``return_table``, also a
    DataFrame with one row per cluster: ``cluster, n_cells, predicted, truth, truth_share`` (share
    of the cluster's cells with the majority true label) and the columns of
    :func:`~cellscribe.evaluate.score_labels`.
    """
    df = pd.DataFrame({"cluster": _as_list(clusters), "p": _as_list(predicted), "t": _as_list(truth)})
    rows = []
    for cluster, group in df.groupby("cluster", sort=True, observed=True, dropna=False):
        pred = group["p"].value_counts(dropna=False).index[0]
        counts = group["t"].value_counts(dropna=False)
        rows.append({"cluster": cluster, "n_cells": len(group), "predicted": pred, "truth": counts.index[0],
                     "truth_share": counts.iloc[0] / len(group)})
    table = pd.DataFrame(rows)
    scored = score_labels(table["predicted"], table["truth"])
    table = pd.concat([table[["cluster", "n_cells", "truth_share"]], scored], axis=1)
    result = _summarise(table["agreement"], table["level"])
    return (result, table) if return_table else result


def classification_metrics(predicted: Sequence[Any], truth: Sequence[Any], *,
                           level: Literal["term", "broad"] = "term") -> dict[str, Any]:
    """Macro precision, recall and F1 (scikit-learn) over the true classes.

    A prediction counts as the true class when it names the same thing: at ``level="term"`` when
    its agreement is a full match (same Cell Ontology term or synonym), at ``level="broad"`` when
    it shares the true broad type. Otherwise it counts as its own class (its term's name, its broad
    type, or its text when unmapped).

    Parameters
    ----------
    predicted, truth
        Labels, pairwise (one per cell or one per cluster).
    level
        ``"term"`` (the expert's label) or ``"broad"`` (broad types such as ``t/nk cell``).

    Returns
    -------
    ``{"precision", "recall", "f1", "accuracy", "n", "level", "per_class"}``: macro averages over
    the true classes, the share of items predicted as their true class, and a per-class DataFrame
    (``class, precision, recall, f1, support``).
    """
    from sklearn.metrics import precision_recall_fscore_support

    scored = score_labels(_as_list(predicted), _as_list(truth))
    y_true, y_pred = classes(scored, level=level)
    labels = sorted(set(y_true))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = pd.DataFrame({"class": labels, "precision": p, "recall": r, "f1": f, "support": s})
    return {
        "precision": float(per_class["precision"].mean()) if labels else 0.0,
        "recall": float(per_class["recall"].mean()) if labels else 0.0,
        "f1": float(per_class["f1"].mean()) if labels else 0.0,
        "accuracy": float(sum(a == b for a, b in zip(y_true, y_pred, strict=True)) / max(1, len(y_true))),
        "n": len(y_true),
        "level": level,
        "per_class": per_class,
    }


def classes(scored: pd.DataFrame, *, level: Literal["term", "broad"] = "term") -> tuple[list[str], list[str]]:
    """True and predicted class names for a :func:`~cellscribe.evaluate.score_labels` table, as
    :func:`classification_metrics` and :func:`cellscribe.pl.confusion_matrix` compare them."""
    if level not in ("term", "broad"):
        raise ValueError(f"level must be 'term' or 'broad'; got {level!r}.")
    y_true, y_pred = [], []
    for row in scored.itertuples(index=False):
        if level == "term":
            true = str(row.truth)
            right = row.level == "exact"
            own = row.pred_cl_name or (row.predicted if row.predicted is not None else "(none)")
        else:
            true = row.truth_broad or f"({row.truth})"
            right = bool(row.pred_broad and row.truth_broad
                         and set(row.pred_broad.split(";")) & set(row.truth_broad.split(";")))
            own = row.pred_broad or "(unmapped)"
        y_true.append(true)
        y_pred.append(true if right else str(own))
    return y_true, y_pred


def _summarise(agreement: pd.Series, levels: pd.Series, weights: pd.Series | None = None) -> Accuracy:
    w = pd.Series(1.0, index=agreement.index) if weights is None else pd.Series(list(weights), index=agreement.index)
    total = float(w.sum())
    if total == 0:
        return Accuracy(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    share = {lv: float(w[levels == lv].sum() / total) for lv in ("exact", "major", "related", "wrong")}
    return Accuracy(mean_agreement=float((agreement * w).sum() / total), n=int(total), **share)


def _as_list(values: Sequence[Any]) -> list[Any]:
    if isinstance(values, pd.Series):
        return values.astype(object).tolist()
    return list(values)
