"""Besca's cell-type signatures: Roche's curated marker sets for automatic cluster annotation.

The besca toolkit (Mädler et al., NAR Genomics and Bioinformatics 2021) annotates clusters with
about 125 hand-curated signatures of ~18 genes each (``CellNames_scseqCMs6_sigs.gmt``, human and
mouse): blood and tumour-infiltrating immune cells in depth, and the pancreas, gut, lung, liver,
skin and stromal types. Its nomenclature (``CellTypes_v1.tsv``) gives each signature a Cell
Ontology ID. Signatures of besca's own types (``DB:`` IDs) are kept only where :data:`TERMS` names
their Cell Ontology term; the others are states whose genes would mislead as a lineage's markers
(proliferating, activated, exhausted or inflammatory cells: MKI67, STMN1, NR4A1 ...) or cancers
(melanoma, colorectal cancer), which are left out of the other sources too. The umbrella
signatures of :data:`UMBRELLAS` (B lineage, hematopoietic, myeloid) are left out as well.

The files ship in the ``besca==2.5.5`` wheel (``besca/datasets/``) and are fetched once from PyPI
into ``settings.cache_dir/knowledge`` (verified by sha256). Each species' signature file counts
as one publication.

Typical use::

    from cellscribe.knowledge import besca

    df = besca.load(species="human")   # one row per (signature, gene)

Columns of :func:`load`: ``species``, ``tissue`` (``"Undefined"``: the signatures name none),
``cell_type`` (besca's label, ``"naive B cell"``), ``cl_id`` (its Cell Ontology ID),
``symbol`` (upper case) and ``pub`` (``"besca:human"``).
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

from ..errors import InputError
from . import pegasus
from .wheeldata import WheelFile, fetch

if TYPE_CHECKING:
    import pandas as pd

REQUIREMENT = "besca==2.5.5"

#: ``{species: WheelFile}`` of the signature files.
SIGNATURES: dict[str, WheelFile] = {
    "human": WheelFile(
        requirement=REQUIREMENT,
        member="besca/datasets/genesets/CellNames_scseqCMs6_sigs.gmt",
        sha256="887452cbf7a7a24bf503f59209bc666300555357f503b678ad52df712a2d37fb",
        filename="besca_CellNames_scseqCMs6_sigs.gmt",
    ),
    "mouse": WheelFile(
        requirement=REQUIREMENT,
        member="besca/datasets/genesets/CellNames_scseqCMs6_sigs.mouse.gmt",
        sha256="312aebe3fdc716244b029c9d49ae8a591fe0ea9561d2f9a15a630007600945a7",
        filename="besca_CellNames_scseqCMs6_sigs.mouse.gmt",
    ),
}
#: Besca's nomenclature: short signature name -> label and Cell Ontology (or besca ``DB:``) ID.
NOMENCLATURE = WheelFile(
    requirement=REQUIREMENT,
    member="besca/datasets/nomenclature/CellTypes_v1.tsv",
    sha256="36537c8ec277d7179aa652788e90368e340294476462300fa9f76506e13c91b3",
    filename="besca_CellTypes_v1.tsv",
)
#: Signatures without a Cell Ontology ID in the nomenclature -> their term (the rest are left out).
TERMS = {
    "CommonLymphoidPC": "CL:0000051",      # common lymphoid progenitor
    "Microglia": "CL:0000129",             # microglial cell
    "EntericGlial": "CL:4040002",          # enteric glial cell
    "ImmatureEnterocyte": "CL:0000584",    # enterocyte (the ontology has no immature one)
    "ImmatureGoblet": "CL:0000160",        # goblet cell
}

#: Umbrella signatures left out: their genes are their children's (B cells' and plasma cells', every
#: blood cell's, every myeloid cell's), so they would lend a child's evidence to a class no one labels a
#: cluster with ("lymphocyte of B lineage" for B cells).
UMBRELLAS = frozenset({"Blymphocyte", "Hematopoietic", "Myeloid"})

#: Columns of :func:`load`: the curated-set table of :data:`cellscribe.knowledge.pegasus.COLUMNS`.
COLUMNS = pegasus.COLUMNS


def load(species: str = "human") -> pd.DataFrame:
    """Besca's signatures of one species, one row per (signature, gene).

    Parameters
    ----------
    species
        ``"human"`` or ``"mouse"``.

    Returns
    -------
    A DataFrame with :data:`COLUMNS` (see the module docstring); the files are fetched on first use.
    """
    import pandas as pd

    if species not in SIGNATURES:
        raise InputError(f"species must be 'human' or 'mouse', not {species!r}.")
    names = nomenclature()
    rows: list[tuple[str, str, str, str | None, str, str]] = []
    for line in fetch(SIGNATURES[species]).read_text().splitlines():
        fields = line.split("\t")
        short, genes = fields[0], [g.strip() for g in fields[2:] if g.strip()]
        if short in UMBRELLAS:
            continue
        label, ident = names.get(short, (short, ""))
        cl_id = ident if ident.startswith("CL:") else TERMS.get(short)
        if cl_id is not None:
            rows.extend((species, "Undefined", label, cl_id, g.upper(), f"besca:{species}") for g in genes)
    return pd.DataFrame(rows, columns=COLUMNS)


def nomenclature() -> dict[str, tuple[str, str]]:
    """``{short name: (label, ID)}`` of besca's nomenclature (``"NaiBcell"`` -> naive B cell, CL:0000788)."""
    with open(fetch(NOMENCLATURE), newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return {r[3]: (r[0], r[2]) for r in rows[2:] if len(r) > 3 and r[3]}
