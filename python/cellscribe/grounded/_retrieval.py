"""Candidate cell types for a cluster's marker genes, from the marker index (no language model).

:func:`retrieve` scores every Cell Ontology term that shares at least one gene with the markers:

* a hypergeometric test of the overlap between the markers and the term's recorded markers, over
  all tissues (``hyper_all``) and over records of the cluster's tissue only (``hyper_tissue``),
  as ``-log10 p``;
* how specific the shared genes are (each weighted by ``log(n_terms / n_terms_with_gene)``) and how
  well supported (publications recording the gene for the term);
* how much of the term's own best-supported markers the cluster shows (``coverage``);
* where the shared genes sit in the marker list (top markers weigh more);
* the term's depth in the Cell Ontology and whether a supported subtype is also a candidate, so
  that the most specific supported type can win; the depth again where the term shares a single
  gene with the markers (``depth_one_gene``), so that the re-ranker can tell a deep type earned by
  one shared gene (a T-cell subtype recorded with MAL, for a keratinocyte list) from one earned by
  several;
* how much the whole marker list does what the term's recorded markers do, through GO biological
  processes (``go_similarity``, :mod:`._function`).

Terms that cannot name the cluster are never candidates (:func:`cellscribe.knowledge.anatomy.plausible`):
those restricted to another species (``"... (Primate)"`` for mouse data) and those whose anatomy
contradicts the given tissue (``"cochlear outer hair cell"`` in a cortex, ``"hepatocyte"`` in PBMC).

The base ranking (``score``) is ``hyper_all + hyper_tissue``; :mod:`._rerank` re-ranks the top
candidates with a small learned model over all features.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..knowledge import anatomy, ontology, ontology_markers
from ..knowledge.ontology import normalize
from ._function import go_profiles
from ._index import MarkerIndex, canonical_symbols, get_index

#: Features of a candidate, in the order the re-ranker reads them.
FEATURES = (
    "hyper_all", "hyper_tissue", "hyper_prop", "overlap", "overlap_tissue", "specificity", "support",
    "coverage", "position", "depth", "log_pubs", "tissue_share", "n_sources", "has_sub", "sub_ratio",
    "rank_inv", "gap", "hyper_core", "relative", "llr", "llr_rank_inv", "go_similarity", "depth_one_gene",
)
#: The best-scoring plausible types whose named subtypes join the candidates (``Candidate.by_ancestor``).
LEADING = 3
#: How high in the marker list a gene a type's name states must sit to count (``Candidate.named``).
NAMED_TOP = 3

#: Tissue names of marker tables -> words of the marker databases' tissues that count as the same.
TISSUE_ALIASES: dict[str, tuple[str, ...]] = {
    "pbmc": ("blood",), "peripheral blood": ("blood",), "blood": ("blood", "pbmc"),
    "fat": ("adipose", "fat"), "adipose": ("adipose", "fat"),
    "mammary": ("breast", "mammary"), "breast": ("breast", "mammary"),
    "motor cortex": ("brain", "cortex"), "cortex": ("brain", "cortex"),
    "large intestine": ("colon", "intestine", "gut", "colorectum", "rectum"),
    "small intestine": ("intestine", "gut", "ileum", "jejunum", "duodenum"),
    "colon cancer": ("colon", "intestine", "colorectum"),
    "vasculature": ("blood vessel", "artery", "vein", "vessel", "endothelium", "aorta"),
    "trachea": ("trachea", "airway", "bronchus", "bronchi", "lung"),
    "tongue": ("tongue", "oral", "mouth"),
    "tonsil": ("tonsil", "lymph node", "lymphoid"),
    "fetal development": ("fetus", "fetal", "embryo"),
    "skeletal muscle": ("muscle",), "muscle": ("muscle",),
    "eye": ("eye", "retina", "cornea"),
    "uterus": ("uterus", "endometrium"),
    "lung cancer and brain metastasis": ("lung", "brain"),
    "b cell lymphoma": ("lymph node", "lymph", "blood"),
    "salivary gland": ("salivary gland",),
}


@dataclass(frozen=True)
class Candidate:
    """One candidate cell type for a cluster.

    Attributes
    ----------
    cl_id, name
        The Cell Ontology term.
    score
        The base retrieval score (``hyper_all + hyper_tissue``).
    evidence
        The cluster's markers recorded for this type, in marker order.
    features
        ``{name: value}`` for every name in :data:`FEATURES`.
    named
        Genes the type's name states (``"sst GABAergic interneuron"``: SST) that are among the
        cluster's top :data:`NAMED_TOP` markers.
    by_ancestor
        Whether it is a candidate as a subtype of a leading type that a leading marker names, rather
        than for its own evidence (such types record few genes).
    probability
        Filled by the re-ranker: the chance this type is right, else ``None``.
    """

    cl_id: str
    name: str
    score: float
    evidence: tuple[str, ...]
    features: dict[str, float] = field(default_factory=dict)
    probability: float | None = None
    named: tuple[str, ...] = ()
    by_ancestor: bool = False


def retrieve(genes: Sequence[str], *, tissue: str | None = None, species: str = "human",
             k: int = 10) -> list[Candidate]:
    """The ``k`` best candidate cell types for a cluster's markers, best first.

    Parameters
    ----------
    genes
        The cluster's marker genes, most telling first (symbols, aliases or mouse symbols).
    tissue
        The tissue (``"PBMC"``, ``"Lung"``); its records weigh extra, and types of other organs are
        left out. ``None``: all tissues alike.
    species
        ``"human"`` or ``"mouse"``; types restricted to another species are left out.
    k
        How many candidates to return.

    Returns
    -------
    :class:`Candidate` objects sorted by ``score`` (descending); empty when no gene is known.
    """
    from scipy.stats import hypergeom

    index = get_index(species)
    cl = ontology.get()
    canon = canonical_symbols(list(dict.fromkeys(str(g) for g in genes)), species)
    query: list[str] = list(dict.fromkeys(canon[str(g)] for g in dict.fromkeys(str(g) for g in genes)))
    position = {g: i for i, g in enumerate(query)}
    known = [g for g in query if g in index.gene_terms]
    if not known:
        return []
    n = len(known)
    N = index.universe
    n_terms = len(index.support)
    matched = _matching_tissues(tissue, tuple(index.all_tissues)) if tissue else frozenset()
    terms = set().union(*(index.gene_terms[g] for g in known))

    def hyper(k_: int, K: int) -> float:
        if k_ == 0 or K == 0:
            return 0.0
        p = float(hypergeom.sf(k_ - 1, N, K, n))
        return -math.log10(max(p, 1e-300))

    background = _background(index)
    raw: list[tuple[str, dict[str, float], tuple[str, ...]]] = []
    for t in terms:
        sup = index.support[t]
        shared = [g for g in known if g in sup]
        tis_genes: dict[str, int] = {}
        for tis in matched & index.tissue_support.get(t, {}).keys():
            for g, c in index.tissue_support[t][tis].items():
                tis_genes[g] = tis_genes.get(g, 0) + c
        shared_tis = [g for g in known if g in tis_genes]
        top = sorted(sup.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        core = [g for g, c in sup.items() if c >= 2]
        shared_core = [g for g in shared if sup[g] >= 2]
        peak = top[0][1]
        n_records = sum(index.tissues.get(t, {}).values())
        in_tissue = sum(c for tis, c in index.tissues.get(t, {}).items() if tis in matched)
        sources = sum(any(g in index.source_support.get(s, {}).get(t, {}) for g in shared)
                      for s in index.source_support)
        feats = {
            "hyper_all": hyper(len(shared), len(sup)),
            "hyper_tissue": hyper(len(shared_tis), len(tis_genes)),
            "hyper_core": hyper(len(shared_core), len(core)),
            "relative": sum(sup[g] / peak for g in shared),
            "llr": _llr(known, sup, index.n_pubs.get(t, 0), background),
            "overlap": float(len(shared)),
            "overlap_tissue": float(len(shared_tis)),
            "specificity": sum(math.log(n_terms / len(index.gene_terms[g])) for g in shared),
            "support": sum(math.log1p(sup[g]) for g in shared),
            "coverage": sum(1.0 for g, _ in top if g in position) / max(1, len(top)),
            "position": sum(1.0 / math.sqrt(1 + position[g]) for g in shared),
            "depth": float(cl.depth(t)),
            "log_pubs": math.log1p(index.n_pubs.get(t, 0)),
            "tissue_share": in_tissue / n_records if n_records else 0.0,
            "n_sources": float(sources),
        }
        raw.append((t, feats, tuple(shared)))

    by_llr = _add_relative_features(raw, index, cl, known, hyper)
    raw.sort(key=lambda r: (-(r[1]["hyper_all"] + r[1]["hyper_tissue"]), -r[1]["depth"], r[0]))
    best = raw[0][1]["hyper_all"] + raw[0][1]["hyper_tissue"]
    # ranks and relative features count every term, and the pool is the top k by score and k/2 by
    # likelihood ratio, as when the re-ranker was trained; implausible terms are then left out (the
    # next plausible ones only where none is left: deeper candidates are out of the model's range).
    # So do the subtypes of the LEADING plausible types whose names state one of the top NAMED_TOP
    # markers: "sst GABAergic interneuron" under "interneuron" when Sst leads records few genes of its
    # own and so ranks low by score alone (chosen_index may then choose it).
    fits = {t for t, _f, _s in raw if anatomy.plausible(t, tissue=tissue, species=species)}
    pool = {t for t, _f, _s in raw[:k]} | {t for t, _f, _s in by_llr[: max(1, k // 2)]}
    leading = [t for t, _f, _s in raw if t in fits][:LEADING]
    top_markers = set(query[:NAMED_TOP])
    in_raw = {t for t, _f, _s in raw}
    by_ancestor = {d for t in leading for d in cl.descendants(t)
                   if d in in_raw and d in fits and d not in pool
                   and top_markers & set(ontology_markers.name_genes(d))}
    pool |= by_ancestor
    pool &= fits
    if not pool:
        pool = set([t for t, _f, _s in raw if t in fits][:k])
    pool_ids = sorted(pool)
    go = dict(zip(pool_ids, go_profiles(species).similarity(query, pool_ids), strict=True))
    out = []
    for rank, (t, feats, shared) in enumerate(raw):
        if t not in pool:
            continue
        score = feats["hyper_all"] + feats["hyper_tissue"]
        feats["rank_inv"] = 1.0 / (1 + rank)
        feats["gap"] = best - score
        feats["go_similarity"] = float(go[t])
        feats["depth_one_gene"] = feats["depth"] if len(shared) == 1 else 0.0
        named = tuple(g for g in ontology_markers.name_genes(t) if g in top_markers)
        out.append(Candidate(cl_id=t, name=cl.name(t), score=score, evidence=shared,
                             features={f: float(feats[f]) for f in FEATURES}, named=named,
                             by_ancestor=t in by_ancestor))
    return out


def _add_relative_features(raw: list[tuple[str, dict[str, float], tuple[str, ...]]], index: MarkerIndex, cl: Any,
                           known: list[str], hyper: Callable[[int, int], float]
                           ) -> list[tuple[str, dict[str, float], tuple[str, ...]]]:
    """Add the features that compare a candidate with others: enrichment of its markers pooled with
    its subtypes' (``hyper_prop``), whether a subtype is also a candidate and how much better it
    scores (``has_sub``, ``sub_ratio``), and its rank by likelihood ratio; returns the candidates
    sorted by that ratio."""
    by_id = {t: f for t, f, _ in raw}
    for t, feats, _shared in raw:
        prop_genes: set[str] = set(index.support[t])
        subs = [d for d in cl.descendants(t) if d in by_id]
        for d in cl.descendants(t):
            prop_genes.update(index.support.get(d, ()))
        feats["hyper_prop"] = hyper(sum(1 for g in known if g in prop_genes), len(prop_genes))
        base = feats["hyper_all"] + feats["hyper_tissue"]
        best_sub = max((by_id[d]["hyper_all"] + by_id[d]["hyper_tissue"] for d in subs), default=0.0)
        feats["has_sub"] = float(bool(subs))
        feats["sub_ratio"] = best_sub / base if base > 0 else 0.0
    by_llr = sorted(raw, key=lambda r: (-r[1]["llr"], -r[1]["depth"], r[0]))
    for rank, (_t, feats, _s) in enumerate(by_llr):
        feats["llr_rank_inv"] = 1.0 / (1 + rank)
    return by_llr


#: Pseudo-counts of the likelihood-ratio feature: publications added to each term, and the share of
#: them that report a gene at its background rate.
_PSEUDO_PUBS = 5.0


def _llr(genes: list[str], support: dict[str, int], n_pubs: int, background: dict[str, float]) -> float:
    """Log-likelihood ratio of the markers under the term vs the background: the share of the term's
    publications that report each gene (smoothed towards the gene's background share) over that
    background share, summed over the markers."""
    total = 0.0
    for g in genes:
        b = background.get(g, 1e-4)
        p = (support.get(g, 0) + _PSEUDO_PUBS * b) / (n_pubs + _PSEUDO_PUBS)
        total += math.log(p / b)
    return total


_backgrounds: dict[int, dict[str, float]] = {}


def _background(index: MarkerIndex) -> dict[str, float]:
    """Share of all (term, publication) pairs that report each gene."""
    key = id(index)
    if key not in _backgrounds:
        n = float(sum(index.n_pubs.values()))
        counts: dict[str, float] = {}
        for sup in index.support.values():
            for g, c in sup.items():
                counts[g] = counts.get(g, 0.0) + c
        _backgrounds[key] = {g: min(0.5, c / n) for g, c in counts.items()}
    return _backgrounds[key]


@lru_cache(maxsize=256)
def _matching_tissues(tissue: str, all_tissues: tuple[str, ...]) -> frozenset[str]:
    """The marker databases' tissue names that count as ``tissue``."""
    q = normalize(tissue)
    words = {q, *TISSUE_ALIASES.get(q, ())}
    words |= {w for w in q.split() if len(w) > 3 and w not in ("cell", "tissue", "cancer", "fetal")}
    pats = [re.compile(rf"\b{re.escape(normalize(w))}\b") for w in words if w]
    return frozenset(t for t in all_tissues if any(p.search(normalize(t)) for p in pats))


def tissue_matches(tissue: str, species: str = "human") -> list[str]:
    """The marker databases' tissues that count as ``tissue`` (to check the tissue aliases)."""
    index: MarkerIndex = get_index(species)
    return sorted(_matching_tissues(tissue, tuple(index.all_tissues)))
