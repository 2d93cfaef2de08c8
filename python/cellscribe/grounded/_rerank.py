"""Re-rank retrieval candidates with a small learned model, and choose among them.

The model is a logistic regression over the candidate features of
:data:`~cellscribe.grounded.FEATURES` (standardised); its probability estimates how much
GPTCelltype agreement a candidate earns; the chosen type is the candidate with the highest
probability, and that probability is its confidence. How it is trained and cross-validated (by
dataset) is :mod:`cellscribe.benchmark.reranker`; the shipped model (``reranker.json`` beside this
module) was trained on every row of ``dev.csv`` by ``benchmarks/bench_grounded.py --fit``.
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


@dataclass(frozen=True)
class Reranker:
    """A fitted re-ranker: standardisation and logistic-regression weights per feature."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    info: dict[str, Any]

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def rerank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates with ``probability`` set, most probable first."""
        if not candidates:
            return []
        X = np.array([[c.features[f] for f in self.features] for c in candidates], dtype=float)
        probs = self.probabilities(X)
        out = [replace(c, probability=float(p)) for c, p in zip(candidates, probs, strict=True)]
        return sorted(out, key=lambda c: -(c.probability or 0.0))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept, "info": self.info}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reranker:
        return cls(tuple(data["features"]), np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["coef"]), float(data["intercept"]), dict(data.get("info", {})))

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
