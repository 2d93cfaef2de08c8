"""``cellscribe.tl.annotate``: label the clusters of an AnnData."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import copynumber
from ..engine import annotate as annotate_markers
from ..errors import InputError
from ..markers import DEFAULT_TOP_N, from_scanpy
from ..progress import say

if TYPE_CHECKING:
    from anndata import AnnData

    from ..llm import Backend

log = logging.getLogger(__name__)


def annotate(
    adata: AnnData,
    groupby: str = "leiden",
    *,
    tissue: str | None = None,
    species: str = "human",
    backend: str | Backend = "auto",
    model: str | None = None,
    top_n: int = DEFAULT_TOP_N,
    rank_key: str = "rank_genes_groups",
    gene_symbols: str | None = None,
    key_added: str = "cellscribe",
    copy_number: bool = True,
    copy: bool = False,
    **kwargs: Any,
) -> AnnData | None:
    """Annotate each cluster of ``adata.obs[groupby]`` and write the labels to every cell.

    Markers come from ``adata.uns[rank_key]`` when it holds ``rank_genes_groups`` results for
    ``groupby``; otherwise they are computed with ``sc.tl.rank_genes_groups(adata, groupby,
    method="wilcoxon", key_added=rank_key)`` (on ``adata.raw`` when present, as scanpy does).

    Parameters
    ----------
    adata
        Annotated data matrix with a cluster column.
    groupby
        Column of ``adata.obs`` with the clusters.
    tissue, species, backend, model, top_n
        As in :func:`cellscribe.annotate`.
    rank_key
        ``adata.uns`` key of the marker results.
    gene_symbols
        Column of ``adata.var`` with gene symbols when ``var_names`` are not symbols.
    key_added
        Prefix of the keys written (see Returns).
    copy_number
        Call malignant clusters from copy-number changes inferred from the expression (human data
        with a ``PTPRC``-expressing immune cluster as the reference; see :mod:`cellscribe.copynumber`):
        their label becomes ``malignant cell``, and the type the markers resemble its rival.
        Return a modified copy instead of writing into ``adata``.
    **kwargs
        Passed to :func:`cellscribe.annotate` (``explain``, ``timeout``, ``host``, ...).

    Returns
    -------
    ``None`` (or the copy when ``copy=True``), having written:

    ``adata.obs[f"{key_added}_label"]``
        Categorical label of each cell's cluster.
    ``adata.obs[f"{key_added}_confidence"]``
        The cluster's confidence (float).
    ``adata.obs[f"{key_added}_lineage"]``
        Categorical broad lineage of the cluster.
    ``adata.obs[f"{key_added}_cl_id"]``
        With ``mode="grounded"`` (the default) or ``"agentic"``: the label's Cell Ontology ID (``"unmapped"``
        when none); the clusters in ``uns`` then also carry ``cl_name``, ``evidence_genes``,
        ``candidates`` and ``chosen_by``.
    ``adata.uns[key_added]``
        ``params`` (groupby, tissue, species, backend, model, top_n), ``provenance`` (backend,
        model, digest, prompt hash, parameters, version, time) and ``clusters``: per cluster the
        label, lineage, confidence, title, bullets, explanation Markdown, markers and supporting
        markers. :func:`cellscribe.get.annotations` returns them as a table. With ``copy_number``
        and a measurement: ``copy_number``, per cluster ``n_cells``, ``reference``, ``score``,
        ``malignant``, ``gains`` and ``losses`` (chromosome arms).
    """
    adata = adata.copy() if copy else adata
    if groupby not in adata.obs:
        raise InputError(
            f"adata.obs has no column {groupby!r}. Cluster first (e.g. sc.tl.leiden(adata)) or pass "
            f"groupby= one of: {', '.join(map(str, adata.obs.columns)) or 'no columns'}."
        )
    if adata.n_obs == 0:
        raise InputError("adata has no cells.")
    clusters = adata.obs[groupby].astype("category")
    if clusters.cat.categories.size < 2 and rank_key not in adata.uns:
        raise InputError(f"adata.obs[{groupby!r}] has a single cluster; markers need at least two groups.")
    params = adata.uns.get(rank_key, {}).get("params", {}) if rank_key in adata.uns else {}
    if params.get("groupby") != groupby:
        import scanpy as sc

        log.info("computing markers: sc.tl.rank_genes_groups(adata, %r, method='wilcoxon')", groupby)
        adata.obs[groupby] = clusters
        sc.tl.rank_genes_groups(adata, groupby, method="wilcoxon", key_added=rank_key, use_raw=adata.raw is not None)
    table = from_scanpy(adata, species=species, key=rank_key, gene_symbols=gene_symbols, top_n=top_n)
    df = annotate_markers(table, tissue=tissue, species=species, backend=backend, model=model, top_n=top_n, **kwargs)
    calls = copynumber.copy_number(adata, groupby, species=species, gene_symbols=gene_symbols) if copy_number else None
    if calls is not None:
        df = copynumber.relabel(df, calls)
        if calls["malignant"].any():
            say(f"copy number: cluster(s) {', '.join(calls.index[calls['malignant']])} called malignant")

    _write(adata, df, clusters.astype(str), key_added=key_added, params={
        "groupby": groupby, "tissue": tissue, "species": species, "top_n": top_n,
        "backend": backend if isinstance(backend, str) else backend.name})
    if calls is not None:
        adata.uns[key_added]["copy_number"] = _h5ad_safe(
            {c: {**r, "gains": list(r["gains"]), "losses": list(r["losses"])}
             for c, r in calls.drop(columns="cluster").to_dict("index").items()})
    return adata if copy else None


def _write(adata: AnnData, df: pd.DataFrame, cell_cluster: pd.Series, *, key_added: str,
           params: dict[str, Any]) -> None:
    """The per-cluster results ``df`` written per cell into ``adata.obs`` and whole into ``adata.uns``."""
    by_cluster = df.set_index("cluster")
    labels = cell_cluster.map(by_cluster["label"])
    adata.obs[f"{key_added}_label"] = pd.Categorical(labels, categories=sorted(labels.dropna().unique()))
    adata.obs[f"{key_added}_confidence"] = cell_cluster.map(by_cluster["confidence"]).astype(float).to_numpy()
    lineage = cell_cluster.map(by_cluster["broad_lineage"])
    adata.obs[f"{key_added}_lineage"] = pd.Categorical(lineage, categories=sorted(lineage.dropna().unique()))
    if "cl_id" in by_cluster.columns:  # grounded / agentic: the Cell Ontology ID of every label
        cl_ids = cell_cluster.map(by_cluster["cl_id"].fillna("unmapped"))
        adata.obs[f"{key_added}_cl_id"] = pd.Categorical(cl_ids, categories=sorted(cl_ids.dropna().unique()))
    adata.uns[key_added] = {
        "params": _h5ad_safe({**params, "model": df.attrs["provenance"].get("model"),
                              "mode": df.attrs["provenance"]["mode"]}),
        "provenance": _h5ad_safe(df.attrs.get("provenance", {})),
        "clusters": {str(r["cluster"]): _h5ad_safe(r)
                     for r in df.drop(columns=["cached", "seconds"]).to_dict("records")},
    }


def _h5ad_safe(value: Any) -> Any:
    """Values that ``write_h5ad`` accepts: no ``None``, no nested dicts in lists, plain types."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items() if v is not None and not _is_nan(v)}
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if any(isinstance(v, dict) for v in items):
            return json.dumps(items, default=str)
        return np.asarray([str(v) for v in items], dtype=object) if items else np.asarray([], dtype=str)
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and np.isnan(v)
