"""Infer a sample's tissue from its clusters' markers when none is given.

Each cluster votes with its re-ranked top candidates (:data:`TOP`, weighted by probability): a
candidate's organ profile is the share of its marker-database records per organ (the databases'
tissue names read by :func:`cellscribe.knowledge.anatomy.tissue_organs`; names that name no organ
do not count). An organ's score is the mean over clusters of the log-lift of the cluster's organ
share over the databases' background share (smoothed by :data:`SMOOTHING`), so that cells found
everywhere (T cells, fibroblasts) say little and organ-specific cells say much.

:func:`cellscribe.annotate` uses a confident guess (:attr:`TissueGuess.confident`) as the tissue
when none is given. On the GPTCelltype development table with its tissue column removed
(``benchmarks/bench_grounded.py --tissue-inference``, each dataset with the re-ranker trained on the
others), the organ was right for 28 of 51 samples (249 of 377 clusters; 16 of the 23 confident
guesses); re-ranking with the confident guesses as the tissue scored as re-ranking without one
(leave-one-dataset-out 0.600 and 0.600; with every guess 0.596: a wrong organ removes the right types
as implausible), and on the bundled pancreas and oligodendroglioma, where the guess is confident and
right, it scored as well as the true tissue (README). :data:`TOP` and
:data:`SMOOTHING` were chosen on that table among 3 or 5 and 0.02 to 0.2 (organ accuracy, not
cross-validated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..knowledge import anatomy
from ._index import get_index
from ._rerank import Reranker, candidates

#: Candidates per cluster that vote, weighted by their probability.
TOP = 3
#: Added to both shares of the log-lift (an organ no candidate names scores ``log(SMOOTHING / ...)``).
SMOOTHING = 0.05
#: The least margin (score of the best organ minus the runner-up's) of a confident guess.
MIN_MARGIN = 0.3


@dataclass(frozen=True)
class TissueGuess:
    """The organ a sample's markers point to.

    Attributes
    ----------
    organ, score
        The best organ (as :func:`cellscribe.knowledge.anatomy.tissue_organs` names it) and its
        score (mean log-lift over clusters); ``organ`` is ``None`` when no cluster's types are recorded
        in any organ.
    runner_up, margin
        The second organ and how far the best one's score is above it.
    """

    organ: str | None
    score: float = 0.0
    runner_up: str | None = None
    margin: float = 0.0

    @property
    def confident(self) -> bool:
        """Whether the margin over the runner-up reaches :data:`MIN_MARGIN`."""
        return self.organ is not None and self.margin >= MIN_MARGIN

    def __str__(self) -> str:
        if self.organ is None:
            return "tissue not inferred (no marker points to an organ)"
        hedge = "" if self.confident else ", uncertain"
        return f"tissue inferred: {self.organ} (ahead of {self.runner_up} by {self.margin:.2f}{hedge})"


def infer_tissue(marker_lists: Sequence[Sequence[str]], *, species: str = "human",
                 reranker: Reranker | None = None) -> TissueGuess:
    """The organ that the clusters of one sample (one marker list per cluster) most likely come
    from; see the module docstring. ``reranker`` defaults to the shipped one."""
    background = _background(species)
    totals = dict.fromkeys(background, 0.0)
    n = 0
    for genes in marker_lists:
        ranked = candidates(list(genes), tissue=None, species=species, reranker=reranker)[:TOP]
        share: dict[str, float] = {}
        weight = 0.0
        for c in ranked:
            profile = _organ_profile(species, c.cl_id)
            if not profile:
                continue
            weight += c.probability or 0.0
            for organ, v in profile.items():
                share[organ] = share.get(organ, 0.0) + (c.probability or 0.0) * v
        if weight <= 0:
            continue
        n += 1
        for organ, b in background.items():
            totals[organ] += math.log((share.get(organ, 0.0) / weight + SMOOTHING) / (b + SMOOTHING))
    if not n:
        return TissueGuess(None)
    ranked_organs = sorted(((v / n, o) for o, v in totals.items()), reverse=True)
    (best, organ), (second, runner_up) = ranked_organs[0], ranked_organs[1]
    return TissueGuess(organ, best, runner_up, best - second)


@lru_cache(maxsize=4096)
def _organ_profile(species: str, cl_id: str) -> dict[str, float]:
    """Share of a term's records per organ (records of tissues that name no organ left out)."""
    counts: dict[str, float] = {}
    for tissue, n in get_index(species).tissues.get(cl_id, {}).items():
        organs = anatomy.tissue_organs(tissue)
        for organ in organs:
            counts[organ] = counts.get(organ, 0.0) + n / len(organs)
    total = sum(counts.values())
    return {o: v / total for o, v in counts.items()} if total else {}


@lru_cache(maxsize=2)
def _background(species: str) -> dict[str, float]:
    """Share of all records per organ, over every term."""
    counts: dict[str, float] = {}
    index = get_index(species)
    for cl_id, records in index.tissues.items():
        total = sum(records.values())
        for organ, v in _organ_profile(species, cl_id).items():
            counts[organ] = counts.get(organ, 0.0) + v * total
    total = sum(counts.values())
    return {o: v / total for o, v in counts.items()}
