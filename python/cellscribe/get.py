"""Tidy readers of results stored in an AnnData (scanpy's ``get`` convention)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData


def annotations(adata: AnnData, key: str = "cellscribe") -> pd.DataFrame:
    """Per-cluster results written by :func:`cellscribe.tl.annotate`, one row per cluster.

    Columns: ``cluster, label, broad_lineage, confidence, title, bullets, explanation_markdown,
    supporting_markers, markers``; ``df.attrs["provenance"]`` holds the provenance record.
    """
    if key not in adata.uns or "clusters" not in adata.uns[key]:
        raise InputError(f"adata.uns has no {key!r} results; run cellscribe.tl.annotate(adata, ...) first.")
    rows = []
    for cluster, rec in adata.uns[key]["clusters"].items():
        row = {k: (list(v) if k in ("bullets", "supporting_markers", "markers") else v) for k, v in rec.items()}
        row["cluster"] = cluster
        rows.append(row)
    cols = ["cluster", "label", "broad_lineage", "confidence", "title", "bullets", "explanation_markdown",
            "supporting_markers", "markers"]
    df = pd.DataFrame(rows)
    df = df[[c for c in cols if c in df.columns] + [c for c in df.columns if c not in cols]]
    df.attrs["provenance"] = dict(adata.uns[key].get("provenance", {}))
    return df
