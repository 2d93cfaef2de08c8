"""Stage-2 knowledge: question/answer pairs from CellMarker 2.0 and the Cell Ontology.

CRAFT's second stage infuses facts the model lacks. The pairs are generated, not written:

* from CellMarker 2.0 (:mod:`cellscribe.knowledge.cellmarker`), for the cell types recorded in
  the tissue, best-supported markers first: "Which cell type expresses X, Y and Z in human
  blood?" and "Name marker genes of <type> in human blood.";
* from the Cell Ontology (:mod:`cellscribe.knowledge.ontology`), for the same types where
  CellMarker gives a CL ID: the term's ID, its parent type, and a synonym.

Answers are plain text (the facts, not the reasoning format): stage 3 restores the format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..knowledge import cellmarker, ontology

log = logging.getLogger(__name__)

#: The system message of knowledge questions.
SYSTEM = "You are an expert in single-cell biology and cell-type marker genes."
#: Question and answer phrasings, by kind.
QUESTIONS = {
    "type_from_markers": ("Which cell type expresses {markers} in {species} {tissue}?", "{name}{cl}"),
    "markers_of_type": ("Name marker genes of {name} in {species} {tissue}.", "{markers}"),
    "cl_id": ("What is the Cell Ontology ID of {name}?", "{cl_id}"),
    "parent": ("In the Cell Ontology, what kind of cell is {name}?", "{name} is a {parent} ({parent_id})."),
    "synonym": ("What is another name for {name}?", "{synonym}"),
}


@dataclass(frozen=True)
class QAPair:
    """One question, its answer, and where the fact comes from."""

    question: str
    answer: str
    kind: str
    source: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.question}]


def _join(genes: list[str]) -> str:
    return ", ".join(genes[:-1]) + f" and {genes[-1]}" if len(genes) > 1 else genes[0]


def knowledge_pairs(
    *,
    species: str = "human",
    tissue: str | None = None,
    n_types: int = 60,
    n_markers: int = 4,
    max_pairs: int | None = 300,
    seed: int = 0,
) -> list[QAPair]:
    """Question/answer pairs about the cell types CellMarker records in a tissue.

    Parameters
    ----------
    species
        ``"human"`` or ``"mouse"``.
    tissue
        A CellMarker tissue or tissue class (``"Blood"``, ``"Peripheral blood"``, case ignored);
        ``None`` for all tissues.
    n_types
        The most-recorded cell types taken (normal cells only).
    n_markers
        Markers per question.
    max_pairs
        Keep at most this many pairs (a seeded sample, all kinds represented).
    seed
        Sampling seed.

    Returns
    -------
    :class:`QAPair` records (kinds: ``type_from_markers``, ``markers_of_type``, ``cl_id``,
    ``parent``, ``synonym``).
    """
    table = cellmarker.load(species)
    table = table[~table["is_cancer"]]
    where = "all tissues"
    if tissue is not None:
        t = tissue.strip().lower()
        hit = (table["tissue"].str.lower() == t) | (table["tissue_class"].str.lower() == t)
        if not hit.any():
            raise InputError(f"CellMarker has no normal {species} records for tissue {tissue!r}; use a tissue "
                             "class such as 'Blood', 'Brain', 'Liver', or tissue=None for all tissues.")
        table, where = table[hit], tissue.strip().lower()
    counts = table.groupby("cell_name", observed=True).size().sort_values(ascending=False, kind="stable")
    names = [str(n) for n in counts.index[:n_types]]
    cl = ontology.get()
    pairs: list[QAPair] = []
    seen_ids: set[str] = set()
    for name in names:
        markers = cellmarker.canonical_markers(name, species=species, tissue=tissue, min_support=2, n=n_markers)
        genes = [str(g) for g in markers["symbol"]]
        ids = table.loc[table["cell_name"] == name, "cl_id"].dropna()
        cl_id = str(ids.mode().iloc[0]) if len(ids) else None
        values = {"name": name, "species": species, "tissue": where if tissue else "tissues",
                  "markers": _join(genes) if genes else "", "cl": f" ({cl_id})" if cl_id else "", "cl_id": cl_id}
        if len(genes) >= 2:
            pairs.append(_pair("type_from_markers", values, "CellMarker 2.0"))
            pairs.append(_pair("markers_of_type", {**values, "markers": ", ".join(genes)}, "CellMarker 2.0"))
        if cl_id and cl_id in cl and cl_id not in seen_ids:
            seen_ids.add(cl_id)
            term = cl.name(cl_id)
            pairs.append(_pair("cl_id", {**values, "name": term}, "Cell Ontology"))
            parents = cl.parents(cl_id)
            if parents:
                pairs.append(_pair("parent", {**values, "name": term, "parent": cl.name(parents[0]),
                                              "parent_id": parents[0]}, "Cell Ontology"))
            synonyms = cl.synonyms(cl_id)
            if synonyms:
                pairs.append(_pair("synonym", {**values, "name": term, "synonym": synonyms[0]}, "Cell Ontology"))
    if not pairs:
        raise InputError(f"No knowledge pairs could be made for {species} {where}.")
    if max_pairs is not None and len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(len(pairs), size=max_pairs, replace=False))
        pairs = [pairs[i] for i in keep]
    log.info("knowledge: %d Q&A pairs for %s %s", len(pairs), species, where)
    return pairs


def _pair(kind: str, values: dict[str, object], source: str) -> QAPair:
    question, answer = QUESTIONS[kind]
    return QAPair(question=question.format(**values), answer=answer.format(**values), kind=kind, source=source)
