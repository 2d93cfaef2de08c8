"""Broad cell types derived from Cell Ontology ancestry.

The GPTCelltype study (Hou & Ji, 2024) gave every label a *broad type* by hand ("t/nk cell",
"b cell", "macrophage/monocyte", "epithelial cell", ...) and counted two labels as partially
matching when their broad types are the same or related. cellscribe derives the broad type of any
Cell Ontology term from its ancestry instead: :data:`BROAD_ANCHORS` is a fixed, ordered list of
anchor terms, and a term's broad type is the first entry whose anchor is the term itself or one of
its ``is_a`` ancestors. The order puts narrow, decisive lineages before the wide classes they sit
in (``microglia`` before macrophages, ``t/nk cell`` before innate lymphoid cells and lymphocytes,
stem and progenitor cells before the lineage they make, epithelial before secretory cells, the
immune umbrella terms last). The names follow the study's vocabulary, so the study's own broad
types can be compared with derived ones.

:data:`RELATED_BROAD` lists the pairs of broad types the study counts as related (its
``cl_relation.csv``: parent/child pairs such as ``b cell`` / ``lymphocyte``); :func:`broad_related`
applies them. Two types that share only a wide class (``immune cell``, ``leukocyte``,
``lymphocyte``, ``myeloid cell``) are not related: the study scored ``Monocyte`` vs ``Neutrophils``
or ``T cell`` vs ``Macrophage`` as mismatches, and this reading of its rule reproduces the
published scores more often than adding every related type on both sides.
"""

from __future__ import annotations

from functools import lru_cache

from . import ontology

#: ``(broad type, anchor CL IDs)``, first match wins.
BROAD_ANCHORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("malignant cell", ("CL:0001064", "CL:0001063")),          # malignant cell, neoplastic cell
    ("microglia", ("CL:0000129",)),                            # microglial cell (a macrophage, too)
    ("stem cell", ("CL:0000037", "CL:0000047")),               # hematopoietic stem cell, neural stem cell
    ("progenitor cell", ("CL:0008001",)),                      # hematopoietic precursor cell
    ("t/nk cell", ("CL:0000084", "CL:0000623", "CL:0000893", "CL:0000814")),  # T, NK, thymocyte, NKT
    ("innate lymphoid cell", ("CL:0001065",)),
    ("b cell", ("CL:0000945", "CL:0000236")),                  # lymphocyte of B lineage, B cell
    ("dendritic cell", ("CL:0000451",)),
    ("macrophage/monocyte", ("CL:0000235", "CL:0000576", "CL:0000113")),  # macrophage, monocyte, mononuclear phagocyte
    ("granulocyte", ("CL:0000094", "CL:0000097")),             # granulocyte, mast cell
    ("erythroid cell", ("CL:0000764",)),                       # erythroid lineage cell
    ("megakaryocyte", ("CL:0000556",)),
    ("platelet", ("CL:0000233",)),
    ("astrocyte", ("CL:0000127",)),
    ("oligodendrocyte", ("CL:0000128",)),
    ("radial glial cell", ("CL:0000681",)),
    ("glial cell", ("CL:0000125", "CL:0000126")),              # glial cell, macroglial cell
    ("endothelial cell", ("CL:0000115",)),
    ("pericyte", ("CL:0000669",)),
    ("fibroblast", ("CL:0000057",)),
    ("myofibroblast cell", ("CL:0000186",)),
    ("muscle cell", ("CL:0000187", "CL:0000188")),             # muscle cell, cell of skeletal muscle
    ("mural cell", ("CL:0008034",)),
    ("fat cell", ("CL:0000136",)),
    ("osteoblast", ("CL:0000062",)),
    ("melanocyte", ("CL:0000148",)),
    ("germ cell", ("CL:0000586", "CL:0000670")),               # germ cell, primordial germ cell
    ("extraembryonic cell", ("CL:0000349",)),
    ("transit amplifying cell", ("CL:0009010",)),
    ("epithelial cell", ("CL:0000066",)),
    ("ciliated cell", ("CL:0000064",)),
    ("neuron", ("CL:0000540",)),
    ("stem cell", ("CL:0000034",)),
    ("epithelial cell", ("CL:1000497",)),                      # kidney cell: tubule, duct, podocyte
    ("stromal cell", ("CL:0000499",)),
    ("connective tissue cell", ("CL:0002320",)),
    ("interstitial cell", ("CL:4030031",)),
    ("secretory cell", ("CL:0000151",)),
    ("mesenchymal cell", ("CL:0008019",)),
    ("progenitor cell", ("CL:0011026", "CL:0011115")),         # progenitor cell, precursor cell
    ("antigen presenting cell", ("CL:0000145",)),
    ("myeloid cell", ("CL:0000763",)),
    ("lymphocyte", ("CL:0000542",)),
    ("immune cell", ("CL:0000738",)),                          # leukocyte
    ("blood cell", ("CL:0000081", "CL:0000988")),              # blood cell, hematopoietic cell
)

#: Pairs of broad types the study counts as related (its ``cl_relation.csv``: parent/child pairs).
RELATED_BROAD: tuple[tuple[str, str], ...] = (
    ("astrocyte", "glial cell"), ("astrocyte", "macroglial cell"), ("glial cell", "macroglial cell"),
    ("glial cell", "microglia"), ("glial cell", "oligodendrocyte"), ("macroglial cell", "oligodendrocyte"),
    ("glial cell", "radial glial cell"), ("megakaryocyte", "platelet"), ("erythroid cell", "myeloid cell"),
    ("megakaryocyte", "myeloid cell"), ("platelet", "myeloid cell"), ("b cell", "antigen presenting cell"),
    ("antigen presenting cell", "dendritic cell"), ("b cell", "immune cell"),
    ("antigen presenting cell", "immune cell"), ("dendritic cell", "immune cell"), ("granulocyte", "immune cell"),
    ("immune cell", "innate lymphoid cell"), ("b cell", "leukocyte"), ("antigen presenting cell", "leukocyte"),
    ("dendritic cell", "leukocyte"), ("granulocyte", "leukocyte"), ("immune cell", "leukocyte"),
    ("innate lymphoid cell", "leukocyte"), ("b cell", "lymphocyte"), ("antigen presenting cell", "lymphocyte"),
    ("immune cell", "lymphocyte"), ("innate lymphoid cell", "lymphocyte"), ("leukocyte", "lymphocyte"),
    ("antigen presenting cell", "macrophage/monocyte"), ("immune cell", "macrophage/monocyte"),
    ("leukocyte", "macrophage/monocyte"), ("antigen presenting cell", "myeloid cell"),
    ("dendritic cell", "myeloid cell"), ("granulocyte", "myeloid cell"), ("immune cell", "myeloid cell"),
    ("leukocyte", "myeloid cell"), ("macrophage/monocyte", "myeloid cell"), ("immune cell", "t/nk cell"),
    ("leukocyte", "t/nk cell"), ("lymphocyte", "t/nk cell"), ("endothelial cell", "epithelial cell"),
    ("fibroblast", "stromal cell"), ("osteoblast", "stromal cell"), ("pericyte", "stromal cell"),
    ("fat cell", "stromal cell"),
)
#: Wide classes: two broad types are not related merely because both sit in one of these.
WIDE_CLASSES = frozenset({"immune cell", "leukocyte", "lymphocyte", "myeloid cell"})


def broad_type(cl_id: str) -> str | None:
    """The broad type of one Cell Ontology term (``"CL:0000787"`` memory B cell -> ``"b cell"``), or
    ``None`` when no anchor is among its ancestors (``"cell"`` itself, ``"abnormal cell"``, ...)."""
    return _broad_type(ontology.get().resolve(cl_id))


def broad_types(cl_ids: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    """Broad types of several terms (a label naming several types has several)."""
    return frozenset(b for b in (broad_type(i) for i in cl_ids) if b is not None)


def related_broad(types: frozenset[str] | set[str]) -> frozenset[str]:
    """``types`` plus every broad type related to one of them (:data:`RELATED_BROAD`)."""
    out = set(types)
    for a, b in RELATED_BROAD:
        if a in types:
            out.add(b)
        if b in types:
            out.add(a)
    return frozenset(out)


def broad_related(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> bool:
    """Whether two sets of broad types are related: a type of one is a parent or child of a type of
    the other (:data:`RELATED_BROAD`, e.g. ``lymphocyte``/``t/nk cell``), or both are children of a
    class that is not one of the :data:`WIDE_CLASSES` (``pericyte``/``fibroblast`` under ``stromal
    cell``; but not ``monocyte``/``neutrophil`` under ``myeloid cell``)."""
    ra, rb = related_broad(a), related_broad(b)
    return bool(ra & set(b) or rb & set(a) or (ra & rb) - WIDE_CLASSES)


@lru_cache(maxsize=None)
def _broad_type(cl_id: str) -> str | None:
    lineage = ontology.get().ancestors(cl_id, include_self=True)
    for name, anchors in BROAD_ANCHORS:
        if any(a in lineage for a in anchors):
            return name
    return None
