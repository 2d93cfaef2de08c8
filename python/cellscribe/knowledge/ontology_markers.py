"""Marker genes the Cell Ontology's term names state.

Modern Cell Ontology terms name their defining marker: ``"sst GABAergic interneuron"``,
``"VIP GABAergic interneuron"``, ``"small intestine BEST4+ enterocyte"``, ``"CD8-positive,
alpha-beta T cell"``. The grounded choice reads these to name a subtype its leading marker defines
(:func:`cellscribe.grounded.chosen_index`).

A word of a name is a marker when it is an official gene symbol (org.Hs.eg.db, through
:mod:`cellscribe.knowledge.genes`) of at least three characters (or ``TH``), or a CD antigen
(``CD11b`` -> ``ITGAM``). Words the ontology uses for other things are never genes
(:data:`NOT_GENES`: hippocampal fields CA1-CA3, "MSN" for medium spiny neuron, ...), and neither
are negated markers (``"CD8-alpha-negative"``, ``"CD38-"``). Terms of the single-atlas mouse and
human brain taxonomies (``"... (Mmus)"``, ``"... (Hsap)"``) state none: their names are cluster
identifiers.

Typical use::

    from cellscribe.knowledge import ontology_markers

    ontology_markers.name_genes("CL:4023017")     # ('SST',): sst GABAergic interneuron
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import GeneKnowledgeUnavailableError
from . import genes, ontology

#: Words the ontology uses for something other than the gene of that symbol.
NOT_GENES = frozenset({"CA1", "CA2", "CA3", "CA4", "MSN", "NAV1", "STR", "MHC", "ATP", "DNA", "RNA", "GPI", "BED",
                       "STH", "POLE"})
#: Taxonomy terms of single atlases (their names are cluster identifiers).
ATLAS_TAXONOMY = re.compile(r"\((?:Mmus|Hsap)\)")

_WORD = re.compile(r"(?<![\w.-])([A-Za-z][A-Za-z0-9]{1,11})(?!\w)")
_NEGATED = re.compile(r"^(?:-(?:alpha|beta))?(?:\s*-?\s*(?:negative|neg|low|lo|dim)\b|-(?![A-Za-z0-9]))", re.I)
_CD = re.compile(r"^CD\d+[A-Z]?$")


@lru_cache(maxsize=None)
def name_genes(cl_id: str) -> tuple[str, ...]:
    """The genes a term's name states, as official human symbols (``"sst GABAergic interneuron"``:
    ``("SST",)``); ``()`` where none, for atlas taxonomy terms, or where the gene knowledge is not
    installed (a word cannot then be told from a gene symbol)."""
    name = ontology.get().name(cl_id)
    if ATLAS_TAXONOMY.search(name):
        return ()
    try:
        return tuple(dict.fromkeys(stated_genes(name)))
    except GeneKnowledgeUnavailableError:
        return ()


def stated_genes(name: str) -> list[str]:
    """Official human symbols of the genes a cell-type name states as expressed, in order
    (negated ones, ``"CD8-alpha-negative"``, left out)."""
    out: list[str] = []
    for m in _WORD.finditer(name):
        word = m.group(1)
        if word.upper() in NOT_GENES or _NEGATED.match(name[m.end():]):
            continue
        facts = genes.lookup(word.upper())
        if facts is None:
            continue
        official = facts.symbol.upper() == word.upper() and (len(word) >= 3 or word.upper() == "TH")
        if official or _CD.match(word.upper()):
            out.append(facts.symbol)
    return out
