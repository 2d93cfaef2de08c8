"""Evaluation: classification metrics, the logistic-regression reference, k-fold comparison.

Every comparison includes a logistic regression on log-normalised expression (scikit-learn,
all genes, ``C=1``, L2): the non-LLM reference. :func:`cross_validate` runs any of
``logreg``, ``genept`` and ``screader`` on the same stratified folds (or one fixed split) and
reports accuracy, macro precision, recall and F1, with training and inference throughput.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from ..errors import InputError
from ._classifier import train_genept, train_screader
from ._store import GeneEmbeddings
from ._train import TrainConfig, check_labels

log = logging.getLogger(__name__)

METHODS = ("logreg", "genept", "screader")


def metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro precision, recall, F1 (classes absent from both count as 0, not as errors)."""
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "precision": float(p), "recall": float(r),
            "f1": float(f)}


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Confusion matrix as a DataFrame (rows: true label, columns: predicted label)."""
    labels = list(labels) if labels is not None else sorted(set(map(str, y_true)) | set(map(str, y_pred)))
    cm = confusion_matrix(np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str), labels=labels)
    return pd.DataFrame(cm, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


class LogisticReference:
    """Logistic regression on log-normalised expression (the non-LLM reference)."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000, seed: int = 0) -> None:
        self.model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)

    def fit(self, X: sparse.csr_matrix, y: np.ndarray) -> LogisticReference:
        check_labels(np.asarray(y).astype(str))
        self.model.fit(X, np.asarray(y).astype(str))
        return self

    def predict(self, X: sparse.csr_matrix) -> np.ndarray:
        return self.model.predict(X)


def cross_validate(
    X: sparse.csr_matrix,
    genes: list[str],
    y: Sequence[str],
    gene_emb: GeneEmbeddings,
    *,
    methods: Sequence[str] = METHODS,
    n_splits: int = 5,
    test_size: float | None = None,
    seed: int = 0,
    genept: dict[str, Any] | None = None,
    screader: dict[str, Any] | None = None,
    keep_predictions: bool = True,
    on_fold: Callable[[int, str, Any, np.ndarray, np.ndarray], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare methods on the same stratified folds.

    Parameters
    ----------
    X, genes, y
        Log-normalised expression (cells x genes), gene names, labels.
    gene_emb
        Gene embeddings covering ``genes``.
    methods
        Any of ``"logreg"``, ``"genept"``, ``"screader"``.
    n_splits
        Folds of a stratified k-fold; ignored when ``test_size`` is given.
    test_size
        Fraction held out in one stratified split instead of k folds.
    genept, screader
        Keyword arguments of :func:`train_genept` / :func:`train_screader` (``config=TrainConfig``,
        ``k``, ``lm``, ...).
    on_fold
        Called as ``on_fold(fold, method, model, train_rows, test_rows)`` after each model is
        trained and scored (e.g. to keep fold 0's models for plots).

    Returns
    -------
    ``(scores, predictions)``: one row per method and fold (``accuracy, precision, recall, f1,
    n_train, n_test, train_s, infer_s, train_cells_per_s, infer_cells_per_s``, and for the neural
    models ``s_per_epoch`` and ``final_loss``), and one row per method and test cell (``cell, fold,
    method, true, predicted``).
    """
    y = np.asarray(y).astype(str)
    splitter = _splitter(y, methods, n_splits=n_splits, test_size=test_size, seed=seed)
    rows, preds = [], []
    for fold, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
        for method in methods:
            model, pred, train_s, infer_s, extra = _fit_predict(method, X, genes, y, tr, te, gene_emb, seed=seed,
                                                                options=genept if method == "genept" else screader)
            row = {"method": method, "fold": fold, **metrics(y[te], pred), "n_train": len(tr), "n_test": len(te),
                   "train_s": train_s, "infer_s": infer_s, "train_cells_per_s": len(tr) / train_s,
                   "infer_cells_per_s": len(te) / max(infer_s, 1e-9), **extra}
            log.info("fold %d %s: accuracy %.3f, f1 %.3f (%.0f s)", fold, method, row["accuracy"], row["f1"], train_s)
            rows.append(row)
            if on_fold is not None:
                on_fold(fold, method, model, tr, te)
            if keep_predictions:
                preds.append(pd.DataFrame({"cell": te, "fold": fold, "method": method, "true": y[te],
                                           "predicted": np.asarray(pred).astype(str)}))
    return pd.DataFrame(rows), (pd.concat(preds, ignore_index=True) if preds else pd.DataFrame())


def _splitter(y: np.ndarray, methods: Sequence[str], *, n_splits: int, test_size: float | None, seed: int) -> Any:
    """Stratified k folds (or one stratified split with ``test_size``), after checking the labels,
    the methods and that every type has a cell in each fold."""
    check_labels(y)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise InputError(f"Unknown method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}.")
    _, counts = np.unique(y, return_counts=True)
    folds = n_splits if test_size is None else 2
    if counts.min() < folds:
        raise InputError(f"A cell type has only {counts.min()} cell(s), fewer than the {folds} folds; "
                         "drop rare types or use fewer folds.")
    return (StratifiedKFold(n_splits, shuffle=True, random_state=seed) if test_size is None
            else StratifiedShuffleSplit(1, test_size=test_size, random_state=seed))


def _fit_predict(method: str, X: sparse.csr_matrix, genes: list[str], y: np.ndarray, tr: np.ndarray, te: np.ndarray,
                 gene_emb: GeneEmbeddings, *, seed: int,
                 options: dict[str, Any] | None) -> tuple[Any, np.ndarray, float, float, dict[str, float]]:
    """Train ``method`` on the rows ``tr`` and predict the rows ``te``: ``(model, predictions, training
    seconds, inference seconds, extra figures)`` (the neural models add ``s_per_epoch`` and ``final_loss``)."""
    start = time.perf_counter()
    if method == "logreg":
        ref = LogisticReference(seed=seed).fit(X[tr], y[tr])
        train_s = time.perf_counter() - start
        t0 = time.perf_counter()
        pred = ref.predict(X[te])
        return ref, pred, train_s, time.perf_counter() - t0, {}
    kwargs = dict(options or {})
    kwargs.setdefault("config", TrainConfig(seed=seed))
    train = train_genept if method == "genept" else train_screader
    clf = train(X[tr], genes, y[tr], gene_emb, **kwargs)
    train_s = time.perf_counter() - start
    p = clf.predict_matrix(X[te], genes)
    extra = {"s_per_epoch": float(np.mean([h["seconds"] for h in clf.history])), "final_loss": clf.history[-1]["loss"]}
    return clf, p.labels, train_s, p.seconds, extra


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds, one row per method."""
    cols = [c for c in ("accuracy", "precision", "recall", "f1", "train_cells_per_s", "infer_cells_per_s",
                        "s_per_epoch") if c in scores]
    agg = scores.groupby("method", sort=False)[cols].agg(["mean", "std"])
    agg.columns = [f"{c}_{s}" for c, s in agg.columns]
    return agg
