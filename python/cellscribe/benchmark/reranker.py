"""Fit the grounded mode's re-ranker and cross-validate it honestly (by dataset).

Every candidate of a GPTCelltype-format table is a training example whose target is its
GPTCelltype agreement with the expert label (1 / 0.5 / 0; a 0.5 counts half as a positive, half as
a negative example). Training examples come from every row three times (:func:`training_table`):
with its full marker list and with only its top 5 and top 3 markers, so the model also learns how
evidence looks for the short marker lists people type by hand (with 10 markers only, it preferred
``mature NK T cell`` over ``natural killer cell`` for ``GNLY, NKG7, KLRD1, KLRF1, PRF1``).

The figure that counts for the shipped model is the leave-one-dataset-out cross-validation
(:func:`cross_validate`): each dataset's full marker lists are scored by a model trained on the
other datasets only (``benchmarks/bench_grounded.py`` prints it).

The confidence of the choice is calibrated by :func:`fit_calibration` on out-of-dataset
probabilities (so the calibration sees the re-ranker as it behaves on data it was not trained on);
``cross_validate(..., calibrate=True)`` nests that inside the leave-one-dataset-out loop, and
:func:`calibration_report` gives its ECE per group, against agreement and against exact matches, beside
the ECE that the group's size alone gives (:func:`ece_noise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate import score_labels
from ..grounded import (
    CONTEXT_FEATURES,
    FEATURES,
    TOP_K,
    Calibration,
    Candidate,
    Reranker,
    chosen_index,
    context,
    retrieve,
)
from .gptcelltype import marker_genes, species_of

#: Inverse regularisation strength of the logistic regression.
C = 0.3
#: Marker-list lengths of the training examples (``None``: the full list).
TRAIN_LENGTHS = (None, 5, 3)
#: Inverse regularisation strength of the calibration's logistic regression.
CALIBRATION_C = 1.0


def fit(candidates: pd.DataFrame, *, features: Sequence[str] = FEATURES, C: float = C,
        info: dict[str, Any] | None = None) -> Reranker:
    """Fit a re-ranker on a :func:`candidate_table` (needs its ``agreement`` column)."""
    y = candidates["agreement"].to_numpy(dtype=float)
    mean, scale, coef, intercept = _soft_logistic(candidates[list(features)].to_numpy(dtype=float), y, C)
    return Reranker(tuple(features), mean, scale, coef, intercept,
                    dict(info or {}, C=C, n_examples=int(len(y)), n_clusters=int(candidates["row"].nunique())))


def _soft_logistic(X: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A logistic regression on standardised ``X`` with soft targets ``y`` in [0, 1]: each example twice,
    as a positive weighted by ``y`` and a negative by ``1 - y``. Returns the standardisation (mean,
    scale), the weights and the intercept."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn loads slowly: only when fitting

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    w = np.r_[y, 1.0 - y]
    keep = w > 0
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(np.vstack([Z, Z])[keep], np.r_[np.ones(len(y)), np.zeros(len(y))][keep], sample_weight=w[keep])
    return mean, scale, model.coef_[0].copy(), float(model.intercept_[0])


def candidate_table(table: pd.DataFrame, *, k: int = TOP_K, score: bool = True,
                    n_markers: int | None = None) -> pd.DataFrame:
    """Candidates of every row of a GPTCelltype-format table, one row per (table row, candidate).

    Columns: ``row``, ``dataset``, ``rank`` (base retrieval rank, 0 = best), ``cl_id``, ``name``,
    ``evidence`` and ``named`` (comma-joined), ``by_ancestor`` (:class:`~cellscribe.grounded.Candidate`), every feature,
    and with ``score`` the candidate's ``agreement`` with
    the row's expert label (the GPTCelltype scorer of :mod:`cellscribe.evaluate`). ``n_markers``
    keeps only each row's top markers.
    """
    records = []
    for i, r in enumerate(table.itertuples(index=False)):
        genes = marker_genes(r.marker)
        species = getattr(r, "species", None) or species_of(genes)
        genes = genes[:n_markers] if n_markers else genes
        tissue = r.tissue if isinstance(r.tissue, str) else None
        for rank, c in enumerate(retrieve(genes, tissue=tissue, species=species, k=k)):
            records.append({"row": i, "dataset": r.dataset, "rank": rank, "cl_id": c.cl_id, "name": c.name,
                            "evidence": ",".join(c.evidence), "named": ",".join(c.named), "by_ancestor": c.by_ancestor,
                            **c.features})
    df = pd.DataFrame.from_records(records)
    if score and not df.empty:
        truth = table.iloc[df["row"].to_numpy()]
        scored = score_labels(df["name"].tolist(), truth["manual_annotation"].tolist(),
                              truth_cl_ids=truth["manual_CLID"].tolist() if "manual_CLID" in truth else None,
                              truth_broad=truth["manual_broadtype"].tolist() if "manual_broadtype" in truth else None)
        df["agreement"] = scored["agreement"].to_numpy()
    return df


def choose(candidates: pd.DataFrame, probabilities: np.ndarray | None = None) -> pd.DataFrame:
    """One chosen candidate per table row: the re-ranker's choice (:func:`~cellscribe.grounded.chosen_index`),
    or the base rank 0 without probabilities. Adds ``confidence`` (the choice's probability, or ``None``)."""
    df = candidates.copy()
    if probabilities is None:
        best = df[df["rank"] == 0].copy()
        best["confidence"] = np.nan
        return best.set_index("row")
    df["confidence"] = probabilities
    idx = [g.index[chosen_index(_as_candidates(g))] for _row, g in df.groupby("row", sort=False)]
    chosen = df.loc[idx]
    chosen["confidence"] = df.groupby("row", sort=False)["confidence"].max().to_numpy()  # the type it refines
    return chosen.set_index("row")


def _as_candidates(rows: pd.DataFrame, probability: str = "confidence") -> list[Candidate]:
    """A cluster's candidate-table rows as :class:`~cellscribe.grounded.Candidate` objects (the
    features the choice and its context read)."""
    return [Candidate(r.cl_id, r.name, r.hyper_all + r.hyper_tissue, tuple(str(r.evidence).split(",")),
                      {"hyper_tissue": r.hyper_tissue, "tissue_share": r.tissue_share},
                      probability=getattr(r, probability),
                      named=tuple(str(r.named).split(",")) if getattr(r, "named", "") else (),
                      by_ancestor=bool(getattr(r, "by_ancestor", False)))
            for r in rows.itertuples(index=False)]


def training_table(table: pd.DataFrame, *, k: int = TOP_K, lengths: Sequence[int | None] = TRAIN_LENGTHS
                   ) -> pd.DataFrame:
    """Candidate tables of every row at each marker-list length, stacked: ``length`` says which
    (0 = full list) and ``row`` becomes ``"<length>:<row>"`` so that each list is its own cluster."""
    parts = []
    for n in lengths:
        part = candidate_table(table, k=k, n_markers=n)
        part["length"] = n or 0
        part["row"] = [f"{n or 0}:{r}" for r in part["row"]]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def cross_validate(candidates: pd.DataFrame, train: pd.DataFrame | None = None, *,
                   features: Sequence[str] = FEATURES, C: float = C, calibrate: bool = False) -> np.ndarray:
    """Out-of-dataset probabilities for every candidate of ``candidates``: for each ``dataset``, a
    model trained on the other datasets' rows of ``train`` (default: ``candidates`` itself).

    With ``calibrate``, each dataset's probabilities are also calibrated as :meth:`Reranker.rerank`
    does, by a :func:`fit_calibration` on the other datasets' out-of-dataset probabilities (a
    leave-one-dataset-out loop inside the outer one; full marker lists only where ``train`` has a
    ``length`` column), so the top probability of every row is its cross-validated confidence."""
    train = candidates if train is None else train
    probs = np.full(len(candidates), np.nan)
    groups = candidates["dataset"].fillna("(none)").to_numpy()
    train_groups = train["dataset"].fillna("(none)").to_numpy()
    for g in np.unique(groups):
        test = groups == g
        rest = train[train_groups != g]
        model = fit(rest, features=features, C=C)
        probs[test] = model.probabilities(candidates.loc[test, list(features)].to_numpy(dtype=float))
        if calibrate:
            full = rest[rest["length"] == 0] if "length" in rest else rest
            cal = fit_calibration(choices(full, cross_validate(full, rest, features=features, C=C)))
            probs[test] = calibrated(candidates[test], probs[test], cal)
    return probs


def choices(candidates: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """The most probable candidate of every row with its ``probability``, ``agreement`` (when
    scored) and its :data:`~cellscribe.grounded.CONTEXT_FEATURES` among the row's candidates."""
    df = candidates.assign(probability=probabilities)
    records = []
    for _row, g in df.groupby("row", sort=False):
        cands = _as_candidates(g, "probability")
        best = chosen_index(cands)
        records.append({**g.iloc[best].to_dict(), "probability": g["probability"].max(),
                        **context(cands[best], cands)})
    return pd.DataFrame.from_records(records)


def fit_calibration(chosen: pd.DataFrame, *, C: float = CALIBRATION_C) -> Calibration:
    """Fit the confidence calibration on :func:`choices` made with out-of-dataset probabilities
    (soft targets: each choice counts as a positive weighted by its agreement, a negative by the rest)."""
    p = np.clip(chosen["probability"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    X = np.column_stack([np.log(p / (1 - p)), chosen[list(CONTEXT_FEATURES)].to_numpy(dtype=float)])
    mean, scale, coef, intercept = _soft_logistic(X, chosen["agreement"].to_numpy(dtype=float), C)
    return Calibration(("logit", *CONTEXT_FEATURES), mean, scale, coef, intercept)


def calibrated(candidates: pd.DataFrame, probabilities: np.ndarray, calibration: Calibration) -> np.ndarray:
    """``probabilities`` of every candidate scaled per row, as :meth:`Reranker.rerank` does, so that
    each row's top one is its calibrated confidence."""
    chosen = choices(candidates, probabilities)
    conf = calibration.confidence(chosen["probability"].to_numpy(), chosen[list(CONTEXT_FEATURES)].to_numpy())
    factor = pd.Series(conf / np.maximum(chosen["probability"].to_numpy(), 1e-12), index=chosen["row"].to_numpy())
    return np.asarray(probabilities) * factor.loc[candidates["row"].to_numpy()].to_numpy()


def calibration_report(confidence: Sequence[float], agreement: Sequence[float], groups: Sequence[str], *,
                       bins: int = 10) -> pd.DataFrame:
    """Calibration per group and overall (``"all"``): ``n``, mean ``confidence`` and ``agreement``,
    the ECE against agreement (``ece``) and against exact matches, agreement 1 (``ece_exact``), and
    the ECE that perfectly calibrated confidences would show on as many choices (``ece_noise``,
    :func:`ece_noise`): a small group's ECE is mostly noise."""
    df = pd.DataFrame({"c": np.asarray(confidence, dtype=float), "a": np.asarray(agreement, dtype=float),
                       "g": list(groups)})
    rows = {}
    for name, part in [("all", df), *df.groupby("g", sort=False)]:
        rows[name] = {"n": len(part), "confidence": part["c"].mean(), "agreement": part["a"].mean(),
                      "ece": expected_calibration_error(part["c"], part["a"], bins=bins)[0],
                      "ece_exact": expected_calibration_error(part["c"], part["a"] == 1, bins=bins)[0],
                      "ece_noise": ece_noise(part["c"], half_share=float((part["a"] == 0.5).mean()), bins=bins)}
    return pd.DataFrame.from_dict(rows, orient="index")


def ece_noise(confidence: Sequence[float], *, half_share: float = 0.0, bins: int = 10, draws: int = 200,
              seed: int = 0) -> float:
    """Mean ECE of perfectly calibrated ``confidence``: outcomes drawn with mean equal to each
    confidence (agreement 0.5 with probability ``half_share`` where the confidence allows it, else 0
    or 1), ``draws`` times with a fixed seed. Any ECE near this figure is what the number of choices
    alone gives."""
    conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    half = np.minimum(half_share, 2 * np.minimum(conf, 1 - conf))
    high = np.where(half < 1, (conf - 0.5 * half) / np.maximum(1 - half, 1e-12), 0.0)
    rng = np.random.default_rng(seed)
    eces = []
    for _ in range(draws):
        u = rng.random(len(conf))
        outcome = np.where(u < half, 0.5, (rng.random(len(conf)) < high).astype(float))
        eces.append(expected_calibration_error(conf, outcome, bins=bins)[0])
    return float(np.mean(eces))


def expected_calibration_error(confidence: Sequence[float], outcome: Sequence[float], *, bins: int = 10
                               ) -> tuple[float, pd.DataFrame]:
    """ECE of ``confidence`` against ``outcome`` (agreement 0 / 0.5 / 1) with equal-width bins.

    Returns
    -------
    ``(ece, table)``: the weighted mean gap between mean confidence and mean outcome per bin, and the
    per-bin table (``bin``, ``n``, ``confidence``, ``outcome``) for a reliability diagram.
    """
    conf = np.asarray(confidence, dtype=float)
    out = np.asarray(outcome, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        gap = abs(conf[m].mean() - out[m].mean())
        ece += m.mean() * gap
        rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(m.sum()),
                     "confidence": float(conf[m].mean()), "outcome": float(out[m].mean())})
    return float(ece), pd.DataFrame(rows)
