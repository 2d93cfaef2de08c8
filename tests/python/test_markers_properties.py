"""Property-based tests of the marker readers (hypothesis): whatever a marker table holds, reading it
ends in a table or in a clear MarkerInputError, never a traceback; cluster IDs come back exactly as
written; nothing is merged or renamed silently.

Bounded (``max_examples``) so the file runs in well under a minute."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellscribe.errors import MarkerInputError
from cellscribe.markers import read_markers

GENES = ["CD3D", "CD3E", "IL7R", "MS4A1", "CD79A", "CD19", "LYZ", "CD14", "NKG7", "GNLY", "PPBP", "HBB",
         "FCGR3A", "CST3", "S100A8"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Cluster IDs users write: numbers with leading zeros, dotted sub-clusters, names with spaces and
# punctuation, non-ASCII.
cluster_ids = st.one_of(
    st.integers(0, 120).map(str),
    st.integers(0, 40).map(lambda i: f"{i:02d}"),
    st.tuples(st.integers(0, 12), st.integers(0, 12)).map(lambda t: f"{t[0]}.{t[1]}"),
    st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" _-+/"), min_size=1,
            max_size=12).map(str.strip).filter(bool),
)
separators = st.sampled_from([",", "\t", ";"])
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])


def _quote(value: str, sep: str) -> str:
    return f'"{value}"' if any(ch in value for ch in (sep, '"', "\n")) else value


@FAST
@given(ids=st.lists(cluster_ids, min_size=1, max_size=6, unique=True), sep=separators, encoding=encodings,
       data=st.data())
def test_files_round_trip_cluster_ids_exactly(tmp_path, ids, sep, encoding, data):
    if encoding == "latin-1":  # only what Latin-1 can encode
        ids = [i for i in ids if all(ord(c) < 256 for c in i)] or ["0"]
    rows = []
    for cluster in ids:
        genes = data.draw(st.lists(st.sampled_from(GENES), min_size=1, max_size=5, unique=True))
        rows += [(cluster, g) for g in genes]
    text = f"cluster{sep}gene\n" + "".join(f"{_quote(c, sep)}{sep}{g}\n" for c, g in rows)
    path = tmp_path / f"m-{abs(hash((tuple(ids), sep, encoding)))}.csv"
    path.write_bytes(text.encode(encoding))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_markers(path)
    assert list(table.genes) == sorted(ids, key=lambda c: _order_key(c, ids))
    for cluster in ids:
        assert table.genes[cluster] == [g for c, g in rows if c == cluster]


def _order_key(cluster: str, ids: list[str]):
    """The reader's order: numeric IDs by value when every ID is a number, else as first seen."""
    try:
        [float(i) for i in ids]
    except ValueError:
        return ids.index(cluster)
    return (float(cluster), ids.index(cluster))


@FAST
@given(frame=st.lists(st.fixed_dictionaries({
    "cluster": st.one_of(cluster_ids, st.none(), st.just("")),
    "gene": st.one_of(st.sampled_from(GENES), st.none(), st.just(""), st.just("ENSG00000156738")),
    "avg_log2FC": st.one_of(st.floats(-5, 5), st.none(), st.just(float("nan")), st.just("x")),
    "p_val_adj": st.one_of(st.floats(0, 1), st.none(), st.just(float("nan"))),
}), min_size=0, max_size=25))
def test_any_seurat_like_table_gives_a_table_or_a_clear_error(frame):
    df = pd.DataFrame(frame, columns=["cluster", "gene", "avg_log2FC", "p_val_adj"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = read_markers(df)
        except MarkerInputError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            return
    written = {str(c) for c in df["cluster"] if c is not None and str(c).strip()}
    assert set(table.genes) | set(table.dropped) <= written  # no cluster invented or renamed
    for cluster, genes in table.genes.items():
        rows = df[df["cluster"].astype(str) == cluster]
        assert set(genes) <= set(rows["gene"].astype(str))  # no gene from another cluster
        assert len(genes) == len(set(genes)) and 0 < len(genes) <= 10


@FAST
@given(mapping=st.dictionaries(cluster_ids, st.lists(st.sampled_from(GENES), min_size=0, max_size=12),
                               min_size=0, max_size=6))
def test_any_mapping_gives_a_table_or_a_clear_error(mapping):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = read_markers(mapping)
        except MarkerInputError as exc:
            assert str(exc)
            return
    assert set(table.genes) | set(table.dropped) == {str(k) for k in mapping}
    for cluster, genes in table.genes.items():
        assert genes == list(dict.fromkeys(mapping[cluster]))[:10]


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"\x00\x01\x02binary", b"cluster,gene\n", b'"unclosed,quote\n1,2\n'])
def test_broken_files_are_clear_errors(tmp_path, raw):
    path = tmp_path / "m.csv"
    path.write_bytes(raw)
    with pytest.raises(MarkerInputError):
        read_markers(path)
