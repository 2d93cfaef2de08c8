"""One result schema read by every output: the R bridge, ``get.annotations``, the CLI's formats.

Grounded annotation with ``explain=False`` runs no language model; the failure path uses a
loopback address where nothing listens, so every cluster fails at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import anndata
import numpy as np
import pandas as pd
import pytest
from conftest import DATA, cli_env

import cellscribe
from cellscribe import bridge, get, results, tl

MARKERS = {"columns": {"cluster": ["T", "T", "T", "B", "B", "B"],
                       "gene": ["CD3D", "CD3E", "IL7R", "CD79A", "MS4A1", "CD19"]}}
#: The embedded model given a millisecond per answer: every cluster fails at once.
NO_TIME = {"backend": "llamacpp", "model": "smollm2-135m", "timeout": 0.001, "max_retries": 0}


def call_bridge(options: dict) -> dict:
    return json.loads(bridge.annotate(json.dumps(MARKERS), json.dumps({"progress": False, **options})))


def test_bridge_columns_are_the_tables_columns_with_their_kinds():
    reply = call_bridge({"tissue": "PBMC", "explain": False})
    assert reply["ok"], reply
    df = cellscribe.annotate(pd.DataFrame(MARKERS["columns"]), tissue="PBMC", explain=False, progress=False)
    assert [c["name"] for c in reply["columns"]] == list(df.columns) == results.columns(*results.GROUPS["grounded"])
    assert {c["name"]: c["kind"] for c in reply["columns"]} == results.kinds(df.columns)
    assert {"candidates", "evidence_genes"} <= {c["name"] for c in reply["columns"] if c["kind"] == "list"}
    # every record has exactly those keys; list columns are lists of text
    for rec in reply["clusters"]:
        assert list(rec) == list(df.columns)
        assert all(isinstance(rec[c], list) and all(isinstance(g, str) for g in rec[c])
                   for c in results.LIST_COLUMNS if c in rec)
    assert reply["clusters"][1]["candidates"][0] == reply["clusters"][1]["label"]


def test_a_failed_reply_carries_the_partial_table_and_its_columns():
    reply = call_bridge({"mode": "llm", **NO_TIME, "cache": False})
    assert reply["ok"] is False and reply["error_class"] == "AnnotationError"
    names = [c["name"] for c in reply["columns"]]
    assert names == results.columns(*results.GROUPS["llm"]) + ["error"]
    assert [r["cluster"] for r in reply["clusters"]] == ["T", "B"]
    assert all(list(r) == names and r["bullets"] == [] and r["error"].startswith("APITimeoutError")
               for r in reply["clusters"])
    assert set(reply["failures"]) == {"T", "B"}


def test_get_annotations_gives_every_list_column_as_lists_after_h5ad(tmp_path):
    rng = np.random.default_rng(0)
    genes = ["CD3D", "CD3E", "IL7R", "CD79A", "MS4A1", "CD19", "LYZ", "ACTB"]
    group = np.repeat(["0", "1"], 30)
    x = rng.poisson(1.0, (60, len(genes))).astype(np.float32)
    x[group == "0", :3] += 20
    x[group == "1", 3:6] += 20
    adata = anndata.AnnData(np.log1p(x), obs=pd.DataFrame({"cl": pd.Categorical(group)},
                                                           index=[f"c{i}" for i in range(60)]),
                            var=pd.DataFrame(index=genes))
    tl.annotate(adata, groupby="cl", tissue="PBMC", explain=False, top_n=3)
    adata.write_h5ad(tmp_path / "a.h5ad")
    for ad in (adata, anndata.read_h5ad(tmp_path / "a.h5ad")):
        df = get.annotations(ad)
        assert list(df.columns) == [c for c in results.columns(*results.GROUPS["grounded"])
                                    if c not in ("cached", "seconds")]
        for col in results.LIST_COLUMNS & set(df.columns):
            assert all(isinstance(v, list) for v in df[col]), col
        assert [set(m) for m in df["markers"]] == [{"CD3D", "CD3E", "IL7R"}, {"CD79A", "MS4A1", "CD19"}]
        assert all(len(v) >= 1 for v in df["candidates"]) and df["bullets"].tolist() == [[], []]
        assert df.attrs["provenance"]["mode"] == "grounded"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_cli_formats_read_the_schema(fmt):
    out = subprocess.run([sys.executable, "-m", "cellscribe", "annotate", str(DATA / "pbmc_small_markers.csv"),
                          "--tissue", "PBMC", "--no-explain", "-f", fmt], capture_output=True, text=True,
                         env=cli_env(), timeout=600)
    assert out.returncode == 0, out.stderr
    grounded = results.columns(*results.GROUPS["grounded"])
    if fmt == "json":
        rows = json.loads(out.stdout)
        assert all(list(r) == [c for c in grounded if c not in ("markers", "cached", "seconds")] for r in rows)
        assert all(isinstance(r["candidates"], list) and r["bullets"] == [] for r in rows)
    else:
        df = pd.read_csv(StringIO(out.stdout))
        assert list(df.columns) == [c for c in grounded if c not in ("cached", "seconds")]
        assert all("; " in m for m in df["markers"])
