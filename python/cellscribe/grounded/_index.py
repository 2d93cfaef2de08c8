"""The marker index retrieval searches: Cell Ontology term -> marker genes, per species and tissue.

Built once per species from the marker databases CellMarker 2.0 and singleCellBase and the
curated marker sets of Pegasus and besca (:data:`SOURCES`; :mod:`cellscribe.knowledge.pegasus`,
:mod:`cellscribe.knowledge.besca`), then kept as a pickle in ``settings.cache_dir/knowledge``,
keyed by everything that changes its content (:func:`index_key`): the sources' sha256, the
label-mapping rules (the code of :mod:`cellscribe.knowledge` and of this module, the Cell Ontology
release, rapidfuzz), the gene knowledge that resolves symbols (or its absence) and
:data:`INDEX_VERSION`:

* every record's cell name is resolved to a Cell Ontology term: CellMarker's own CL ID when it
  gives one and it is not retired (a retired ID without a replacement, such as "obsolete
  excitatory neuron", gives way to the name's term, glutamatergic neuron), else
  :func:`cellscribe.knowledge.labels.map_label` of the name (precise matches only; records of
  names that map to nothing precise are left out); singleCellBase's ``cell_subtype`` first, then
  its ``cell_type``; the curated sets' own Cell Ontology IDs (besca's nomenclature, the table
  :data:`cellscribe.knowledge.pegasus.TERMS`), then their names. Records of cancer cells are left
  out. Each curated file counts as one publication.
* every gene symbol is resolved to the official human symbol when org.Hs.eg.db knows it (aliases
  such as ``CD20`` -> ``MS4A1``, mouse ``Cd79a`` -> ``CD79A``), else kept in upper case.
* support of a gene for a term = the number of distinct publications (per source) recording it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import knowledge
from ..knowledge import besca, cellmarker, genes, ontology, pegasus, singlecellbase
from ..knowledge.labels import map_label
from ..knowledge.wheeldata import cached_pickle, knowledge_dir
from ..progress import phase

log = logging.getLogger(__name__)

#: Bumped when the index layout or its rules change; a new version builds a new file.
INDEX_VERSION = 2
SOURCES = ("cellmarker", "singlecellbase", "pegasus", "besca")


@dataclass
class MarkerIndex:
    """Marker genes per Cell Ontology term for one species.

    Attributes
    ----------
    species
        ``"human"`` or ``"mouse"``.
    support
        ``{cl_id: {gene: n_publications}}`` over all tissues and both sources.
    tissue_support
        ``{cl_id: {tissue: {gene: n_publications}}}``; tissue as the source spells it.
    source_support
        ``{source: {cl_id: {gene: n_publications}}}``.
    n_pubs
        ``{cl_id: number of distinct publications recording the term}``.
    tissues
        ``{cl_id: {tissue: number of records}}``.
    gene_terms
        ``{gene: set of cl_ids}`` (the inverted index).
    universe
        Number of distinct genes.
    """

    species: str
    support: dict[str, dict[str, int]] = field(default_factory=dict)
    tissue_support: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    source_support: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    n_pubs: dict[str, int] = field(default_factory=dict)
    tissues: dict[str, dict[str, int]] = field(default_factory=dict)
    gene_terms: dict[str, set[str]] = field(default_factory=dict)
    universe: int = 0
    all_tissues: list[str] = field(default_factory=list)


_lock = threading.Lock()
_loaded: dict[str, MarkerIndex] = {}


def get_index(species: str = "human") -> MarkerIndex:
    """The marker index of ``species``, built on first use and cached on disk."""
    with _lock:
        if species not in _loaded:
            _loaded[species] = _read_cached(species)
        return _loaded[species]


def canonical_symbols(symbols: list[str], species: str) -> dict[str, str]:
    """``{symbol: official human symbol}`` where org.Hs.eg.db resolves it, else upper case."""
    out = {s: str(s).strip().upper() for s in symbols}
    try:
        resolved = genes.to_human([s for s in symbols], species=species)  # type: ignore[arg-type]
    except Exception as exc:  # gene databases not installed: upper-case symbols only
        log.info("gene symbols not resolved through org.Hs.eg.db (%s)", exc)
        return out
    for s, human in resolved.items():
        out[s] = human.upper()
    return out


def _read_cached(species: str) -> MarkerIndex:
    path = knowledge_dir() / f"marker-index.{species}.{index_key(species)}.v{INDEX_VERSION}.pkl"

    def build() -> MarkerIndex:
        with phase(f"building the {species} marker index from CellMarker 2.0, singleCellBase, Pegasus and besca "
                   "(first use only, about 15 s)"):
            return _build(species)

    return cached_pickle(path, build, f"the {species} marker index")


def index_key(species: str) -> str:
    """The on-disk index's key: a hash of everything its content depends on.

    The sources' sha256; the mapping rules (the source of every :mod:`cellscribe.knowledge` module,
    where the label mapping, its normalisation tables, the ontology loader and the symbol
    resolution live, and of this module); the Cell Ontology release (the
    ``cellxgene-ontology-guide`` version) and ``rapidfuzz`` (fuzzy matching); and the gene
    knowledge that resolves symbols (:func:`gene_knowledge`), so an index built without
    org.Hs.eg.db is not reused once it is installed, nor one built from an older release.
    """
    parts = {
        "species": species,
        "cellmarker": cellmarker.CELLMARKER_CSV.sha256,
        "singlecellbase": singlecellbase.SINGLECELLBASE_TXT.sha256,
        "pegasus": [f.sha256 for f in pegasus.FILES.values()],
        "besca": [f.sha256 for f in (*besca.SIGNATURES.values(), besca.NOMENCLATURE)],
        "rules": _rules_digest(),
        "cellxgene-ontology-guide": _version("cellxgene-ontology-guide"),
        "rapidfuzz": _version("rapidfuzz"),
        "genes": gene_knowledge(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def gene_knowledge() -> str:
    """Identity of the gene knowledge that resolves symbols (org.Hs.eg.db through
    :mod:`cellscribe.knowledge.genes`: its sources' release dates and the gene index version), or
    ``""`` where it cannot be read (symbols are then only upper-cased)."""
    try:
        info = genes.source_info()
    except Exception as exc:  # the same fallback as canonical_symbols: gene databases not installed
        log.info("no gene knowledge for the marker index key (%s)", exc)
        return ""
    return json.dumps(info, sort_keys=True)


def _rules_digest() -> str:
    """sha256 of the code the index content follows: :mod:`cellscribe.knowledge` and this module."""
    files = sorted(Path(knowledge.__file__).parent.glob("*.py")) + [Path(__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _term_of(name: str, cache: dict[str, str | None]) -> str | None:
    if name not in cache:
        m = map_label(name)
        cache[name] = m.cl_id if (m.mapped and m.precise and not m.malignant and len(m.cl_ids) == 1) else None
    return cache[name]


def _build(species: str) -> MarkerIndex:
    cl = ontology.get()
    names: dict[str, str | None] = {}
    # (source, pub, tissue, cl_id, raw symbol)
    records: list[tuple[str, str, str, str, str]] = []
    cm = cellmarker.load(species)
    cm = cm[~cm["is_cancer"]]
    for row in cm[["cell_name", "cl_id", "symbol", "tissue_class", "pmid"]].itertuples(index=False):
        cl_id = str(row.cl_id) if isinstance(row.cl_id, str) else _term_of(str(row.cell_name), names)
        if cl_id is None or cl_id not in cl:
            continue
        try:
            cl_id = cl.resolve(cl_id)
        except KeyError:
            continue
        if cl.is_deprecated(cl_id):  # retired without a replacement ("obsolete excitatory neuron"): the name's term
            cl_id = _term_of(str(row.cell_name), names)
            if cl_id is None or cl.is_deprecated(cl_id):
                continue
        pub = f"cm:{row.pmid}" if _present(row.pmid) else f"cm:{row.cell_name}"
        records.append(("cellmarker", pub, str(row.tissue_class), cl_id, str(row.symbol)))
    scb = singlecellbase.load(species)
    for row in scb[["cell_type", "cell_subtype", "symbol", "tissue", "pmid", "entry_id"]].itertuples(index=False):
        cl_id = _term_of(str(row.cell_subtype), names) or _term_of(str(row.cell_type), names)
        if cl_id is None:
            continue
        pub = f"scb:{row.pmid}" if _present(row.pmid) else f"scb:{row.entry_id}"
        records.append(("singlecellbase", pub, str(row.tissue), cl_id, str(row.symbol)))
    for source, table in (("pegasus", pegasus.load(species)), ("besca", besca.load(species))):
        for row in table.itertuples(index=False):
            cl_id = row.cl_id or _term_of(str(row.cell_type), names)
            if cl_id is not None:
                records.append((source, str(row.pub), str(row.tissue), cl.resolve(cl_id), str(row.symbol)))

    symbols = canonical_symbols(sorted({r[4] for r in records}), "human")
    pubs: dict[tuple[str, str], set[str]] = defaultdict(set)
    tissue_pubs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    source_pubs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    term_pubs: dict[str, set[str]] = defaultdict(set)
    tissues: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for source, pub, tissue, cl_id, raw in records:
        gene = symbols[raw]
        pubs[(cl_id, gene)].add(pub)
        tissue_pubs[(cl_id, tissue, gene)].add(pub)
        source_pubs[(source, cl_id, gene)].add(pub)
        term_pubs[cl_id].add(pub)
        tissues[cl_id][tissue] += 1
    index = MarkerIndex(species=species)
    for (cl_id, gene), p in pubs.items():
        index.support.setdefault(cl_id, {})[gene] = len(p)
        index.gene_terms.setdefault(gene, set()).add(cl_id)
    for (cl_id, tissue, gene), p in tissue_pubs.items():
        index.tissue_support.setdefault(cl_id, {}).setdefault(tissue, {})[gene] = len(p)
    for (source, cl_id, gene), p in source_pubs.items():
        index.source_support.setdefault(source, {}).setdefault(cl_id, {})[gene] = len(p)
    index.n_pubs = {k: len(v) for k, v in term_pubs.items()}
    index.tissues = {k: dict(v) for k, v in tissues.items()}
    index.universe = len(index.gene_terms)
    index.all_tissues = sorted({r[2] for r in records})
    log.info("marker index (%s): %d terms, %d genes from %d records", species, len(index.support),
             index.universe, len(records))
    return index


def _present(value: object) -> bool:
    return value is not None and not pd.isna(value)
