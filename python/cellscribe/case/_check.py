"""Checks of an explanation against its case, whatever model or backend wrote it.

:func:`check_bullets` returns what is wrong with each bullet, in words the model can act on:

* **format**: exactly three bullets, each one or two complete sentences (ending in ``.``, ``!``
  or ``?``, not cut mid-word or after a dangling word), at most :data:`MAX_WORDS` words in all;
* **genes named**: every gene a bullet names is one of the cluster's markers, a marker of the
  rival named as absent, or part of the type's name or definition;
* **marker claims**: a gene said to mark a cell type (in a sentence that names the type) is
  recorded for that type or a close relative (a subtype, or an ancestor at most two steps up of
  the same broad lineage: not "lymphocyte" for a B cell) in the marker databases;
* **gene descriptions**: "X is/encodes Y" shares a content word with NCBI's name of X, its
  aliases or its top GO molecular functions (``MS4A1 is a cell adhesion molecule`` fails: MS4A1
  is membrane spanning 4-domains A1);
* **roles**: the first bullet names an evidence gene (when there is one), the third names the
  rival (when there is one) or the caveat.

Checks are plain text rules on the case and the local gene databases: milliseconds per explanation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..answers import count_sentences
from ..grounded import canonical_symbols, get_index
from ..knowledge import genes as gene_facts
from ..knowledge import ontology
from ..knowledge.lineage import broad_type
from ._build import Case, supported

MAX_WORDS = 300
#: Caveats the third bullet must state (a close rival is stated by naming the rival).
SERIOUS_FLAGS = frozenset({"low information", "two lineages", "weak evidence"})
MAX_SENTENCES = 2
#: Genes one bullet may name (a list of ten is not a reason).
MAX_GENES = 5
#: Upper-case words that are gene symbols or aliases in NCBI Gene but not meant as genes here.
NOT_GENES = frozenset({
    "DNA", "RNA", "MRNA", "MHC", "TCR", "BCR", "NK", "NKT", "ILC", "HLA", "CD", "GO", "NCBI", "CL", "ID", "II", "I",
    "III", "IV", "IG", "IGS", "LPS", "ATP", "GTP", "ER", "T", "B", "TH", "TREG", "AND", "OR", "NOT", "CELL", "CELLS",
    "SC", "RNA-SEQ", "PBMC", "PBMCS", "CNS", "ECM", "NF", "TNF-ALPHA", "IFN", "IL", "IGG", "IGM", "IGA", "IGE", "MAIT",
    "GABA", "OPC", "DC", "PDC", "CDC", "HSC", "MSC", "VSMC", "SMC", "AT1", "AT2", "CAF", "TAM", "MDSC",
})
#: Terms too generic to make a marker claim about ("cell", "native cell").
GENERIC_TERMS = frozenset({"CL:0000000", "CL:0000003", "CL:0000255", "CL:0000548"})
_GENE_TOKEN = re.compile(r"(?<![A-Za-z0-9-])([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*|[A-Z][a-z][a-z0-9]*\d[a-z0-9]*)"
                         r"(?![A-Za-z0-9])")
_DESCRIBE = re.compile(r"(?<![A-Za-z0-9-])([A-Za-z][A-Za-z0-9-]*)\s+(?:is|encodes|codes for)\s+(?:an?\s+|the\s+)?"
                       r"([^,.;:]+)")
_CLAIM = re.compile(r"\bmarkers?\b|\brecorded\b|\bexpressed (?:by|in|on)\b|\bcharacteristic of\b|"
                    r"\bspecific (?:to|for)\b|\bidentif(?:y|ies)\b|\bdefin(?:e|es|ing)\b|\btypical of\b|"
                    r"\bindicat(?:e|es|ing)\b")
_ABSENT = re.compile(r"\b(?:absent|missing|lacks?|lacking|not among|not expressed|not present|not detected)\b", re.I)
_TYPE_PHRASE = re.compile(
    r"((?:[A-Za-z0-9+/-]+,? ){0,4}(?:cells?|cytes?|phages?|phils?|blasts?|platelets?|neurons?|glia|"
    r"fibroblasts?|pericytes?|macrophages?|monocytes?|lymphocytes?))\b", re.I)
_STOP = frozenset("a an the of and or in on for to by with from as is are its this that these which protein gene "
                  "encodes encoding family member type cell cells human subunit molecule factor like domain "
                  "containing associated related".split())
_COPIED = re.compile(r"\s*(?:markers of the cluster|recorded markers of|nearest rival|caveat|definition|cell type|"
                     r"example|[^.:]{0,60}\(cell ontology\))[^.:]{0,40}:", re.I)
_NEGATED = re.compile(r"\b(?:not|none|no|neither|nor|absent|lacks?|lacking|missing|rather than|instead of)\b", re.I)
_NUMBER = re.compile(r"(?<![A-Za-z0-9./-])(\d+(?:\.\d+)?)(?![A-Za-z0-9/-])")
_DANGLING = frozenset("a an the of and or in on for to by with from as its their".split())


@dataclass(frozen=True)
class Violation:
    """One problem in one bullet (``bullet`` is 1-based; 0: the explanation as a whole)."""

    bullet: int
    problem: str

    def __str__(self) -> str:
        return f"bullet {self.bullet}: {self.problem}" if self.bullet else self.problem


def check_bullets(bullets: list[str], case: Case, *, species: str = "human", roles: bool = True) -> list[Violation]:
    """Every violation in ``bullets`` (an empty list: the explanation passes); ``roles=False``
    skips what each bullet must say (for explanations not written from the case)."""
    out: list[Violation] = []
    if len(bullets) != 3:
        return [Violation(0, f"give exactly three bullets, not {len(bullets)}")]
    words = sum(len(b.split()) for b in bullets) + len(case.name.split())
    if words > MAX_WORDS:
        out.append(Violation(0, f"the explanation has {words} words; the limit is {MAX_WORDS}"))
    for i, bullet in enumerate(bullets, 1):
        out += [Violation(i, p) for p in bullet_problems(bullet, i if roles else 0, case, species=species)]
    return out


def bullet_problems(bullet: str, position: int, case: Case, *, species: str = "human") -> list[str]:
    """What is wrong with one bullet (``position`` 1-3: markers, function, differential; 0: no role)."""
    problems = _format_problems(bullet)
    if _COPIED.match(bullet):
        problems.append("it copies a line of the facts; write a sentence in your own words")
    named = named_genes(bullet, case, species=species)
    allowed = _allowed_genes(case)
    foreign = [g for g in named if g.upper() not in allowed]
    if foreign:
        problems.append(f"it names {', '.join(foreign)}, which {'is' if len(foreign) == 1 else 'are'} not among the "
                        f"cluster's markers; name only these markers: {', '.join(case.genes[:10])}")
    invented = [n for n in _NUMBER.findall(bullet) if n not in _known_numbers(case)]
    if invented:
        problems.append(f"the number(s) {', '.join(dict.fromkeys(invented))} are not in the facts; give no numbers")
    markers = {g.upper() for g in case.genes}
    clauses = [c for sentence in _sentences(bullet)
               for c in re.split(r";|, and |,? and (?=the )|,? but |,? while |,? whereas ", sentence)]
    for clause in clauses:
        present = [g for g in named_genes(clause, case, species=species) if g.upper() in markers]
        if present and _ABSENT.search(clause):
            problems.append(f"{', '.join(present)} {'is' if len(present) == 1 else 'are'} among the cluster's markers; "
                            "do not call them absent")
    for clause in clauses:
        if not _NEGATED.search(clause):
            problems += _claim_problems(clause, named_genes(clause, case, species=species), case, species)
    for sentence in _sentences(bullet):
        problems += _description_problems(sentence, named, case, species)
        problems += _encodes_problems(sentence, named_genes(sentence, case, species=species), case, species)
    if len(named) > MAX_GENES:
        problems.append(f"it names {len(named)} genes; name at most {MAX_GENES}, the ones that matter")
    if position == 1 and case.evidence and not any(e.gene in named for e in case.evidence):
        problems.append(f"the first bullet must name the markers that identify {case.name}: "
                        f"{', '.join(case.evidence_genes[:3])}")
    if position == 3:
        needs = []
        if case.rival is not None and not mentions(bullet, case.rival.name):
            needs.append(f"why {case.name} rather than {case.rival.name}")
        serious = set(case.flags) & SERIOUS_FLAGS
        if (serious or (case.caveats and case.rival is None)) and not _mentions_caveat(bullet, case):
            needs.append(f"the caveat: {case.caveats[0]}")
        reasons = [g for g in (*case.separating, *(case.rival.absent if case.rival else ())) if g]
        plain = _without_type_names(bullet, case)
        if case.rival is not None and reasons and not any(_names_symbol(plain, g) for g in reasons):
            needs.append(f"which markers separate them ({', '.join(reasons[:4])})")
        if needs:
            problems.append("the third bullet must say " + " and ".join(needs))
    return problems


def named_genes(text: str, case: Case, *, species: str = "human") -> list[str]:
    """The genes ``text`` names: the cluster's markers it mentions, and other words NCBI Gene
    knows as a gene symbol (not words of the type names or common abbreviations)."""
    markers = {g.upper() for g in case.genes}
    text = _without_type_names(text, case)
    out: list[str] = [g for g in case.genes if _names_symbol(text, g)]
    for token in dict.fromkeys(_GENE_TOKEN.findall(text)):
        if token in out:
            continue
        upper = token.upper()
        if upper in markers:
            out.append(token)
        elif upper not in NOT_GENES and (any(c.isdigit() for c in token) or len(token) >= 3) \
                and upper not in _name_words(case) and upper not in _gene_name_words(case) \
                and _is_gene(token, species):
            out.append(token)
    return out


def _names_symbol(text: str, symbol: str) -> bool:
    """Whether ``text`` names the gene ``symbol`` as a word of its own (not ``CD4`` in "CD4-positive")."""
    return re.search(rf"(?<![A-Za-z0-9-]){re.escape(symbol)}(?![A-Za-z0-9-])", text) is not None


def _without_type_names(text: str, case: Case) -> str:
    """``text`` with the case's type names taken out, so that ``Car3`` in "L6 intratelencephalic
    projecting Car3 glutamatergic neuron" is not read as the gene."""
    for name in (case.name, case.rival.name if case.rival else ""):
        if name:
            text = re.sub(re.escape(name), " ", text, flags=re.IGNORECASE)
    return text


def _format_problems(bullet: str) -> list[str]:
    text = bullet.strip()
    if len(text.split()) < 4:
        return ["write a complete sentence of at least four words"]
    problems = []
    n = count_sentences(text)
    if n > MAX_SENTENCES:
        problems.append(f"it has {n} sentences; use one or two")
    if not re.search(r"[.!?][\"')\]]?$", text):
        problems.append("it is cut off: end it with a full stop")
    elif text.rstrip(".!?\"')]").split()[-1] in _DANGLING:
        problems.append("it ends mid-sentence")
    return problems


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text) if s.strip()]


def _allowed_genes(case: Case) -> set[str]:
    allowed = {g.upper() for g in case.genes}
    if case.rival is not None:
        allowed |= {g.upper() for g in case.rival.absent}
        allowed |= {w.upper() for g in case.rival.absent for w in re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", g)}
    allowed |= _name_words(case)
    return allowed | _gene_name_words(case)


def _gene_name_words(case: Case) -> set[str]:
    """Words of NCBI's names of the markers ("S100 calcium binding protein A9", "C-C motif")."""
    words: set[str] = set()
    for name in case.gene_names.values():
        words |= {w.upper() for w in re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", name)}
        words |= {w.upper() for w in re.findall(r"[A-Za-z0-9]+", name)}
    return words


def _name_words(case: Case) -> set[str]:
    """Words of the type names and the definition (``CD4`` in "CD4-positive", ``IL-17``)."""
    words = " ".join([case.name, case.definition, case.rival.name if case.rival else "",
                      case.second_lineage[0] if case.second_lineage else ""])
    return {w.upper() for w in re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", words)} | \
        {w.upper() for w in re.findall(r"[A-Za-z0-9]+", words)}


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` names the type ``name`` (its name, an exact synonym, or its head words)."""
    low = text.lower()
    if name.lower() in low:
        return True
    content = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in ("cell", "cells", "positive", "of")]
    return bool(content) and all(re.search(rf"\b{re.escape(w[:5])}", low) for w in content[:2])


def _mentions_caveat(text: str, case: Case) -> bool:
    low = text.lower()
    if any(c[:40].lower() in low for c in case.caveats):
        return True
    return any(w in low for w in ("caveat", "doublet", "contamin", "ribosom", "mitochond", "cell cycle", "cell-cycle",
                                  "stress", "haemoglobin", "hemoglobin", "tentative", "uncertain", "weak", "few",
                                  "nearly as likely", "low"))


def _type_ids(sentence: str, case: Case) -> list[str]:
    """Cell Ontology IDs of the types a sentence names."""
    cl = ontology.get()
    ids: list[str] = []
    low = sentence.lower()
    for known_id, known_name in [(case.cl_id, case.name)] + ([(case.rival.cl_id, case.rival.name)]
                                                            if case.rival else []):
        if known_id and mentions(sentence, known_name):
            ids.append(known_id)
    if case.second_lineage is not None and case.second_lineage[0].lower() in low:
        ids += [h[0] for h in cl.lookup(case.second_lineage[0])]
    for phrase in _TYPE_PHRASE.findall(sentence):
        words = phrase.replace(",", " ").split()
        for start in range(len(words)):
            hit = [h for h in cl.lookup(" ".join(words[start:])) if h[0] not in GENERIC_TERMS]
            if hit:
                ids += [h[0] for h in hit]
                break
    if not ids and ("t cell" in low or "t-cell" in low):
        ids.append("CL:0000084")
    return list(dict.fromkeys(ids))


def _claim_problems(sentence: str, named: list[str], case: Case, species: str) -> list[str]:
    if not named or not _CLAIM.search(sentence):
        return []
    types = _type_ids(sentence, case)
    if not types:
        return []
    index = get_index(species)
    canon = canonical_symbols(named, species)
    cl = ontology.get()
    problems = []
    for gene in named:
        if not any(_backed(canon[gene], t, index, cl) for t in types):
            names = ", ".join(cl.name(t) for t in types)
            problems.append(f"the marker databases do not record {gene} for {names}; do not call it a marker of it")
    return problems


def _backed(gene: str, cl_id: str, index: object, cl: ontology.CellOntology) -> bool:
    """Whether the databases support ``gene`` for ``cl_id`` or a close relative (each with the
    support evidence genes need, :func:`cellscribe.case.supported`: one stray record is not enough)."""
    support = index.support  # type: ignore[attr-defined]
    broad = broad_type(cl_id)
    near = [cl_id, *(a for a, d in cl.ancestors(cl_id).items() if d <= 2 and broad_type(a) == broad)]
    near += list(cl.descendants(cl_id))
    return any(0 < support.get(t, {}).get(gene, 0) >= supported(support[t]) for t in near)


def _description_problems(sentence: str, named: list[str], case: Case, species: str) -> list[str]:
    problems = []
    genes = {g.upper(): g for g in named}
    for subject, phrase in _DESCRIBE.findall(sentence):
        gene = genes.get(subject.upper())
        if gene is None or re.match(r"(?:a |an |the )?(?:marker|recorded|present|absent|expressed|one|among|"
                                    r"highly|also|not|found|specific|characteristic|typical|seen|used|known as a "
                                    r"marker)", phrase.lower()):
            continue
        words = _content(phrase)
        if not words:
            continue
        facts = _facts(gene, species)
        if facts is None:
            problems.append(f"{gene} cannot be checked against NCBI Gene here; do not describe what it encodes")
        elif not words & facts:
            problems.append(f"{gene} is {_ncbi_name(gene, species)} (NCBI Gene), not {phrase.strip()!r}")
    return problems


def _known_numbers(case: Case) -> set[str]:
    """Numbers an explanation may quote: those of the case's facts and caveats."""
    texts = [*case.caveats, case.definition, *(str(e.publications) for e in case.evidence), "CellMarker 2.0",
             *case.gene_names.values(), *case.genes, case.name, case.cl_id or ""]
    if case.rival is not None:
        texts += [case.rival.name, *case.rival.absent]
    if case.second_lineage is not None:
        texts += [case.second_lineage[0]]
    if case.rival is not None:
        texts += [f"{case.rival.probability:.2f}"]
    return set(_NUMBER.findall(" ".join(texts)))


def _encodes_problems(sentence: str, named: list[str], case: Case, species: str) -> list[str]:
    """"..., which MZB1 encodes": a sentence that says a gene encodes something must share a
    content word with NCBI's name or GO terms of each gene it names."""
    if not named or not re.search(r"\bencodes\b|\bcodes for\b", sentence, re.I) or _DESCRIBE.search(sentence):
        return []
    words = _content(sentence) - _content(" ".join([case.name, *named]))
    problems = []
    for gene in named:
        facts = _facts(gene, species)
        if facts is not None and not words & facts:
            problems.append(f"{gene} is {_ncbi_name(gene, species)} (NCBI Gene); do not say it encodes anything else")
    return problems


def _content(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in _STOP}


@lru_cache(maxsize=4096)
def _facts(gene: str, species: str) -> frozenset[str] | None:
    try:
        f = gene_facts.lookup(gene, species=species)  # type: ignore[arg-type]
    except Exception:  # gene databases missing: nothing can be checked
        return None
    if f is None:
        return None
    text = " ".join([f.name, f.symbol, *f.aliases, *f.go_mf[:3]])
    return frozenset(_content(text))


@lru_cache(maxsize=4096)
def _ncbi_name(gene: str, species: str) -> str:
    try:
        f = gene_facts.lookup(gene, species=species)  # type: ignore[arg-type]
    except Exception:
        return "unknown"
    return f.name if f else "unknown"


@lru_cache(maxsize=16384)
def _is_gene(token: str, species: str) -> bool:
    try:
        return gene_facts.is_known(token, species=species)  # type: ignore[arg-type]
    except Exception:  # gene databases missing: only the cluster's markers count as genes
        return False
