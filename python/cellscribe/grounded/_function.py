"""How much a cluster's markers do what a cell type's recorded markers do, through GO.

Retrieval's other features count the genes a cluster shares with a type. This one reads the
cluster's whole marker list: a gene's profile is its GO biological processes (NCBI Gene's GO
annotation, :mod:`cellscribe.knowledge.genes`), each process weighted by its inverse frequency
over the marker index's genes and each gene's profile scaled by ``1 / sqrt(number of processes)``;
a type's profile is the sum of its recorded markers' profiles (each weighted by
``log(1 + publications)``), a cluster's the sum of its markers' profiles (top markers weigh more,
``1 / sqrt(1 + position)``), and :meth:`GoProfiles.similarity` is their cosine. A type that shares
one gene with the cluster but whose other markers serve another program scores low: keratinocyte
markers (LGALS7, KRT4, IVL, SPINK5) against a T-cell subtype recorded with MAL.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..knowledge import genes
from ._index import MarkerIndex, get_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoProfiles:
    """GO biological-process profiles of the marker index's genes and types (one species).

    Attributes
    ----------
    gene_rows
        ``{gene: row of gene_matrix}`` for the index genes GO annotates.
    gene_matrix
        ``(genes, processes)``: inverse-frequency weights, each row scaled by ``1 / sqrt(its processes)``.
    type_rows
        ``{cl_id: row of type_matrix}``.
    type_matrix
        ``(types, processes)``, rows of unit length (zero for a type none of whose genes GO annotates).
    """

    gene_rows: dict[str, int]
    gene_matrix: sparse.csr_matrix
    type_rows: dict[str, int]
    type_matrix: sparse.csr_matrix

    def similarity(self, markers: Sequence[str], cl_ids: Sequence[str]) -> np.ndarray:
        """Cosine between the profile of ``markers`` (index symbols, most telling first) and each
        type's; 0 for a type or a marker list without GO annotation."""
        weights = np.zeros(self.gene_matrix.shape[0])
        for position, gene in enumerate(markers):
            row = self.gene_rows.get(gene)
            if row is not None:
                weights[row] += 1.0 / math.sqrt(1 + position)
        query = np.asarray(self.gene_matrix.T @ weights).ravel()
        norm = np.linalg.norm(query)
        rows = [self.type_rows.get(t, -1) for t in cl_ids]
        if norm == 0 or not rows:
            return np.zeros(len(rows))
        sims = np.asarray(self.type_matrix[[max(r, 0) for r in rows]] @ (query / norm)).ravel()
        return np.where(np.array(rows) >= 0, sims, 0.0)


_profiles: dict[int, GoProfiles] = {}


def go_profiles(species: str) -> GoProfiles:
    """The GO profiles of ``species``' marker index (built once per index, in about a second);
    empty when the gene knowledge is not installed (every similarity is then 0)."""
    index: MarkerIndex = get_index(species)
    if id(index) not in _profiles:
        _profiles[id(index)] = _build(index, species)
    return _profiles[id(index)]


def _build(index: MarkerIndex, species: str) -> GoProfiles:
    try:
        known = genes.facts(sorted(index.gene_terms), species=species)  # type: ignore[arg-type]
    except Exception as exc:  # gene databases not installed: no profiles
        log.info("GO profiles not built: gene knowledge unavailable (%s)", exc)
        known = {}
    processes = {g: f.go_bp for g, f in known.items() if f.go_bp}
    gene_rows = {g: i for i, g in enumerate(processes)}
    columns: dict[str, int] = {}
    ii, jj = [], []
    for g, terms in processes.items():
        for term in dict.fromkeys(terms):
            ii.append(gene_rows[g])
            jj.append(columns.setdefault(term, len(columns)))
    binary = sparse.csr_matrix((np.ones(len(ii)), (ii, jj)), shape=(len(gene_rows), len(columns)))
    idf = np.log(max(len(gene_rows), 1) / np.maximum(np.asarray(binary.sum(axis=0)).ravel(), 1))
    per_gene = 1.0 / np.sqrt(np.maximum(np.asarray(binary.sum(axis=1)).ravel(), 1))
    gene_matrix = sparse.csr_matrix(sparse.diags(per_gene) @ binary @ sparse.diags(idf))

    type_rows = {t: i for i, t in enumerate(index.support)}
    ti, tj, tv = [], [], []
    for t, support in index.support.items():
        for g, n in support.items():
            if g in gene_rows:
                ti.append(type_rows[t])
                tj.append(gene_rows[g])
                tv.append(math.log1p(n))
    weights = sparse.csr_matrix((tv, (ti, tj)), shape=(len(type_rows), len(gene_rows)))
    types = sparse.csr_matrix(weights @ gene_matrix)
    norms = np.sqrt(np.asarray(types.multiply(types).sum(axis=1)).ravel())
    types = sparse.csr_matrix(sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ types)
    return GoProfiles(gene_rows, gene_matrix, type_rows, types)
