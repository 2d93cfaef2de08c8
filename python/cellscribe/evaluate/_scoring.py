"""Score many predicted labels against true labels: one row per pair, with the mapping behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..knowledge import ontology
from ._agreement import LEVELS, agreement_level, side

#: Columns of :func:`score_labels`, in order.
SCORE_COLUMNS = [
    "predicted", "truth", "agreement", "level",
    "pred_cl_id", "pred_cl_name", "pred_method", "pred_match_score", "pred_broad",
    "truth_cl_id", "truth_cl_name", "truth_broad",
]


def score_labels(
    predicted: Sequence[Any],
    truth: Sequence[Any],
    *,
    truth_cl_ids: Sequence[Any] | None = None,
    truth_broad: Sequence[Any] | None = None,
    species: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Agreement of each predicted label with its true label (GPTCelltype score and 4 levels).

    Parameters
    ----------
    predicted, truth
        Labels, pairwise (same length). Missing predictions score 0.
    truth_cl_ids, truth_broad
        The truth's own Cell Ontology IDs and broad types, when known (e.g. the GPTCelltype table's
        ``manual_CLID``/``manual_broadtype``; comma-separated per row, missing = no term). Without
        them the truth is mapped from its text like the predictions.
    species
        Each pair's species (``"human"``, ``"mouse"``), when known: a label naming a term restricted
        to another species maps to its nearest term that applies (see
        :func:`~cellscribe.knowledge.labels.map_label`).

    Returns
    -------
    One row per pair, in order, with columns :data:`SCORE_COLUMNS`: ``agreement`` (1 / 0.5 / 0),
    ``level`` (``exact``/``major``/``related``/``wrong``), the predicted label's Cell Ontology
    mapping (``pred_cl_id``, ``pred_cl_name``, ``pred_method``, ``pred_match_score``; ``;``-joined
    where a label names several types), and both sides' broad types (``;``-joined).
    """
    predicted, truth = list(predicted), list(truth)
    if len(predicted) != len(truth):
        raise ValueError(f"predicted has {len(predicted)} labels but truth has {len(truth)}.")
    ids = list(truth_cl_ids) if truth_cl_ids is not None else [None] * len(truth)
    broad = list(truth_broad) if truth_broad is not None else [None] * len(truth)
    kinds = [_key(s) for s in species] if species is not None else [None] * len(truth)
    if len(kinds) != len(truth):
        raise ValueError(f"species has {len(kinds)} values but truth has {len(truth)} labels.")
    cache: dict[tuple, dict[str, Any]] = {}
    rows = []
    for p, t, i, b, s in zip(predicted, truth, ids, broad, kinds, strict=True):
        key = (_key(p), _key(t), _key(i), _key(b), truth_cl_ids is None, truth_broad is None, s)
        if key not in cache:
            cache[key] = _score_one(p, t, i if truth_cl_ids is not None else None,
                                    b if truth_broad is not None else None, s)
        rows.append(cache[key])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _score_one(p: Any, t: Any, ids: Any, broad: Any, species: str | None = None) -> dict[str, Any]:
    if ids is not None and not isinstance(ids, str) and pd.isna(ids):
        ids = ""
    if broad is not None and not isinstance(broad, str) and pd.isna(broad):
        broad = None
    ps, ts = side(p, species=species), side(t, cl_ids=ids, broad=broad, species=species)
    level = agreement_level(ps, ts)
    cl = ontology.get()
    m = ps.mapping
    return {
        "predicted": None if ps.empty else ps.text,
        "truth": ts.text,
        "agreement": LEVELS[level],
        "level": level,
        "pred_cl_id": ";".join(m.cl_ids) if m is not None and m.mapped else None,
        "pred_cl_name": ";".join(m.names()) if m is not None and m.mapped else None,
        "pred_method": m.method if m is not None else None,
        "pred_match_score": m.score if m is not None else None,
        "pred_broad": ";".join(sorted(ps.broad)) or None,
        "truth_cl_id": ";".join(sorted(ts.cl_ids)) or None,
        "truth_cl_name": ";".join(cl.name(i) for i in sorted(ts.cl_ids)) or None,
        "truth_broad": ";".join(sorted(ts.broad)) or None,
    }


def _key(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)
