"""The case for a label, built from knowledge before any model writes a word.

:func:`build_case` gathers what an expert would check: the chosen type's markers that the cluster
shows, each with its support (publications in CellMarker 2.0 / singleCellBase, and how many types
the databases record it for); what the type is (the Cell Ontology definition) and what the top
evidence genes encode (NCBI Gene); the differential (the nearest rival candidate that is not an
ancestor or a subtype of the chosen type, its recorded markers the cluster lacks, and the markers
that separate the two); and caveats (a marker list dominated by ribosomal, mitochondrial,
cell-cycle, stress or haemoglobin genes; a second lineage's markers; a rival nearly as probable).

Evidence genes are only markers with real support: recorded for the type in at least
:data:`MIN_PUBLICATIONS` publications and in at least :data:`MIN_SHARE_OF_TOP` of the publications
of the type's best-supported marker (``LDHB``, recorded once for CD4 T cells, is not evidence for
them). A type the databases know only from a few papers keeps its best-recorded markers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..grounded import Candidate, candidates, canonical_symbols, get_index
from ..knowledge import genes as gene_facts
from ..knowledge import labels, ontology
from ..knowledge.lineage import broad_related, broad_type
from ._genesets import LOW_INFORMATION_SHARE, TOP, low_information

log = logging.getLogger(__name__)

MIN_PUBLICATIONS = 3
MIN_SHARE_OF_TOP = 0.03
#: Evidence genes shown at most, best supported first within marker order.
MAX_EVIDENCE = 6
#: A rival whose probability is within this of the chosen type's makes a low-margin caveat.
LOW_MARGIN = 0.1
#: Genes of a second lineage that make a two-lineage caveat (supported for the other lineage's
#: type, not recorded for the chosen type, among the cluster's top markers).
TWO_LINEAGE_GENES = 2
TWO_LINEAGE_TOP = 20
#: A gene recorded for more types than this is too common to mark a second lineage.
TWO_LINEAGE_MAX_TYPES = 25
#: How much of the confidence a caveat leaves (multiplied): the flagged rows' mean agreement over
#: their mean re-ranker probability on the GPTCelltype dev table (7, 14 and 65 rows; each
#: dataset's factor fitted on the others gives the same picture: flagged rows' mean confidence
#: 0.55 -> 0.19 against 0.21 agreement, 0.51 -> 0.28 against 0.29, 0.40 -> 0.32 against 0.30).
CONFIDENCE_FACTOR = {"low information": 0.4, "two lineages": 0.55, "weak evidence": 0.75}


@dataclass(frozen=True)
class Evidence:
    """A marker of the cluster recorded for the chosen type."""

    gene: str
    publications: int
    n_types: int
    name: str = ""

    def text(self) -> str:
        return f"{self.gene} ({self.publications} publications, recorded for {self.n_types} types)"


@dataclass(frozen=True)
class Rival:
    """The nearest alternative: a candidate that is neither an ancestor nor a subtype."""

    cl_id: str
    name: str
    probability: float
    present: tuple[str, ...]
    absent: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """What is known about one cluster's label; every explanation is checked against it.

    Attributes
    ----------
    cl_id, name, definition, broad
        The chosen Cell Ontology term, its definition and broad lineage (``cl_id`` ``None``: a
        model's label that names no Cell Ontology term).
    genes
        The cluster's markers, strongest first.
    evidence
        Supported markers of the chosen type present in the cluster (see the module docstring).
    gene_names
        ``{gene: NCBI full name}`` for the markers (empty when the gene databases are missing).
    rival
        The nearest rival, or ``None``.
    separating
        Evidence genes the databases do not record for the rival.
    caveats
        Sentences a biologist must read (empty when none applies).
    flags
        ``"low information"``, ``"two lineages"``, ``"low margin"``, ``"weak evidence"``.
    second_lineage
        With ``"two lineages"``: the other type and its genes.
    """

    cl_id: str | None
    name: str
    definition: str
    broad: str | None
    genes: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    gene_names: dict[str, str] = field(default_factory=dict)
    rival: Rival | None = None
    separating: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    second_lineage: tuple[str, tuple[str, ...]] | None = None
    low_information_classes: tuple[str, ...] = ()

    @property
    def caveat_of(self) -> dict[str, str]:
        """``{flag: caveat}`` (flags and caveats are added in pairs)."""
        return dict(zip(self.flags, self.caveats, strict=True))

    @property
    def evidence_genes(self) -> list[str]:
        return [e.gene for e in self.evidence]

    def confidence(self, probability: float) -> float:
        """``probability`` lowered for each caveat that makes the label less certain."""
        for flag in self.flags:
            probability *= CONFIDENCE_FACTOR.get(flag, 1.0)
        return round(float(probability), 4)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def supported(index_support: dict[str, int]) -> int:
    """The publications a gene needs for a type with ``index_support`` to count as evidence."""
    peak = max(index_support.values(), default=0)
    return min(peak, max(MIN_PUBLICATIONS, math.ceil(MIN_SHARE_OF_TOP * peak)))


def build_case(genes: list[str], chosen: Candidate, ranked: list[Candidate], *, species: str = "human") -> Case:
    """The case for labelling a cluster with markers ``genes`` as ``chosen``.

    Parameters
    ----------
    genes
        The cluster's markers, strongest first.
    chosen
        The chosen candidate (from :func:`cellscribe.grounded.candidates`).
    ranked
        All candidates, most probable first (the rival and a second lineage come from them).
    species
        ``"human"`` or ``"mouse"``.
    """
    index = get_index(species)
    cl = ontology.get()
    support = index.support.get(chosen.cl_id, {})
    need = supported(support)
    canon = canonical_symbols(list(genes), species)
    evidence_all = [Evidence(g, support[canon[g]], len(index.gene_terms.get(canon[g], ())))
                    for g in genes if support.get(canon[g], 0) >= need]
    evidence = tuple(evidence_all[:MAX_EVIDENCE])
    names = _gene_names(genes, species)
    evidence = tuple(Evidence(e.gene, e.publications, e.n_types, names.get(e.gene, "")) for e in evidence)

    rival = _rival(chosen, ranked, genes, canon, index, cl)
    rival_support = index.support.get(rival.cl_id, {}) if rival else {}
    separating = tuple(e.gene for e in evidence if canon[e.gene] not in rival_support)

    flags: list[str] = []
    caveats: list[str] = []
    share, classes = low_information(genes)
    if share >= LOW_INFORMATION_SHARE:
        flags.append("low information")
        caveats.append(f"{round(share * 100)} % of the top {min(TOP, len(genes))} markers are "
                       f"{' and '.join(classes[:2])} genes, so the label rests on few informative markers.")
    elif not evidence:
        flags.append("weak evidence")
        caveats.append(f"No marker of the cluster is well recorded for {chosen.name}; the label is tentative.")
    second = _second_lineage(chosen, ranked, genes, canon, index)
    if second:
        flags.append("two lineages")
        caveats.append(f"{join(list(second[1]))} are markers of {second[0]}, so the cluster may hold doublets "
                       "or contaminating cells.")
    if rival and (chosen.probability or 0.0) - rival.probability < LOW_MARGIN:
        flags.append("low margin")
        caveats.append(f"{cap(rival.name)} is nearly as likely ({rival.probability:.2f} vs "
                       f"{chosen.probability or 0.0:.2f}).")
    return Case(cl_id=chosen.cl_id, name=chosen.name, definition=cl.definition(chosen.cl_id),
                broad=broad_type(chosen.cl_id), genes=tuple(genes), evidence=evidence, gene_names=names,
                rival=rival, separating=separating, caveats=tuple(caveats), flags=tuple(flags),
                second_lineage=second, low_information_classes=tuple(classes))


def case_for_label(genes: list[str], label: str, *, tissue: str | None = None, species: str = "human") -> Case:
    """The case for a label a model wrote (mode ``"llm"``): the label mapped to the Cell Ontology
    and built like a grounded choice; a label that maps to no term gets a case with no evidence
    (so a sentence that claims any is rendered from it instead)."""
    ranked = candidates(genes, tissue=tissue, species=species)
    ids = labels.map_label(label).cl_ids
    chosen = next((c for c in ranked if c.cl_id in ids), None)
    if chosen is None and ids:
        chosen = Candidate(cl_id=ids[0], name=ontology.get().name(ids[0]), score=0.0, evidence=())
    if chosen is not None:
        return build_case(genes, chosen, ranked, species=species)
    return Case(cl_id=None, name=label, definition="", broad=None, genes=tuple(genes), evidence=(),
                gene_names=_gene_names(genes, species), flags=("unmapped",),
                caveats=(f"{cap(label)} is not a Cell Ontology term, so the marker databases cannot back it.",))


def cap(text: str) -> str:
    """``text`` with its first letter upper-cased (type names start sentences)."""
    return text[:1].upper() + text[1:]


def join(items: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return "".join(items) if len(items) <= 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _gene_names(genes: list[str], species: str) -> dict[str, str]:
    try:
        found = gene_facts.facts(genes, species=species)  # type: ignore[arg-type]
    except Exception as exc:  # gene databases not installed: no names (descriptions fail the check)
        log.info("no gene names for the case (%s)", exc)
        return {}
    return {g: f.name for g, f in found.items()}


def _related(cl: ontology.CellOntology, a: str, b: str) -> bool:
    return cl.is_a(a, b) or cl.is_a(b, a)


def _rival(chosen: Candidate, ranked: list[Candidate], genes: list[str], canon: dict[str, str], index: Any,
           cl: ontology.CellOntology) -> Rival | None:
    present = set(canon.values())
    for c in ranked:
        if c.cl_id == chosen.cl_id or _related(cl, c.cl_id, chosen.cl_id):
            continue
        sup = index.support.get(c.cl_id, {})
        need = supported(sup)
        own = index.support.get(chosen.cl_id, {})
        top = [g for g, n in sorted(sup.items(), key=lambda kv: (-kv[1], kv[0])) if n >= need and g not in own]
        absent = tuple(g for g in top if g not in present)[:3]
        shown = tuple(g for g in genes if sup.get(canon[g], 0) >= need)[:3]
        return Rival(c.cl_id, c.name, round(float(c.probability or 0.0), 4), shown, absent)
    return None


def _second_lineage(chosen: Candidate, ranked: list[Candidate], genes: list[str], canon: dict[str, str],
                    index: Any) -> tuple[str, tuple[str, ...]] | None:
    """Another lineage's program among the top markers: at least :data:`TWO_LINEAGE_GENES` specific
    genes the databases support for types of one other, unrelated broad lineage (platelet genes in
    a lymphocyte cluster) and not for the chosen type. Returns that lineage's best-matching type's
    name and the genes."""
    mine = broad_type(chosen.cl_id)
    if mine is None:
        return None
    own = index.support.get(chosen.cl_id, {})
    by_type: dict[str, list[str]] = {}
    for g in genes[:TWO_LINEAGE_TOP]:
        c = canon[g]
        terms = index.gene_terms.get(c, ())
        if own.get(c, 0) or not terms or len(terms) > TWO_LINEAGE_MAX_TYPES:
            continue
        for t in terms:
            sup = index.support.get(t, {})
            if sup.get(c, 0) >= max(1, supported(sup)):
                by_type.setdefault(t, []).append(g)
    best: tuple[str, tuple[str, ...]] | None = None
    for t, found in sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        other = broad_type(t)
        if len(found) < TWO_LINEAGE_GENES or other is None or other == mine \
                or broad_related(frozenset({mine}), frozenset({other})):
            continue
        best = (ontology.get().name(t), tuple(found[:3]))
        break
    return best
