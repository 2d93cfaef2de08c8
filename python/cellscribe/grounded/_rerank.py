"""Re-rank retrieval candidates with a small learned model, and choose among them.

The model is a logistic regression over the candidate features of
:data:`~cellscribe.grounded.FEATURES` (standardised); its probability estimates how much
GPTCelltype agreement a candidate earns, and the chosen type is the candidate with the highest
probability, or a subtype of it whose name states one of the cluster's leading markers when
the model finds it nearly as probable (:func:`chosen_index`). The confidence of that choice is
then calibrated (:class:`Calibration`, fitted on out-of-dataset probabilities) from the
probability and the choice's context
(:data:`CONTEXT_FEATURES`, :func:`context`): it falls when the choice is generic although a
subtype among the candidates has support of its own, and when the tissue's records do not back
it. The row's probabilities are scaled so that the top one is the calibrated confidence (the order
and the ratios between candidates stay the re-ranker's). How both are trained and cross-validated
(by dataset) is :mod:`cellscribe.benchmark.reranker`; the shipped model (``reranker.json`` beside
this module) was trained on every row of ``dev.csv`` by ``benchmarks/bench_grounded.py --fit``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..knowledge import ontology, ontology_markers
from ._retrieval import Candidate, retrieve

#: Candidates per cluster the re-ranker chooses from.
TOP_K = 10
MODEL_FILE = "reranker.json"
#: Near-tie margin on the re-ranker's probability, and the most candidates the model chooses from.
#: 0 by default, chosen by measurement: with 0.1 the model chose among near-ties in 187 of 447
#: dev.csv rows and the leave-one-dataset-out mean agreement fell from 0.601 (re-ranker alone) to
#: 0.592, so the re-ranker's choice stands and the model explains it.
MARGIN = 0.0
MAX_CHOICES = 3
#: The label of a cluster none of whose markers the databases know.
UNMAPPED = "unmapped"
#: What the calibration reads besides the re-ranker's log-odds (:func:`context`).
CONTEXT_FEATURES = ("sub_candidate", "sub_candidate_ratio", "sub_extra_evidence", "hyper_tissue", "tissue_share")
#: ``sub_candidate_ratio`` is capped here: a subtype scoring twice the choice is clearly better, and a
#: choice with a score near 0 would otherwise give ratios in the thousands that swamp the scaling.
SUB_RATIO_CAP = 2.0
#: A subtype of the most probable type is chosen instead when its name states a gene the type's
#: name does not and that gene is among the cluster's top markers (``Candidate.named``), and the
#: re-ranker finds it at least this probable relative to the type: "sst GABAergic interneuron"
#: over "interneuron" when Sst leads the markers. dev.csv holds almost no such case: any ratio from
#: 0.45 to 0.8 gives the same choices there (2 of 447 change against no rule: T cell -> CD4-/CD8-positive
#: T cell; at 0.4 a uterine NK list led by KLRC1, TMIGD2, NCAM1 becomes CD56-bright NK), and so do
#: pbmc68k_reduced, wu2020 and oligodendroglioma from 0.5 to 0.65. 0.5 (half as probable as its
#: parent) lets literature marker lists of all five mouse cortical interneuron classes name their
#: subtype: the re-ranker rates these thinly recorded types 0.69-0.97 of their parent for Sst, Vip,
#: Lamp5 and Sncg, and 0.52-0.55 for Pvalb.
SUBTYPE_RATIO = 0.5


def chosen_index(ranked: Sequence[Candidate]) -> int:
    """Which of a cluster's candidates (``probability`` set) is chosen: the most probable, or a
    subtype of it whose name states a leading marker (:data:`SUBTYPE_RATIO`)."""
    probs = [c.probability or 0.0 for c in ranked]
    best = int(np.argmax(probs))
    top = ranked[best]
    cl = ontology.get()
    stated = set(ontology_markers.name_genes(top.cl_id))
    subtypes = [i for i, c in enumerate(ranked)
                if i != best and probs[i] >= SUBTYPE_RATIO * probs[best] and set(c.named) - stated
                and top.cl_id in cl.ancestors(c.cl_id)]
    return max(subtypes, key=lambda i: probs[i]) if subtypes else best


def context(chosen: Candidate, ranked: Sequence[Candidate]) -> dict[str, float]:
    """The context of a choice among candidates, by :data:`CONTEXT_FEATURES`: whether a subtype
    (Cell Ontology descendant) of the choice is also a candidate (``sub_candidate``), the best such
    subtype's retrieval score relative to the choice's (``sub_candidate_ratio``, at most
    :data:`SUB_RATIO_CAP`), the most evidence genes a subtype has that the choice lacks
    (``sub_extra_evidence``), and the choice's own tissue features (``hyper_tissue``,
    ``tissue_share``; 0 without a tissue). Subtypes that are candidates for their ancestor's
    support only (``Candidate.by_ancestor``) do not count."""
    cl = ontology.get()
    subs = [c for c in ranked
            if c.cl_id != chosen.cl_id and not c.by_ancestor and chosen.cl_id in cl.ancestors(c.cl_id)]
    own = set(chosen.evidence)
    return {
        "sub_candidate": float(bool(subs)),
        "sub_candidate_ratio": min(SUB_RATIO_CAP, max((c.score / max(chosen.score, 1e-6) for c in subs), default=0.0)),
        "sub_extra_evidence": float(max((len(set(c.evidence) - own) for c in subs), default=0)),
        "hyper_tissue": chosen.features.get("hyper_tissue", 0.0),
        "tissue_share": chosen.features.get("tissue_share", 0.0),
    }


@dataclass(frozen=True)
class Calibration:
    """Platt scaling with context: the confidence of a choice is
    ``sigmoid(a * logit(p) + coef . standardised(context) + intercept)`` (``a`` is ``coef[0]``;
    the first entry of ``features`` is ``"logit"``)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def confidence(self, probability: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Calibrated confidences of choices with re-ranker ``probability`` (n,) and context (n, m)."""
        p = np.clip(np.asarray(probability, dtype=float), 1e-6, 1 - 1e-6)
        X = np.column_stack([np.log(p / (1 - p)), np.asarray(ctx, dtype=float).reshape(len(p), -1)])
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(tuple(data["features"]), np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["coef"]), float(data["intercept"]))


@dataclass(frozen=True)
class Reranker:
    """A fitted re-ranker: standardisation and logistic-regression weights per feature, and the
    calibration of its choice's confidence (``None``: the probability is the confidence)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    info: dict[str, Any]
    calibration: Calibration | None = None

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """The re-ranker's (uncalibrated) probability of each row of features ``X``."""
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def rerank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates with ``probability`` set, most probable first; with a calibration, every
        probability is scaled so that the first is the calibrated confidence of choosing it."""
        if not candidates:
            return []
        X = np.array([[c.features[f] for f in self.features] for c in candidates], dtype=float)
        probs = self.probabilities(X)
        out = sorted((replace(c, probability=float(p)) for c, p in zip(candidates, probs, strict=True)),
                     key=lambda c: -(c.probability or 0.0))
        chosen = chosen_index(out)
        if chosen:  # an earned subtype goes first, with the probability of the type it refines
            out.insert(0, replace(out.pop(chosen), probability=out[0].probability))
        if self.calibration is None:
            return out
        top = out[0].probability or 0.0
        ctx = context(out[0], out)
        conf = float(self.calibration.confidence(np.array([top]), np.array([[ctx[f] for f in CONTEXT_FEATURES]]))[0])
        factor = conf / top if top > 0 else 0.0
        return [replace(c, probability=(c.probability or 0.0) * factor) for c in out]

    def to_json(self) -> dict[str, Any]:
        out = {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
               "coef": self.coef.tolist(), "intercept": self.intercept, "info": self.info}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reranker:
        cal = data.get("calibration")
        return cls(tuple(data["features"]), np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["coef"]), float(data["intercept"]), dict(data.get("info", {})),
                   Calibration.from_json(cal) if cal else None)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")


@lru_cache(maxsize=1)
def default_reranker() -> Reranker:
    """The re-ranker shipped with cellscribe (trained on all of dev.csv; see the module docstring)."""
    text = resources.files(__package__).joinpath(MODEL_FILE).read_text()
    return Reranker.from_json(json.loads(text))


def candidates(genes: Sequence[str], *, tissue: str | None = None, species: str = "human",
               k: int = TOP_K, reranker: Reranker | None = None) -> list[Candidate]:
    """Retrieval then re-ranking: candidates for a cluster, most probable first, with
    ``probability`` set (the re-ranker's estimate of the candidate's agreement). ``reranker``
    defaults to the shipped one."""
    model = reranker or default_reranker()
    return model.rerank(retrieve(list(genes), tissue=tissue, species=species, k=k))


def near_ties(ranked: list[Candidate], *, margin: float = MARGIN, max_choices: int = MAX_CHOICES) -> list[Candidate]:
    """The best candidate and those within ``margin`` of its probability (at most ``max_choices``)."""
    if not ranked:
        return []
    top = ranked[0].probability or 0.0
    return [c for c in ranked[:max_choices] if (c.probability or 0.0) >= top - margin]
