"""Marker evidence from labelled reference cells: exemplars and chain-of-thought answers.

For every labelled type, a gene's *contrast* is the fraction of that type's cells whose sentence
holds the gene minus the fraction of the other cells: what a reader of cell sentences can
actually see. From it:

* :func:`explain` writes a reasoning answer for a labelled cell, marker by marker: the two or
  three genes of its sentence most typical of its type (positive markers), and one gene typical
  of the closest competing type that the cell does not express (a negative marker). These are
  the few-shot exemplars' answers and the stage-1 chain-of-thought targets.
* :func:`pick_cells` draws cells balanced by type (the most typical first, or at random).
* :func:`teacher_explain` lets a stronger backend write the rationale instead, checked against
  the sentence (a rationale that cites no gene of the sentence is replaced by :func:`explain`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import OutputFormatError
from ._answer import MAX_EVIDENCE_CHARS, CellAnswer, answer_schema, parse_answer
from ._prompt import teacher_messages

if TYPE_CHECKING:
    from ..llm import Backend

log = logging.getLogger(__name__)

#: The rationale's phrasing (positive markers, supporting marker, negative marker).
PHRASES = ("{g1}, {g2}: {label} markers", "{g3}: supports {label}", "no {neg}: not {other}")


@dataclass
class SentenceMarkers:
    """Per-type gene contrast in cell sentences (types × genes, -1 to 1)."""

    contrast: pd.DataFrame

    @classmethod
    def fit(cls, sentences: Sequence[Sequence[str]], labels: Sequence[str]) -> SentenceMarkers:
        """Fit on tokenised sentences and their labels."""
        labels = pd.Series([str(x) for x in labels])
        genes = pd.Index(sorted({g for s in sentences for g in s}))
        present = np.zeros((len(sentences), len(genes)), dtype=np.float32)
        for i, s in enumerate(sentences):
            present[i, genes.get_indexer(list(s))] = 1.0
        rows = {}
        for label in sorted(labels.unique()):
            inside = (labels == label).to_numpy()
            rows[label] = present[inside].mean(0) - (present[~inside].mean(0) if (~inside).any() else 0.0)
        return cls(pd.DataFrame(rows, index=genes).T)

    @property
    def types(self) -> list[str]:
        return list(self.contrast.index)

    def scores(self, sentence: Sequence[str]) -> pd.Series:
        """How well the sentence matches each type (sum of its genes' contrasts)."""
        genes = [g for g in sentence if g in self.contrast.columns]
        return self.contrast[genes].sum(axis=1) if genes else pd.Series(0.0, index=self.contrast.index)

    def top_markers(self, label: str, n: int = 10) -> list[str]:
        row = self.contrast.loc[label]
        return list(row[row > 0].sort_values(ascending=False, kind="stable").index[:n])


def explain(sentence: Sequence[str], label: str, markers: SentenceMarkers) -> CellAnswer:
    """A marker-by-marker answer for a cell whose label is known."""
    label = str(label)
    sentence = list(sentence)
    if label in markers.contrast.index:
        row = markers.contrast.loc[label]
        inside = [g for g in sentence if g in row.index]
        ranked = sorted(inside, key=lambda g: -float(row[g]))
    else:
        ranked = []
    positives = (ranked + [g for g in sentence if g not in ranked])[:3] or ["no ranked gene"]
    while len(positives) < 3:
        positives.append(positives[-1])
    scores = markers.scores(sentence).drop(label, errors="ignore")
    other, neg = None, None
    for candidate in scores.sort_values(ascending=False, kind="stable").index:
        missing = [g for g in markers.top_markers(candidate, 20) if g not in sentence]
        if missing:
            other, neg = candidate, missing[0]
            break
    items = [PHRASES[0].format(g1=positives[0], g2=positives[1], label=label),
             PHRASES[1].format(g3=positives[2], label=label)]
    if other is not None:
        items.append(PHRASES[2].format(neg=neg, other=other))
    else:
        items.append(PHRASES[1].format(g3=positives[1], label=label))
    return CellAnswer(evidence=[i[:MAX_EVIDENCE_CHARS] for i in items], label=label)


def pick_cells(
    labels: Sequence[str],
    n_per_type: int,
    *,
    sentences: Sequence[Sequence[str]] | None = None,
    markers: SentenceMarkers | None = None,
    typical: bool = True,
    seed: int = 0,
) -> list[int]:
    """Positions of up to ``n_per_type`` cells of every type, balanced.

    With ``typical`` (and sentences and markers given) the cells whose sentence matches their own
    type best come first; otherwise cells are drawn at random with ``seed``. The result is ordered
    type by type, interleaved (one of each type, then the second of each, ...).
    """
    labels = pd.Series([str(x) for x in labels])
    rng = np.random.default_rng(seed)
    per_type: list[list[int]] = []
    for label in sorted(labels.unique()):
        idx = np.flatnonzero((labels == label).to_numpy())
        idx = idx[rng.permutation(len(idx))]
        if typical and sentences is not None and markers is not None:
            own = [float(markers.scores(sentences[i]).get(label, 0.0)) for i in idx]
            idx = idx[np.argsort(-np.asarray(own), kind="stable")]
        per_type.append([int(i) for i in idx[:n_per_type]])
    out = []
    for k in range(n_per_type):
        out.extend(cells[k] for cells in per_type if k < len(cells))
    return out


def teacher_explain(
    teacher: Backend,
    sentence: Sequence[str],
    label: str,
    markers: SentenceMarkers,
    *,
    seed: int = 0,
) -> CellAnswer:
    """A rationale written by a stronger backend for a cell whose label is known.

    The teacher sees the sentence, the label and the type's typical genes (``reason_teacher.j2``);
    its label is fixed to the known one, and a rationale citing no gene of the sentence falls back
    to :func:`explain`.
    """
    fallback = explain(sentence, label, markers)
    try:
        response = teacher.chat(teacher_messages(sentence, label, markers.top_markers(label, 8)),
                                schema=answer_schema([label]), seed=seed, max_tokens=160)
        answer = parse_answer(response.content, [label])
    except OutputFormatError as exc:
        log.info("teacher answer unusable (%s); using the marker template", exc)
        return fallback
    cited = [e for e in answer.evidence if any(g in e for g in sentence)]
    if not cited:
        return fallback
    return CellAnswer(evidence=[e[:MAX_EVIDENCE_CHARS] for e in answer.evidence], label=label)
