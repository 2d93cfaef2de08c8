"""Pegasus's curated cell-type markers: a third marker source, strong where the others are thin.

The single-cell toolkit Pegasus (Li et al., Nature Methods 2020) ships hand-curated marker sets for
its cluster annotation: human immune, brain and lung cells, mouse immune, brain, liver and lung
cells (183 types in all). They name what CellMarker 2.0 and singleCellBase rarely record: the
mouse cortex's layer and projection classes (L2/3 IT ... L6 CT, L5/6 NP, L6b), its interneuron
classes (Pvalb, Sst, Vip, Sncg, Lamp5), and the lung's endothelial and fibroblast subtypes
(aerocyte, general capillary, arterial, venous, adventitial and alveolar fibroblasts).

The seven JSON files ship in the ``pegasuspy==1.10.2`` wheel (``pegasus/annotate_cluster/``) and
are fetched once from PyPI into ``settings.cache_dir/knowledge`` (verified by sha256). Each file
counts as one publication; only the positive markers (``"GENE+"``) are kept. Names are mapped to
the Cell Ontology by :data:`TERMS` where the label mapping alone would be imprecise, else by
:func:`cellscribe.knowledge.labels.map_label`; :data:`SKIPPED` names are T-cell states
(``"Inhibitory"``, ``"Cytokines"``, ``"Memory"``) or types the Cell Ontology lacks.

Typical use::

    from cellscribe.knowledge import pegasus

    df = pegasus.load(species="mouse")   # one row per (cell type, marker gene)

Columns of :func:`load`: ``species``, ``tissue`` (``"Brain"``, ``"Lung"``, ``"Liver"``,
``"Immune system"``), ``cell_type`` (as Pegasus names it), ``cl_id`` (from :data:`TERMS`, else
``None``), ``symbol`` (upper case) and ``pub`` (``"pegasus:mouse_brain"``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .wheeldata import WheelFile, fetch

if TYPE_CHECKING:
    import pandas as pd

REQUIREMENT = "pegasuspy==1.10.2"

#: ``(species, tissue, file stem, sha256)`` of the marker files.
_FILES = (
    ("human", "Immune system", "human_immune", "ac2108c9665ec1ebe11c67b326481ed0ee8b664332eb2e4ddefd6d5595a5cc06"),
    ("human", "Brain", "human_brain", "d7a86e5be512eb049df15d79635e923bf489210e475f6cd09159a36eaa28e7d0"),
    ("human", "Lung", "human_lung", "4cdd80b59e39ed50db89336514dbb7496f77680ac48b80bd18df0044e1fa2087"),
    ("mouse", "Immune system", "mouse_immune", "b3294d329159b79f08b036da582f575ec506c8453b3d0df6ea91b6f7ac8c18e7"),
    ("mouse", "Brain", "mouse_brain", "624b0818ddbe069cc0a60f79b71a4c3454b7b094c212bb9096698ce3194e8f88"),
    ("mouse", "Liver", "mouse_liver", "52fcf1b681a4312e852e4551a00dfba915cc4ce84be23a3c703c4d842e2a7fe5"),
    ("mouse", "Lung", "mouse_lung", "a9cbea9b8d56cc4a47265c9a30317dc3a060e65f7488b0b7b30c5212ebc2f04f"),
)

#: ``{(species, tissue): WheelFile}`` of the seven marker files.
FILES: dict[tuple[str, str], WheelFile] = {
    (species, tissue): WheelFile(
        requirement=REQUIREMENT,
        member=f"pegasus/annotate_cluster/{stem}_cell_markers.json",
        sha256=sha256,
        filename=f"pegasus_{stem}_cell_markers.json",
    )
    for species, tissue, stem, sha256 in _FILES
}

#: Pegasus names -> Cell Ontology IDs, where mapping the name's text is imprecise or wrong.
TERMS: dict[str, str] = {
    "CD56-dim NK cell": "CL:0000939",                 # CD16-positive, CD56-dim natural killer cell, human
    "CD56-bright NK cell": "CL:0000938",              # CD16-negative, CD56-bright natural killer cell, human
    "Dark zone B cell": "CL:0000844",                 # germinal center B cell
    "Light zone B cell": "CL:0000844",
    "CD1C+ dendritic cell": "CL:0002399",             # CD1c-positive myeloid dendritic cell
    "CLEC9A+ dendritic cell": "CL:0002394",           # CD141-positive myeloid dendritic cell
    "Conventional type 1 dendritic cell": "CL:0000990",
    "Conventional type 2 dendritic cell": "CL:0000990",
    "Pro-Neutrophil": "CL:0000564",                   # neutrophilic promyelocyte
    "Pre-Neutrophil": "CL:0000580",                   # neutrophilic myelocyte
    "Submucosal gland serous cell": "CL:4033005",     # serous secreting cell of bronchus submucosal gland
    "EC bronchial vessel": "CL:1001567",              # lung endothelial cell
    "Aerocyte": "CL:4028003",                         # alveolar capillary type 2 endothelial cell
    "EC general capillary": "CL:4028002",             # alveolar capillary type 1 endothelial cell
    "Airway smooth muscle cell": "CL:0019019",        # tracheobronchial smooth muscle cell
    "Alveolar fibroblast": "CL:4028004",              # alveolar type 1 fibroblast cell
    "Interstitial macrophage": "CL:4033043",          # lung interstitial macrophage
    "Glutamatergic layer 2/3 IT": "CL:4030059",
    "Glutamatergic layer 4/5 IT": "CL:4030062",
    "Glutamatergic layer 5 IT": "CL:4030064",
    "Glutamatergic layer 6 IT": "CL:4030065",
    "Glutamatergic layer 6 IT Car3": "CL:4030068",
    "Glutamatergic layer 5 ET": "CL:4023009",         # extratelencephalic-projecting glutamatergic cortical neuron
    "Glutamatergic layer 6 CT": "CL:4023013",         # corticothalamic-projecting glutamatergic cortical neuron
    "Glutamatergic layer 6b": "CL:4023038",           # L6b glutamatergic cortical neuron
    "Glutamatergic layer L56 NP": "CL:4023012",       # near-projecting glutamatergic cortical neuron
    "GABAergic Ndnf interneuron": "CL:0011005",       # GABAergic interneuron (Ndnf cells are a Lamp5 subset)
    "Opalin+ Oligodendrocyte": "CL:0000128",
    "Enpp6+ Oligodendrocyte": "CL:0000128",
    "Neu4+ Oligodendrocyte": "CL:0000128",
    "Gfap+ Astrocyte": "CL:0000127",
    "Slc7a10+ Astrocyte": "CL:0000127",
    "Bile-duct lipid-associated macrophage": "CL:4033086",
    "Central vein endothelial cell": "CL:4033061",
    "Portal Vein endothelial cell": "CL:0009094",
    "Stellate cell": "CL:0000632",                    # hepatic stellate cell (the liver file)
    "Capsule fibroblast": "CL:0000057",
    "Central vein fibroblast": "CL:0000057",
    "Bile-duct fibroblast": "CL:0000057",
}

#: Names left out: T-cell states of the mouse immune file and types the Cell Ontology lacks.
SKIPPED = frozenset({"Inhibitory", "Cytokines", "Memory", "Lipofibroblast", "Fibromyocyte"})

#: Columns of :func:`load`; :mod:`cellscribe.knowledge.besca` gives its signatures the same table, so
#: the marker index reads both curated sets alike.
COLUMNS = ["species", "tissue", "cell_type", "cl_id", "symbol", "pub"]


def load(species: str = "human") -> pd.DataFrame:
    """Pegasus's markers of one species, one row per (cell type, positive marker gene).

    Parameters
    ----------
    species
        ``"human"`` or ``"mouse"``.

    Returns
    -------
    A DataFrame with :data:`COLUMNS` (see the module docstring); the files are fetched on first use.
    """
    import pandas as pd

    if species not in ("human", "mouse"):
        raise InputError(f"species must be 'human' or 'mouse', not {species!r}.")
    rows: list[tuple[str, str, str, str | None, str, str]] = []
    for sp, tissue, stem, _sha256 in _FILES:
        if sp != species:
            continue
        pub = f"pegasus:{stem}"
        data = json.loads(fetch(FILES[(sp, tissue)]).read_text())
        for name, genes in _types(data["cell_types"]):
            if name in SKIPPED:
                continue
            for gene in genes:
                if gene.endswith("+"):
                    rows.append((species, tissue, name, TERMS.get(name), gene[:-1].upper(), pub))
    return pd.DataFrame(rows, columns=COLUMNS)


def _types(cell_types: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(name, marker genes)`` of every type in a Pegasus marker file, subtypes included."""
    out: list[tuple[str, list[str]]] = []
    for ct in cell_types:
        out.append((ct["name"], [g for m in ct["markers"] for g in m["genes"]]))
        if "subtypes" in ct:
            out.extend(_types(ct["subtypes"]["cell_types"]))
    return out
