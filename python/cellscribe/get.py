"""Tidy readers of results stored in an AnnData (scanpy's ``get`` convention)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from . import results
from .errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

#: Result columns that describe one run, not the result: :func:`cellscribe.tl.annotate` does not store them.
NOT_STORED = ("cached", "seconds")


def annotations(adata: AnnData, key: str = "cellscribe") -> pd.DataFrame:
    """Per-cluster results written by :func:`cellscribe.tl.annotate`, one row per cluster.

    Returns
    -------
    The result table of :func:`cellscribe.annotate` as stored: the columns of the mode that ran
    (see :data:`cellscribe.results.COLUMNS` for each column, its kind and what it holds), in
    table order, without ``cached`` and ``seconds``; every list column
    (:data:`cellscribe.results.LIST_COLUMNS`) as Python lists, also after a round trip through
    ``.h5ad``. ``df.attrs["provenance"]`` holds the provenance record.
    """
    if key not in adata.uns or "clusters" not in adata.uns[key]:
        raise InputError(f"adata.uns has no {key!r} results; run cellscribe.tl.annotate(adata, ...) first.")
    provenance = dict(adata.uns[key].get("provenance", {}))
    # write_h5ad cannot store None, so tl.annotate leaves empty values out: every column of the
    # mode comes back all the same (None, NaN or [] by kind)
    groups = results.GROUPS.get(provenance.get("mode"), ())
    empty = {name: None for name in results.columns(*groups) if name not in NOT_STORED}
    rows = [{**empty, **rec, "cluster": str(cluster)} for cluster, rec in adata.uns[key]["clusters"].items()]
    df = results.from_records(rows)
    df.attrs["provenance"] = provenance
    return df
