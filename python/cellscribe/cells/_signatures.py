"""Which cell types each cell is scored against, and the marker weights that score them.

* :func:`group_markers`: each group's (cluster's) marker genes from pseudo-bulk means: genes whose
  mean log expression in the group most exceeds the mean of the other groups, among genes expressed
  in at least :data:`MIN_FRACTION` of the group's cells.
* :func:`build_panel`: the grounded candidates of every group (:func:`cellscribe.grounded.candidates`,
  re-ranked, with Cell Ontology IDs) pooled into one panel of types, with each type's marker weights
  from the marker index (genes recorded for the term, weighted by publications and specificity) as a
  sparse genes x types matrix, and each group's prior over the panel (the re-ranker's probabilities).
  With ``refine``, the panel also holds each group label's relatives in the Cell Ontology that the
  marker index has markers for (at least :data:`MIN_REFINE_MARKERS` found in the data, same broad
  lineage; labels with a broad lineage only): its nearest such ancestor (the *parent*) and every
  such descendant of that parent (children, grandchildren, siblings of the label), with each
  type's nearest such descendants (``children``) for the per-cell descent in :func:`cellscribe.cells.label_cells`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import InputError
from ..grounded import candidates as grounded_candidates
from ..grounded import get_index
from ..knowledge import ontology
from ..knowledge.lineage import broad_type

SPECIES = ("human", "mouse")
#: Marker genes per group sent to the grounded retrieval.
N_GROUP_MARKERS = 50
#: A group marker must be expressed in at least this fraction of the group's cells.
MIN_FRACTION = 0.2
#: Candidate types kept per group.
TYPES_PER_GROUP = 5
#: Recorded marker genes (present in the data) that score a type, best supported first.
MARKERS_PER_TYPE = 40
#: Prior probability of a panel type that is not among a group's own candidates.
PRIOR_FLOOR = 0.02
#: Recorded markers found in the data that a relative of a group's label needs to join the panel.
MIN_REFINE_MARKERS = 3


@dataclass
class Panel:
    """The cell types cells are scored against.

    Attributes
    ----------
    cl_ids, names
        The types (Cell Ontology IDs and names), one per column of ``weights``.
    weights
        ``scipy.sparse.csc_matrix`` genes x types: each column a type's marker weights (summing to 1).
    groups
        The group names (clusters), in code order; empty without groups.
    prior
        ``groups x types`` array: each group's probabilities over the types (rows sum to 1).
    group_labels
        Per group, the index of its top grounded type (the cluster-level label).
    group_markers
        ``{group: marker genes}`` used for the candidates.
    evidence
        Per type, the marker genes of its column, best weighted first.
    parent
        Per group, the index of its label's nearest marker-bearing ancestor of the same broad lineage,
        or -1 (none, or built without ``refine``).
    children
        Per type, the indices of its nearest marker-bearing descendants in the panel (same broad
        lineage); empty lists without ``refine``.
    """

    cl_ids: list[str]
    names: list[str]
    weights: sparse.csc_matrix
    groups: list[str]
    prior: np.ndarray
    group_labels: np.ndarray
    group_markers: dict[str, list[str]]
    evidence: list[list[str]]
    parent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    children: list[list[int]] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per type: ``cl_id``, ``name``, ``n_markers``, ``markers`` (top 10, comma-separated)."""
        return pd.DataFrame({"cl_id": self.cl_ids, "name": self.names,
                             "n_markers": [len(e) for e in self.evidence],
                             "markers": [", ".join(e[:10]) for e in self.evidence]})


def check_species(species: str) -> str:
    """``species`` lower-cased, or :class:`~cellscribe.errors.InputError` naming the supported ones."""
    value = str(species).strip().lower()
    if value not in SPECIES:
        raise InputError(f"Unknown species {species!r}; the marker databases cover {' and '.join(SPECIES)}.")
    return value


def group_markers(means: np.ndarray, fractions: np.ndarray, sizes: np.ndarray, genes: pd.Index, groups: list[str], *,
                  n: int = N_GROUP_MARKERS) -> dict[str, list[str]]:
    """Each group's top ``n`` marker genes from pseudo-bulk statistics.

    Parameters
    ----------
    means, fractions
        ``groups x genes``: mean log expression and fraction of cells expressing each gene.
    sizes
        Cells per group (weights of the "other groups" mean).
    genes, groups
        Gene symbols (columns) and group names (rows).

    Returns
    -------
    ``{group: genes}``, best first (groups with no cells get an empty list).
    """
    total = (means * sizes[:, None]).sum(axis=0)
    out: dict[str, list[str]] = {}
    for g, name in enumerate(groups):
        if sizes[g] == 0:
            out[name] = []
            continue
        rest_n = sizes.sum() - sizes[g]
        rest = (total - means[g] * sizes[g]) / rest_n if rest_n > 0 else np.zeros_like(means[g])
        diff = np.where(fractions[g] >= MIN_FRACTION, means[g] - rest, -np.inf)
        order = np.argsort(-diff, kind="stable")[:n]
        out[name] = [str(genes[i]) for i in order if np.isfinite(diff[i]) and diff[i] > 0]
    return out


def build_panel(markers: dict[str, list[str]], genes: pd.Index, *, tissue: str | None, species: str,
                types_per_group: int = TYPES_PER_GROUP, markers_per_type: int = MARKERS_PER_TYPE,
                with_prior: bool = True, refine: bool = False) -> Panel:
    """The panel of candidate types for groups with ``markers`` (see the module text).

    Parameters
    ----------
    markers
        ``{group: marker genes}`` (from :func:`group_markers`).
    genes
        The data's gene symbols (upper case); a type is scored only on its markers found here.
    tissue, species
        Passed to :func:`cellscribe.grounded.candidates`.
    types_per_group, markers_per_type
        Candidates kept per group; recorded markers per type.
    with_prior
        Keep each group's prior and label (clusters given); ``False`` for pseudo-clusters.
    refine
        Add each group label's ontology relatives with markers (see the module text); only with
        ``with_prior``. A relative's prior in a group is the group label's.

    Returns
    -------
    A :class:`Panel`. Raises :class:`~cellscribe.errors.InputError` when no group's markers name a
    known cell type.
    """
    species = check_species(species)
    index = get_index(species)
    per_group: dict[str, list[tuple[str, str, float]]] = {}
    for group, genes_of_group in markers.items():
        found = grounded_candidates(genes_of_group, tissue=tissue, species=species) if genes_of_group else []
        per_group[group] = [(c.cl_id, c.name, float(c.probability or 0.0)) for c in found[:types_per_group]]
    column = {g: i for i, g in enumerate(genes)}
    n_terms = max(1, len(index.support))
    cl_ids: list[str] = []
    names: list[str] = []
    cols: list[dict[int, float]] = []
    evidence: list[list[str]] = []
    for found in per_group.values():
        for cl_id, name, _p in found:
            if cl_id in cl_ids:
                continue
            weights = _type_weights(index.support.get(cl_id, {}), index.gene_terms, column, n_terms, markers_per_type)
            if not weights:
                continue
            cl_ids.append(cl_id)
            names.append(name if name not in names else f"{name} ({cl_id})")
            cols.append({column[g]: w for g, w in weights.items()})
            evidence.append(list(weights))
    groups = list(markers) if with_prior else []
    labels = np.full(len(groups), -1, dtype=np.int64)
    for g, group in enumerate(groups):
        kept = [cl for cl, _n, _p in per_group[group] if cl in cl_ids]
        if kept:
            labels[g] = cl_ids.index(kept[0])
    parent = np.full(len(groups), -1, dtype=np.int64)
    if refine and cl_ids:
        for g in range(len(groups)):
            if labels[g] < 0:
                continue
            label = cl_ids[labels[g]]
            if broad_type(label) is None:
                continue
            up, relatives = _relatives(label, index, column, n_terms, markers_per_type)
            for cl_id, weights in relatives.items():
                if cl_id in cl_ids:
                    continue
                cl_ids.append(cl_id)
                name = ontology.get().name(cl_id)
                names.append(name if name not in names else f"{name} ({cl_id})")
                cols.append({column[gene]: w for gene, w in weights.items()})
                evidence.append(list(weights))
            parent[g] = cl_ids.index(up) if up is not None else -1
    if not cl_ids:
        raise InputError("No group's marker genes name a known cell type in the marker databases. Check that "
                         f"var_names are gene symbols (or pass gene_symbols=) and that species={species!r} is right.")
    rows = [r for c in cols for r in c]
    col_idx = [j for j, c in enumerate(cols) for _ in c]
    vals = [v for c in cols for v in c.values()]
    weights_matrix = sparse.csc_matrix((np.asarray(vals, dtype=np.float32), (rows, col_idx)),
                                       shape=(len(genes), len(cl_ids)))
    prior = np.full((len(groups), len(cl_ids)), PRIOR_FLOOR, dtype=np.float64)
    position = {c: j for j, c in enumerate(cl_ids)}
    children = _children(cl_ids) if refine else [[] for _ in cl_ids]
    for g, group in enumerate(groups):
        for cl, _n, p in per_group[group]:
            if cl in position:
                prior[g, position[cl]] = max(p, PRIOR_FLOOR)
        if refine and labels[g] >= 0:
            root = parent[g] if parent[g] >= 0 else labels[g]
            for j in _below(int(root), children):
                prior[g, j] = max(prior[g, j], prior[g, labels[g]])
        prior[g] /= prior[g].sum()
    return Panel(cl_ids=cl_ids, names=names, weights=weights_matrix, groups=[str(g) for g in groups], prior=prior,
                 group_labels=labels, group_markers=markers, evidence=evidence, parent=parent, children=children)


def _relatives(label: str, index: Any, column: dict[str, int], n_terms: int, k: int
               ) -> tuple[str | None, dict[str, dict[str, float]]]:
    """The nearest marker-bearing ancestor of ``label`` in its broad lineage (or ``None``) and the marker
    weights of that ancestor and of every marker-bearing descendant of it (or of ``label``), same lineage."""
    cl = ontology.get()
    lineage = broad_type(label)

    def same(t: str) -> bool:
        return broad_type(t) == lineage

    def weights(t: str) -> dict[str, float]:
        w = _type_weights(index.support.get(t, {}), index.gene_terms, column, n_terms, k)
        return w if len(w) >= MIN_REFINE_MARKERS else {}

    above = [t for t in cl.ancestors(label) if t in index.support and same(t) and weights(t)]
    near = [t for t in above if not any(e != t and cl.is_a(e, t) for e in above)]
    up = sorted(near)[0] if near else None
    root = up or label
    out = {root: weights(root)} if up else {}
    for t in sorted(cl.descendants(root)):
        if t in index.support and same(t):
            w = weights(t)
            if w:
                out[t] = w
    return up, out


def _children(cl_ids: list[str]) -> list[list[int]]:
    """Per type, its nearest descendants among ``cl_ids`` of the same broad lineage."""
    cl = ontology.get()
    lineage = [broad_type(c) for c in cl_ids]
    out: list[list[int]] = []
    for i, a in enumerate(cl_ids):
        below = [j for j, b in enumerate(cl_ids) if lineage[i] is not None and j != i and b != a
                 and cl.is_a(b, a) and lineage[j] == lineage[i]]
        out.append([j for j in below if not any(e != j and cl.is_a(cl_ids[j], cl_ids[e]) for e in below)])
    return out


def _below(root: int, children: list[list[int]]) -> set[int]:
    """``root`` and every type reachable from it through ``children``."""
    seen, todo = {root}, [root]
    while todo:
        for j in children[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _type_weights(support: dict[str, int], gene_terms: dict[str, set[str]], column: dict[str, int], n_terms: int,
                  k: int) -> dict[str, float]:
    """A type's marker weights (sum 1): ``log1p(publications) * log(n_terms / terms recording the gene)``,
    over its ``k`` best-weighted recorded markers present in the data."""
    scored = {g: math.log1p(n) * math.log(n_terms / max(1, len(gene_terms.get(g, ())))) for g, n in support.items()
              if g in column}
    best = sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    total = sum(w for _g, w in best)
    return {g: w / total for g, w in best if w > 0} if total > 0 else {}
