"""``cellscribe.tl.cluster``: normalise, embed, cluster with Leiden and rank marker genes (DeepSeq's
clustering module, with scanpy).

scanpy is imported by the functions that use it: it takes over a second to import, and the CLI
imports :mod:`cellscribe.tl` for every command.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..io import check_not_empty, matrix_kind

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Fewest cells :func:`cluster` accepts (with fewer, UMAP's spectral layout fails and no cluster has
#: enough cells for a marker test).
MIN_CELLS = 10

#: Marker genes stored per cluster (``cellscribe.tl.annotate`` sends the first ``top_n`` positive ones).
N_RANKED_GENES = 100


def cluster(
    adata: AnnData,
    resolution: float = 1.0,
    *,
    n_top_genes: int = 2000,
    n_comps: int = 50,
    n_neighbors: int = 15,
    method: str = "wilcoxon",
    n_genes: int = N_RANKED_GENES,
    random_state: int = 0,
    key_added: str = "leiden",
    copy: bool = False,
) -> AnnData | None:
    """Cluster cells and find each cluster's marker genes.

    The steps depend on what ``adata.X`` holds (:func:`cellscribe.io.matrix_kind`):

    * raw counts, or unnormalised values such as TPM: ``sc.pp.normalize_total`` (10,000 per cell)
      and ``sc.pp.log1p`` (the counts are kept in ``layers["counts"]``), then as below;
    * log-normalised values: ``sc.pp.highly_variable_genes`` (``n_top_genes``, Seurat flavour),
      ``sc.pp.pca`` on those genes, ``sc.pp.neighbors``, ``sc.tl.leiden`` (leidenalg),
      ``sc.tl.umap``, and ``sc.tl.rank_genes_groups`` on all genes of ``.X``;
    * scaled values (negative entries, e.g. scanpy's ``pbmc68k_reduced``): PCA on ``.X`` as it is
      (no normalisation, no gene selection), and markers ranked on ``.raw`` (which must then hold
      log-normalised values, as scanpy keeps them).

    The markers are stored where :func:`cellscribe.markers.from_scanpy` and
    :func:`cellscribe.tl.annotate` read them (``adata.uns["rank_genes_groups"]`` with
    ``params["groupby"] == key_added``), so annotation reuses them.

    Parameters
    ----------
    adata
        Cells x genes; after QC when it holds counts (:func:`cellscribe.pp.filter_cells`).
    resolution
        Leiden resolution: higher gives more clusters.
    n_top_genes
        Highly variable genes used for the PCA (all genes when there are fewer).
    n_comps, n_neighbors
        Principal components and neighbours (capped by the number of cells and genes).
    method
        Test of ``rank_genes_groups`` (``"wilcoxon"``, ``"t-test"``, ``"logreg"``).
    n_genes
        Marker genes stored per cluster.
    random_state
        Seed of PCA, neighbours, Leiden and UMAP (same input and seed give the same clusters).
    key_added
        Column of ``adata.obs`` for the clusters.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), having written:

    ``adata.obs[key_added]``
        Categorical Leiden cluster of each cell (``"0"``, ``"1"``, ...; ``"0"`` the largest).
    ``adata.obsm["X_pca"]``, ``adata.obsm["X_umap"]``, ``adata.obsp["distances"]``, ``adata.obsp["connectivities"]``
        The embeddings and the neighbour graph (scanpy's own keys), with ``adata.uns["pca"]``,
        ``adata.uns["neighbors"]``, ``adata.uns["umap"]``, ``adata.uns[key_added]``.
    ``adata.var["highly_variable"]``
        The genes the PCA used (not for scaled input).
    ``adata.layers["counts"]``
        The raw counts, when ``.X`` held counts (``.X`` becomes log-normalised).
    ``adata.uns["rank_genes_groups"]``
        The markers of each cluster, ``n_genes`` per cluster.
    ``adata.uns["cellscribe_cluster"]["params"]``
        The parameters, ``input`` (the matrix kind found), ``normalised`` (bool), ``n_clusters``,
        ``markers_on`` (``"X"`` or ``"raw"``) and ``seconds`` per step.
    """
    adata = adata.copy() if copy else adata
    check_not_empty(adata)
    if adata.n_obs < MIN_CELLS:
        raise InputError(f"Clustering needs at least {MIN_CELLS} cells (neighbours, a 2-D UMAP and marker tests "
                         f"between clusters); the data has {adata.n_obs}. Annotate a marker table instead "
                         "(cellscribe annotate).")
    seconds: dict[str, float] = {}
    kind = matrix_kind(adata.X)
    normalised = _normalise(adata, kind, seconds)
    comps = _embed(adata, kind, n_top_genes=n_top_genes, n_comps=n_comps, n_neighbors=n_neighbors,
                   random_state=random_state, seconds=seconds)
    _leiden_umap(adata, resolution=resolution, random_state=random_state, key_added=key_added, seconds=seconds)
    use_raw, n_clusters = _markers(adata, kind, resolution=resolution, method=method, n_genes=n_genes,
                                   key_added=key_added, seconds=seconds)
    adata.uns["cellscribe_cluster"] = {"params": {
        "resolution": float(resolution), "n_top_genes": int(n_top_genes), "n_comps": int(comps),
        "n_neighbors": int(n_neighbors), "method": method, "n_genes": int(n_genes), "random_state": int(random_state),
        "key_added": key_added, "input": kind, "normalised": bool(normalised), "n_clusters": int(n_clusters),
        "markers_on": "raw" if use_raw else "X",
        "seconds": {k: float(np.round(v, 3)) for k, v in seconds.items()},
    }}
    log.info("Leiden (resolution %g): %d clusters of %d cells", resolution, n_clusters, adata.n_obs)
    return adata if copy else None


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the seconds the block takes as ``seconds[step]``."""
    clock = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - clock


def _normalise(adata: AnnData, kind: str, seconds: dict[str, float]) -> bool:
    """Normalise counts (kept in ``layers["counts"]``) or unnormalised values in place, and log1p
    them; whether it did."""
    import scanpy as sc  # heavy: imported on use (see the module docstring)

    if kind not in ("counts", "unnormalised"):
        log.info("adata.X looks %s: not normalised again", kind.replace("_", "-"))
        return False
    with _timed(seconds, "normalise"):
        if kind == "counts":
            adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    return True


def _embed(adata: AnnData, kind: str, *, n_top_genes: int, n_comps: int, n_neighbors: int, random_state: int,
           seconds: dict[str, float]) -> int:
    """Highly variable genes (not on scaled input), PCA and the neighbour graph; the components used."""
    import scanpy as sc  # heavy: imported on use (see the module docstring)

    mask_var = None
    if kind != "scaled" and adata.n_vars > n_top_genes:
        with _timed(seconds, "hvg"):
            sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, flavor="seurat")
            mask_var = "highly_variable"
    with _timed(seconds, "pca_neighbors"):
        n_features = int(adata.var["highly_variable"].sum()) if mask_var else adata.n_vars
        comps = max(2, min(n_comps, adata.n_obs - 1, n_features - 1))
        sc.pp.pca(adata, n_comps=comps, mask_var=mask_var, random_state=random_state)
        sc.pp.neighbors(adata, n_neighbors=max(2, min(n_neighbors, adata.n_obs - 1)), n_pcs=comps,
                        random_state=random_state)
    return comps


def _leiden_umap(adata: AnnData, *, resolution: float, random_state: int, key_added: str,
                 seconds: dict[str, float]) -> None:
    """Leiden clusters (leidenalg) into ``obs[key_added]``, and the UMAP."""
    import scanpy as sc  # heavy: imported on use (see the module docstring)

    with _timed(seconds, "leiden"):
        with warnings.catch_warnings():  # scanpy nudges towards igraph's flavour; leidenalg is the documented choice
            warnings.simplefilter("ignore", FutureWarning)
            sc.tl.leiden(adata, resolution=resolution, flavor="leidenalg", random_state=random_state,
                         key_added=key_added)
    with _timed(seconds, "umap"):
        sc.tl.umap(adata, random_state=random_state)


def _markers(adata: AnnData, kind: str, *, resolution: float, method: str, n_genes: int, key_added: str,
             seconds: dict[str, float]) -> tuple[bool, int]:
    """Rank each cluster's marker genes (on ``.raw`` for scaled input; clusters of one cell are left
    out); ``(whether .raw was used, number of clusters)``."""
    import scanpy as sc  # heavy: imported on use (see the module docstring)

    use_raw = kind == "scaled" and adata.raw is not None
    if kind == "scaled":
        if adata.raw is None:
            log.warning("adata.X is scaled and there is no .raw: marker genes are ranked on scaled values")
        elif matrix_kind(adata.raw.X) != "log_normalised":
            log.warning(".raw looks %s, not log-normalised: marker fold changes may be off",
                        matrix_kind(adata.raw.X).replace("_", "-"))
    sizes = adata.obs[key_added].value_counts()
    ranked = [str(c) for c in adata.obs[key_added].cat.categories if sizes[c] >= 2]
    if len(ranked) < len(sizes):
        log.warning("cluster(s) %s have a single cell: no markers, no label",
                    ", ".join(str(c) for c in sizes.index if sizes[c] < 2))
    with _timed(seconds, "markers"):
        if len(sizes) < 2:
            log.warning("Leiden found a single cluster at resolution %g: no markers (raise the resolution)",
                        resolution)
        else:
            sc.tl.rank_genes_groups(adata, key_added, groups=ranked if len(ranked) < len(sizes) else "all",
                                    method=method, use_raw=use_raw, n_genes=min(n_genes, adata.n_vars),
                                    key_added="rank_genes_groups")
    return use_raw, len(sizes)
