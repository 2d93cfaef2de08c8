"""Stage-1 validation (DeepSeq): do a cluster's markers support the label it was given?

For every cluster, the predicted label is mapped to the Cell Ontology, CellMarker 2.0's canonical
markers of that type (and its subtypes) are gathered (:func:`cellscribe.knowledge.cellmarker.
canonical_markers`, best supported first), and the cluster's top markers are compared with them.
The overlap is tested against chance with the hypergeometric test, the background being every gene
CellMarker records for the species.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import InputError
from ..knowledge import cellmarker
from ..knowledge.labels import map_label
from ..markers import read_markers

#: Columns of :func:`validate_markers`, in order.
COLUMNS = ["cluster", "label", "cl_id", "cl_name", "n_markers", "n_canonical", "n_overlap", "overlap",
           "fraction", "p_value", "supported"]


def validate_markers(
    markers: Any,
    labels: Mapping[str, str] | pd.DataFrame | pd.Series,
    *,
    species: str = "human",
    tissue: str | None = None,
    top_n: int = 10,
    n_canonical: int = 50,
    min_support: int = 1,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Overlap of each cluster's top markers with CellMarker's canonical markers of its label.

    Parameters
    ----------
    markers
        The clusters' markers: anything :func:`cellscribe.markers.read_markers` accepts (Seurat
        ``FindAllMarkers`` output, an AnnData with ``rank_genes_groups``, ``{cluster: [genes]}``),
        or the result of :func:`cellscribe.annotate` (its ``markers`` column is used).
    labels
        The label of each cluster: ``{cluster: label}``, a Series indexed by cluster, or a DataFrame
        with ``cluster`` and ``label`` columns (the result of :func:`cellscribe.annotate`).
    species
        ``"human"`` or ``"mouse"`` (CellMarker records of that species; symbols compared ignoring case).
    tissue
        Restrict canonical markers to CellMarker records of this tissue; ``None`` uses all tissues.
    top_n
        Markers per cluster compared.
    n_canonical
        Canonical markers per type: the ``n_canonical`` genes reported by the most publications.
    min_support
        Only genes reported by at least this many publications count as canonical.
    alpha
        Significance level for ``supported``.

    Returns
    -------
    One row per cluster with columns :data:`COLUMNS`: the label's Cell Ontology term (``cl_id``,
    ``cl_name``), ``n_markers`` compared, ``n_canonical`` markers known for the type, the genes in
    both (``overlap``, a list, in the cluster's marker order), ``fraction`` (``n_overlap /
    n_markers``), ``p_value`` (hypergeometric, overlap at least this large by chance; missing when the
    type has no CellMarker record) and ``supported`` (``p_value < alpha``).
    """
    from scipy.stats import hypergeom

    genes = _marker_genes(markers, species=species, top_n=top_n)
    label_of = _labels(labels)
    background = {str(s).upper() for s in cellmarker.load(species)["symbol"].unique()}
    rows = []
    for cluster, cluster_genes in genes.items():
        label = label_of.get(str(cluster))
        mapping = map_label(label)
        canonical: list[str] = []
        if mapping.mapped and not mapping.malignant:
            table = cellmarker.canonical_markers(mapping.cl_id, species=species, tissue=tissue,
                                                 min_support=min_support, n=n_canonical)
            canonical = [s.upper() for s in table["symbol"]]
        canon = set(canonical)
        overlap = [g for g in cluster_genes if g.upper() in canon]
        n = len(cluster_genes)
        p_value = float("nan")
        if canon and n:
            population = len(background | canon | {g.upper() for g in cluster_genes})
            p_value = float(hypergeom.sf(len(overlap) - 1, population, len(canon), n))
        rows.append({
            "cluster": str(cluster), "label": label, "cl_id": mapping.cl_id, "cl_name": mapping.name,
            "n_markers": n, "n_canonical": len(canon), "n_overlap": len(overlap), "overlap": overlap,
            "fraction": len(overlap) / n if n else 0.0, "p_value": p_value,
            "supported": bool(p_value == p_value and p_value < alpha),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _marker_genes(markers: Any, *, species: str, top_n: int) -> dict[str, list[str]]:
    if isinstance(markers, pd.DataFrame) and {"cluster", "markers"} <= set(markers.columns):
        return {str(c): list(g)[:top_n] for c, g in zip(markers["cluster"], markers["markers"], strict=True)}
    return {str(c): g for c, g in read_markers(markers, species=species, top_n=top_n).genes.items()}


def _labels(labels: Mapping[str, str] | pd.DataFrame | pd.Series) -> dict[str, str]:
    if isinstance(labels, pd.DataFrame):
        if not {"cluster", "label"} <= set(labels.columns):
            raise InputError("labels as a table needs 'cluster' and 'label' columns (cellscribe.annotate's result).")
        return {str(c): lab for c, lab in zip(labels["cluster"], labels["label"], strict=True)}
    if isinstance(labels, pd.Series):
        return {str(c): lab for c, lab in labels.items()}
    return {str(c): lab for c, lab in labels.items()}
