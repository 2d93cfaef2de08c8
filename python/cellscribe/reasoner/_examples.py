"""Training examples for the three fine-tuning stages, in the annotator's own prompt format.

1. **Reasoning scaffold** (:func:`scaffold_examples`): labelled reference cells with
   marker-by-marker answers (or a ``teacher`` backend's), balanced by type.
2. **Knowledge infusion** (:func:`knowledge_examples`): question/answer pairs from CellMarker 2.0
   and the Cell Ontology.
3. **Reasoning-mode fusion** (:func:`fusion_examples`): the scaffold mixed with part of the
   knowledge pairs.

:func:`stage_data` builds all of them, with the held-out scaffold examples that measure the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._answer import answer_pieces
from ._evidence import SentenceMarkers, explain, pick_cells, teacher_explain
from ._knowledge import QAPair, knowledge_pairs
from ._prompt import build_prompt
from ._reference import reference_sentences
from ._sentences import DEFAULT_N_GENES

if TYPE_CHECKING:
    from anndata import AnnData

    from ..llm import Backend


@dataclass
class Example:
    """One training example: the chat messages and the target pieces of the assistant's reply."""

    messages: list[dict[str, str]]
    pieces: list[str]
    kind: str  # "reasoning" or "knowledge"

    @property
    def target(self) -> str:
        return "".join(self.pieces)


@dataclass
class StageData:
    """The examples of each stage (``{stage: examples}``) and the held-out ones."""

    stages: dict[int, list[Example]]
    held_out: list[Example]


def scaffold_examples(
    reference: AnnData,
    label_key: str,
    *,
    ranking: Sequence[str],
    n_genes: int = DEFAULT_N_GENES,
    n_per_type: int = 20,
    candidates: Sequence[str] | None = None,
    tissue: str | None = None,
    species: str = "human",
    teacher: Backend | None = None,
    exclude: Sequence[int] = (),
    seed: int = 0,
    use_raw: bool | None = None,
    layer: str | None = None,
) -> list[Example]:
    """Stage-1 examples: labelled reference cells with marker-by-marker answers, balanced by type.

    The prompt is the zero-shot prompt of :func:`~cellscribe.reasoner.annotate_cells` with the
    same candidates; cells are drawn at random (``seed``), ``n_per_type`` per type, skipping the
    positions in ``exclude``.
    """
    sentences, labels = reference_sentences(reference, label_key, list(ranking), n_genes, use_raw=use_raw, layer=layer)
    markers = SentenceMarkers.fit(sentences, labels)
    banned = set(exclude)
    pool = [i for i in range(len(labels)) if i not in banned and sentences[i]]
    picked = pick_cells([labels[i] for i in pool], n_per_type, typical=False, seed=seed)
    prompt = build_prompt(candidates=candidates, tissue=tissue, species=species)
    out = []
    for j in picked:
        i = pool[j]
        answer = (teacher_explain(teacher, sentences[i], labels[i], markers, seed=seed) if teacher is not None
                  else explain(sentences[i], labels[i], markers))
        out.append(Example(prompt.messages(sentences[i]), answer_pieces(answer), "reasoning"))
    return out


def knowledge_examples(pairs: Sequence[QAPair]) -> list[Example]:
    """Stage-2 examples from question/answer pairs (plain-text answers)."""
    return [Example(p.messages(), [p.answer], "knowledge") for p in pairs]


def fusion_examples(scaffold: Sequence[Example], knowledge: Sequence[Example], *, knowledge_fraction: float = 0.5,
                    seed: int = 0) -> list[Example]:
    """Stage-3 examples: all the scaffold plus ``knowledge_fraction`` × its size of knowledge pairs."""
    rng = np.random.default_rng(seed)
    n = min(len(knowledge), int(round(len(scaffold) * knowledge_fraction)))
    picked = [knowledge[i] for i in sorted(rng.choice(len(knowledge), size=n, replace=False))] if n else []
    mixed = list(scaffold) + picked
    return [mixed[i] for i in rng.permutation(len(mixed))]


def held_out_positions(reference: AnnData, label_key: str, examples: Sequence[Example], ranking: Sequence[str],
                       n_genes: int, use_raw: bool | None, layer: str | None) -> list[int]:
    """Positions (among labelled reference cells) whose prompts are those of ``examples``."""
    sentences, _ = reference_sentences(reference, label_key, list(ranking), n_genes, use_raw=use_raw, layer=layer)
    users = {e.messages[-1]["content"] for e in examples}
    prompt = build_prompt()
    return [i for i, s in enumerate(sentences) if prompt.user(s) in users]


def stage_data(
    reference: AnnData,
    label_key: str,
    *,
    stages: Sequence[int],
    ranking: Sequence[str],
    n_genes: int,
    n_per_type: int,
    n_eval: int,
    n_types: int,
    candidates: Sequence[str] | None,
    tissue: str | None,
    species: str,
    knowledge_tissue: str | None,
    n_knowledge: int,
    knowledge_fraction: float,
    teacher: Backend | None,
    seed: int,
    use_raw: bool | None,
    layer: str | None,
) -> StageData:
    """Every stage's examples; ``n_eval`` scaffold examples (else knowledge pairs) held out of training."""
    scaffold: list[Example] = []
    held_out: list[Example] = []
    if 1 in stages or 3 in stages:
        cells = {"ranking": ranking, "n_genes": n_genes, "use_raw": use_raw, "layer": layer}
        prompt = {"candidates": candidates, "tissue": tissue, "species": species}
        held_out = scaffold_examples(reference, label_key, n_per_type=max(1, math.ceil(n_eval / max(1, n_types))),
                                     seed=seed + 1000, **cells, **prompt)[:n_eval]
        held_positions = held_out_positions(reference, label_key, held_out, ranking, n_genes, use_raw, layer)
        scaffold = scaffold_examples(reference, label_key, n_per_type=n_per_type, teacher=teacher,
                                     exclude=held_positions, seed=seed, **cells, **prompt)
    knowledge: list[Example] = []
    if 2 in stages or 3 in stages:
        knowledge = knowledge_examples(knowledge_pairs(species=species, tissue=knowledge_tissue,
                                                       max_pairs=n_knowledge, seed=seed))
    if not held_out:
        held_out = knowledge[:n_eval]
    fusion = fusion_examples(scaffold, knowledge, knowledge_fraction=knowledge_fraction, seed=seed)
    return StageData({1: scaffold, 2: knowledge, 3: fusion}, held_out)
