"""``cellscribe.pl.confusion_matrix``: true labels against predicted labels, ontology-aware."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..evaluate import classes, score_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_matrix(
    predicted: Sequence[Any],
    truth: Sequence[Any],
    *,
    level: Literal["term", "broad"] = "term",
    normalize: bool = True,
    path: str | Path | None = None,
    title: str | None = None,
    max_classes: int = 40,
) -> Figure:
    """Heat map of true classes (rows) against predicted classes (columns).

    Predictions are credited with the true class as :func:`cellscribe.evaluate.classification_metrics`
    does: at ``level="term"`` when they name the same Cell Ontology term (``"NK cells"`` for
    ``"natural killer cell"``), at ``level="broad"`` when they share the broad type. Other
    predictions appear under their own term (or broad type), so the off-diagonal shows what was
    confused with what.

    Parameters
    ----------
    predicted, truth
        Labels, pairwise (one per cell or one per cluster).
    level
        ``"term"`` or ``"broad"``.
    normalize
        Show the share of each true class (rows sum to 1) instead of counts; counts are printed in
        the cells either way.
    path
        Save the figure here (PNG at 150 dpi) as well.
    title
        Plot title (default names the level).
    max_classes
        Keep the most frequent classes on each axis; the rest are pooled as ``"(other)"``.

    Returns
    -------
    The matplotlib figure.
    """
    # matplotlib is imported when a plot is drawn: it is slow to import, and the Agg backend must be
    # chosen before pyplot loads (without taking over a backend the user already chose)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    predicted, truth = list(predicted), list(truth)
    y_true, y_pred = classes(score_labels(predicted, truth), level=level)
    y_true, y_pred = _pool(y_true, max_classes), _pool(y_pred, max_classes)
    rows = sorted(set(y_true), key=lambda c: (c == "(other)", c.lower()))
    cols = [c for c in rows if c in set(y_pred)] + sorted(set(y_pred) - set(rows), key=lambda c: (c == "(other)", c))
    counts = pd.crosstab(pd.Series(y_true, name="truth"), pd.Series(y_pred, name="predicted"))
    counts = counts.reindex(index=rows, columns=cols, fill_value=0)
    values = counts.to_numpy(dtype=float)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)

    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(cols) + 3.5), max(4.0, 0.4 * len(rows) + 2.5)))
    image = _draw_counts(ax, counts, values, normalize=normalize)
    accuracy = sum(a == b for a, b in zip(y_true, y_pred, strict=True)) / max(1, len(y_true))
    ax.set_title(title or f"Confusion matrix ({'Cell Ontology term' if level == 'term' else 'broad type'}; "
                 f"accuracy {accuracy:.2f})", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of true class" if normalize else "count")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def _draw_counts(ax: Any, counts: pd.DataFrame, values: np.ndarray, *, normalize: bool) -> Any:
    """The heat map of ``values`` with the axis labels, and each non-zero count printed in its cell."""
    rows, cols = list(counts.index), list(counts.columns)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    threshold = values.max() / 2 if values.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            n = int(counts.iat[i, j])
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > threshold else "black")
    return image


def _pool(values: list[str], keep: int) -> list[str]:
    common = {c for c, _ in Counter(values).most_common(keep)}
    return [v if v in common else "(other)" for v in values]
