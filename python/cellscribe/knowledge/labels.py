"""Map free-text cell-type labels to Cell Ontology terms.

:func:`map_label` tries, in order, and stops at the first step that finds a term:

1. **malignant**: a label naming tumour cells (``"colon cancer cell"``, ``"Malignant B cells"``) maps
   to ``malignant cell`` (CL:0001064), as the GPTCelltype study treats every tumour label alike.
2. **name / synonym**: the label, or one of its :func:`variants <cellscribe.knowledge._label_text.variants>`
   (common names, abbreviations expanded, bare ``CD14`` read as ``CD14+``, ``"cell"`` appended,
   state words such as ``"cycling"`` dropped), equals a term's name or exact/related synonym after
   :func:`~cellscribe.knowledge.ontology.normalize` (case, plurals, ``+``/``-``, punctuation,
   accents), possibly with its words in another order, or a name shortened the way people shorten
   it (``"CD4-positive T cell"`` for ``"CD4-positive, alpha-beta T cell"``). A label naming several
   types (``"NK/T cells"``, ``"Macrophages / Microglia"``) maps every part. A qualifier in
   parentheses refines the label (``"Endothelial cell (lymphatic)"``) or names the type itself
   (``"Immune (B cell)"``).
3. **fuzzy**: a name or synonym with the same number of meaningful words, each spelt nearly the
   same (``"Arterial endothelial cells"`` -> ``endothelial cell of artery``, ``"Haematopoietic"``),
   with rapidfuzz ``token_sort_ratio`` at least ``fuzzy_cutoff``; short lineage tokens (``T``/``B``,
   ``CD4``/``CD8``) must be identical, so ``"memory T cell"`` never becomes ``"memory B cell"``.
4. **contained**: every meaningful word of the label is in one term's name, which has the fewest
   other words (``"Thick Ascending Limb"`` -> ``kidney loop of Henle thick ascending limb epithelial
   cell``): atlases leave out the organ and the class.
5. **partial**: the label names a subtype the ontology lacks; the most specific term left when
   marker tokens (``"Pvalb+ GABAergic neuron"`` -> ``GABAergic neuron``) or other words are left
   out, keeping the head noun where possible (``"Mucus-secreting goblet cells"`` -> ``goblet
   cell``) and always the words that change the kind of cell (progenitor, precursor, stem).

Otherwise the label is ``unmapped``. Steps 1-3 give terms that stand for the whole label
(:data:`PRECISE`); a contained match may name a narrower term and a partial match a coarser one,
good for the broad type only. Short forms and atlas codes (``"Oligo"``, ``"L2/3 IT"``, ``"Sst"``,
``"MNP-b"``, ``"Astro_1"``) are read through the one abbreviation table,
:data:`cellscribe.knowledge._label_text.ABBREVIATIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

import pandas as pd

from . import ontology as _ontology
from ._label_text import (
    ABBREVIATIONS,
    alias,
    alternatives,
    clean,
    coarse_variants,
    is_malignant,
    restated_variants,
    strip_subcluster,
    variants,
)
from .anatomy import species_allowed, species_restriction
from .lineage import BROAD_ANCHORS
from .ontology import normalize

#: Minimum rapidfuzz ``token_sort_ratio`` (0-100) for a fuzzy match.
FUZZY_CUTOFF = 85.0
MALIGNANT_CELL = "CL:0001064"
UNMAPPED = "unmapped"
ROOT = _ontology.ROOT
#: Synonym kinds used for lookup (``broad``/``narrow`` synonyms name other terms, not this one).
KINDS = ("name", "exact", "related")
#: Methods, from the most to the least certain.
METHODS = ("name", "synonym", "malignant", "fuzzy", "contained", "partial", UNMAPPED)
#: Methods whose term stands for the whole label (a ``partial`` match names a coarser type).
PRECISE = ("name", "synonym", "malignant", "fuzzy")
#: Words dropped from ontology names to make extra lookup keys (:func:`_derived_index`).
DERIVED_DROPS = ("alpha beta", "mature", "professional", "thymus derived", "pulmonary", "human", "mouse")
#: Words replaced in ontology names to make extra lookup keys: ``"pvalb GABAergic interneuron"`` is
#: also found as ``"Pvalb GABAergic neuron"``, the way atlases name it.
DERIVED_SWAPS = (("interneuron", "neuron"),)
#: Words a partial match keeps: leaving them out would name another kind of cell.
CLASS_WORDS = ("progenitor", "precursor", "stem", "malignant")

_NO_LABEL = {"na", "nan", "none", "unknown", "unassigned", "unclassified", "undetermined", "n/a", "-", ""}
_PARENS = re.compile(r"\(([^()]*)\)")
_SHORT = re.compile(r"^(?:[a-z]|[a-z]*\d+[a-z\d]*)$")  # single letters, tokens with digits
_GENERIC = {"cell", "positive", "negative"}
_STOP = {"of", "the", "in", "and", "to"}
_WEAK = {"like", "type", "cell", "positive", "negative", "a", "an", "of", "the", "in", "and", "to"}

# A part's match: (cl_id, method, score, matched text)
_Hit = tuple[str, str, float, str]


@dataclass(frozen=True)
class LabelMapping:
    """A label's Cell Ontology term(s).

    Attributes
    ----------
    label
        The text given (cleaned of stray quotes and spaces).
    cl_id, name
        The (first) term, or ``None`` and ``"unmapped"``.
    score
        Match quality 0-100: 100 for name, synonym and malignant matches, the rapidfuzz score for
        fuzzy ones, the share of words kept for partial ones, 0 when unmapped.
    method
        ``name``, ``synonym``, ``malignant``, ``fuzzy``, ``partial`` or ``unmapped`` (the weakest step
        used when a label has several parts).
    matched
        The ontology text that matched (``"; "``-joined for several parts).
    cl_ids
        Every term, for labels naming several types (``cl_ids[0] == cl_id``).
    """

    label: str
    cl_id: str | None
    name: str
    score: float
    method: str
    matched: str = ""
    cl_ids: tuple[str, ...] = field(default=())

    @property
    def mapped(self) -> bool:
        return self.cl_id is not None

    @property
    def malignant(self) -> bool:
        """Whether the label names tumour cells."""
        return self.method == "malignant"

    @property
    def precise(self) -> bool:
        """Whether the term(s) stand for the whole label (not a partial, coarser match)."""
        return self.method in PRECISE

    def names(self) -> list[str]:
        """Names of every term in :attr:`cl_ids`."""
        cl = _ontology.get()
        return [cl.name(i) for i in self.cl_ids]


def map_label(label: str | None, *, fuzzy_cutoff: float = FUZZY_CUTOFF,
              species: str | None = None) -> LabelMapping:
    """The Cell Ontology term(s) of one free-text label (see the module docstring for the steps).

    Terms restricted to one species (``"... (Primate)"``, ``"... (Mmus)"``; see
    :mod:`cellscribe.knowledge.anatomy`) are found only by their full name, never through a synonym
    or short form (``"Vip"`` is ``VIP GABAergic interneuron``, not ``striatal VIP GABAergic
    interneuron (Primate)``); with ``species`` given, a term restricted to another species is
    replaced by its nearest ancestor that applies to every species.

    Parameters
    ----------
    label
        A cell-type label, e.g. ``"CD14+ Monocytes"``, ``"NK cells"``, ``"Macrophages / Microglia"``.
    fuzzy_cutoff
        Minimum rapidfuzz score for a fuzzy match (0-100); above 100 turns fuzzy matching off.
    species
        ``"human"``, ``"mouse"`` or ``None`` (unknown: species-restricted terms named in full stay).

    Returns
    -------
    A :class:`LabelMapping`; ``method == "unmapped"`` (and ``cl_id is None``) when nothing matched.
    """
    mapping = _map_cached(_text(label), float(fuzzy_cutoff))
    if species is None or all(species_allowed(i, species) for i in mapping.cl_ids):
        return mapping
    ids = tuple(dict.fromkeys(_for_species(i, species) for i in mapping.cl_ids))
    cl = _ontology.get()
    return LabelMapping(mapping.label, ids[0], cl.name(ids[0]), mapping.score, mapping.method, mapping.matched, ids)


def map_labels(labels: Iterable[str | None], *, fuzzy_cutoff: float = FUZZY_CUTOFF,
               species: str | None = None) -> pd.DataFrame:
    """:func:`map_label` over many labels (one ``species`` for all).

    Returns
    -------
    One row per label, in order, with columns ``label, cl_id, cl_name, score, method, matched,
    cl_ids`` (``cl_ids`` ``";"``-joined; ``cl_name`` is ``"unmapped"`` where nothing matched).
    """
    rows = []
    for label in labels:
        m = map_label(label, fuzzy_cutoff=fuzzy_cutoff, species=species)
        rows.append({"label": m.label, "cl_id": m.cl_id, "cl_name": m.name, "score": m.score, "method": m.method,
                     "matched": m.matched, "cl_ids": ";".join(m.cl_ids)})
    return pd.DataFrame(rows, columns=["label", "cl_id", "cl_name", "score", "method", "matched", "cl_ids"])


def _for_species(cl_id: str, species: str) -> str:
    """``cl_id``, or its nearest ``is_a`` ancestor that may name a cell of ``species``."""
    if species_allowed(cl_id, species):
        return cl_id
    return next((a for a in _ontology.get().ancestors(cl_id) if species_allowed(a, species)), ROOT)


def _text(label: str | None) -> str:
    if label is None or (isinstance(label, float) and pd.isna(label)):
        return ""
    return clean(str(label))


@lru_cache(maxsize=65536)
def _map_cached(label: str, fuzzy_cutoff: float) -> LabelMapping:
    if label.lower() in _NO_LABEL:
        return _unmapped(label)
    if is_malignant(label):
        name = _ontology.get().name(MALIGNANT_CELL)
        return LabelMapping(label, MALIGNANT_CELL, name, 100.0, "malignant", label, (MALIGNANT_CELL,))
    hits = _map_text(label, fuzzy_cutoff)
    return _result(label, hits) if hits else _unmapped(label)


def _map_text(label: str, fuzzy_cutoff: float, *, precise_only: bool = False) -> list[_Hit]:
    """Hits for a label; ``precise_only`` stops before partial matches."""
    if "(" in label and ")" in label:
        return _map_qualified(label, fuzzy_cutoff, precise_only=precise_only)
    parts = alternatives(label)
    if len(parts) > 1 and alias(label) is None:  # "NK/T cells": each part an exact term
        exact = [(p, h) for p, h in ((p, _exact(p)) for p in parts) if h is not None]
        if len(exact) > 1:
            return _without_codes(exact)
    hit = _exact(label)
    if hit is not None:
        return [hit]
    if len(parts) > 1:
        found = [(p, h) for p, h in ((p, _one(p, fuzzy_cutoff, precise_only)) for p in parts) if h is not None]
        if found:
            return _without_codes(found)
    hit = _fuzzy(label, fuzzy_cutoff) or (None if precise_only else _contained(label) or _partial(label))
    return [hit] if hit is not None else []


def _without_codes(found: list[tuple[str, _Hit]]) -> list[_Hit]:
    """The hits of a label's parts, less the parts that are an atlas code (a short form of
    :data:`~cellscribe.knowledge._label_text.ABBREVIATIONS`, maybe with a subcluster tag) restated
    by a more specific part: ``"MNP-c/dendritic cell"`` is a dendritic cell, not also a
    mononuclear phagocyte."""
    cl = _ontology.get()
    codes = {k.lower() for k in ABBREVIATIONS}
    kept = [h for p, h in found
            if not (strip_subcluster(p).lower() in codes
                    and any(o[0] != h[0] and cl.is_a(o[0], h[0]) for _, o in found))]
    return kept or [h for _, h in found]


def _one(part: str, fuzzy_cutoff: float, precise_only: bool) -> _Hit | None:
    return _exact(part) or _fuzzy(part, fuzzy_cutoff) or (
        None if precise_only else _contained(part) or _partial(part))


def _map_qualified(label: str, fuzzy_cutoff: float, *, precise_only: bool) -> list[_Hit]:
    """``"Outer (inner)"``. The qualifier folded into the label may name a term
    (``"Endothelial cell (lymphatic)"`` -> ``lymphatic endothelial cell``); else the qualifier's own
    term wins when it is a kind of the outer term, when the outer label maps only partially or not
    at all, or when the outer term is a class-level term (``"Immune (B cell)"``, ``"B cell
    (Plasmocyte)"``); else the outer term (``"Myoepithelial (Basal)"``)."""
    cl = _ontology.get()
    outer = clean(_PARENS.sub(" ", label))
    inners = [clean(t) for t in _PARENS.findall(label) if clean(t) and not _restates(clean(t), outer)]
    for inner in inners:
        for piece in alternatives(inner):
            combined = _exact(f"{piece} {outer}")
            if combined is not None and combined[0] != ROOT:
                return [combined]
    outer_hits = _map_text(outer, fuzzy_cutoff, precise_only=precise_only) if outer else []
    outer_weak = not outer_hits or any(h[1] == "partial" for h in outer_hits)
    outer_wide = bool(outer_hits) and all(h[0] in _anchor_ids() for h in outer_hits)
    for inner in inners:
        inner_hits = _map_text(inner, fuzzy_cutoff, precise_only=True)
        if not inner_hits:
            continue
        refines = bool(outer_hits) and all(any(cl.is_a(i[0], o[0]) for o in outer_hits) for i in inner_hits)
        if refines or outer_weak or outer_wide:
            return inner_hits
    return outer_hits


def _restates(inner: str, outer: str) -> bool:
    """Whether a parenthesised qualifier only abbreviates the label before it: its initials
    (``"Dentate granule cells (DGC)"``, ``"Liver endothelial cells (LECs)"``) or the start of one of
    its words (``"Embryonic endoderm (Endo) cell"``)."""
    short = re.sub(r"s$", "", inner.strip()).lower()
    if not short.isalpha() or " " in inner.strip():
        return False
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", outer)]
    initials = "".join(w[0] for w in words)
    return short in initials or any(len(short) >= 3 and w.startswith(short) and w != short for w in words)


@lru_cache(maxsize=1)
def _anchor_ids() -> frozenset[str]:
    """Class-level terms (the broad-type anchors: ``epithelial cell``, ``leukocyte``, ``B cell``, ...)
    that a qualifier in parentheses may replace by a more specific type of any lineage."""
    return frozenset(i for _, ids in BROAD_ANCHORS for i in ids) | {ROOT}


def _exact(text: str) -> _Hit | None:
    """The first variant's term, unless a later variant finds a term more directly: a real name or
    exact synonym beats a related synonym, which beats a shortened name or reordered words
    (``"Myofibroblasts"`` -> ``myofibroblast cell``, not ``pulmonary myofibroblast``)."""
    for tier in (variants(text), restated_variants(text)):
        best: tuple[int, _Hit] | None = None
        for variant in tier:
            found = _lookup(variant)
            if found is None or (found[0] == ROOT and normalize(variant) != normalize(text)):
                continue
            cl_id, kind, matched, rank = found
            if best is None or rank < best[0]:
                best = (rank, (cl_id, "name" if kind == "name" else "synonym", 100.0, matched))
            if rank == 0:
                break
        if best is not None:
            return best[1]
    return None


def _lookup(text: str) -> tuple[str, str, str, int] | None:
    """``(cl_id, kind, matched text, rank)`` of a term whose name or synonym is ``text`` after
    normalisation: a real key (rank 0 for a name or exact synonym, 1 for a related one), else a
    shortened name (:func:`_derived_index`) or the same words in another order (rank 2)."""
    key = normalize(text)
    if not key:
        return None
    cl = _ontology.get()
    found = [(i, k) for i, k in cl.lookup(text, kinds=KINDS) if k == "name" or species_restriction(i) is None]
    if found:
        cl_id, kind = found[0]
        return cl_id, kind, cl.name(cl_id) if kind == "name" else text, 0 if kind in ("name", "exact") else 1
    entry = _derived_index().get(key) or _sorted_index().get(_sorted(key))
    return (*entry, 2) if entry else None


def _sorted(key: str) -> str:
    return " ".join(sorted(w for w in key.split() if w not in _STOP))


@lru_cache(maxsize=1)
def _real_index() -> dict[str, tuple[str, str, str]]:
    """normalised name/synonym -> (cl_id, kind, text), strongest kind first, allowed kinds only;
    species-restricted terms by their name only."""
    cl = _ontology.get()
    out: dict[str, tuple[str, str, str]] = {}
    for key, entries in cl._index.items():
        entry = next((e for e in entries if e[1] in KINDS and (e[1] == "name" or species_restriction(e[0]) is None)),
                     None)
        if entry is not None:
            out[key] = entry
    return out


@lru_cache(maxsize=1)
def _derived_index() -> dict[str, tuple[str, str, str]]:
    """Extra keys for names the way people shorten them: ``"CD4-positive, alpha-beta T cell"`` is
    also found as ``"CD4-positive T cell"``, ``"naive thymus-derived CD8-positive, alpha-beta T
    cell"`` as ``"naive CD8-positive T cell"`` (:data:`DERIVED_DROPS`). Only keys no name or synonym
    uses; where several terms shorten to one key, the one that lost fewest words (``mature NK T cell``
    over ``mature NK T cell, human``), and none on a tie."""
    real = _real_index()
    best: dict[str, tuple[int, tuple[str, str, str]]] = {}
    clash: set[str] = set()
    for key, entry in real.items():
        short = f" {key} "
        for drop in DERIVED_DROPS:
            short = short.replace(f" {drop} ", " ")
        for old, new in DERIVED_SWAPS:
            short = short.replace(f" {old} ", f" {new} ")
        short = " ".join(short.split())
        if not short or short == key or short in real or short in _GENERIC:
            continue
        dropped = len(key.split()) - len(short.split())  # fewer words dropped: the closer name wins
        if short not in best or dropped < best[short][0]:
            best[short] = (dropped, entry)
            clash.discard(short)
        elif dropped == best[short][0] and best[short][1][0] != entry[0]:
            clash.add(short)
    return {k: v for k, (_, v) in best.items() if k not in clash}


@lru_cache(maxsize=1)
def _all_keys() -> tuple[list[str], list[tuple[str, str, str]]]:
    index = {**_real_index(), **_derived_index()}
    return list(index), list(index.values())


@lru_cache(maxsize=1)
def _sorted_index() -> dict[str, tuple[str, str, str]]:
    """Keys with their words sorted, so ``"T effector memory cell"`` finds ``"effector memory T cell"``."""
    out: dict[str, tuple[str, str, str]] = {}
    for key, target in zip(*_all_keys(), strict=True):
        out.setdefault(_sorted(key), target)
    return out


def _fuzzy(text: str, cutoff: float) -> _Hit | None:
    """The closest name or synonym whose meaningful words pair up one to one with the label's, each
    pair spelt nearly the same (:func:`_same_word`), scored by ``token_sort_ratio``."""
    if cutoff > 100:
        return None
    from rapidfuzz import fuzz, process

    keys, targets = _all_keys()
    best: _Hit | None = None
    for variant in variants(text):
        query = normalize(variant)
        if not _content(query):
            continue
        for key, score, idx in process.extract(query, keys, scorer=fuzz.token_sort_ratio, limit=15,
                                               score_cutoff=cutoff):
            if targets[idx][0] != ROOT and _compatible(query, key):
                if best is None or score > best[2]:
                    best = (targets[idx][0], "fuzzy", round(float(score), 1), targets[idx][2])
                break
    return best


def _content(key: str) -> list[str]:
    return [w for w in key.split() if w not in _GENERIC and w not in _STOP]


def _compatible(query: str, key: str) -> bool:
    """Same lineage tokens, and the meaningful words pair up, each pair nearly the same word."""
    if _lineage_tokens(query) != _lineage_tokens(key):
        return False
    a, b = _content(query), _content(key)
    if len(a) != len(b):
        return False
    left = list(b)
    for word in a:
        match = next((w for w in left if _same_word(word, w)), None)
        if match is None:
            return False
        left.remove(match)
    return True


def _same_word(a: str, b: str) -> bool:
    """``artery``/``arterial``, ``tubular``/``tubule`` (a shared stem: all but the last two letters of
    the shorter word, at least five), ``haematopoietic``/``hematopoietic`` (near-identical spelling);
    not ``spermatogenic``/``spermatogonium``."""
    if a == b:
        return True
    from os.path import commonprefix

    if len(commonprefix([a, b])) >= max(5, min(len(a), len(b)) - 2):
        return True
    from rapidfuzz import fuzz

    return fuzz.ratio(a, b) >= 88


def _contained(text: str) -> _Hit | None:
    """The term whose name holds every meaningful word of the label and the fewest others, the
    way atlases leave out the organ and the class (``"Thick Ascending Limb"`` -> ``kidney loop of
    Henle thick ascending limb epithelial cell``, ``"Principal"`` -> ``renal principal cell``).
    Where several names are equally short, the one the others are kinds of, else nothing. Not
    precise: the term may be narrower than the label means."""
    cl = _ontology.get()
    words_index = _name_words()
    for variant in variants(text):
        words = set(_content(normalize(variant)))
        if not words or not all(w in words_index for w in words):
            continue
        found = set.intersection(*(words_index[w] for w in words))
        if not found:
            continue
        size = {i: len(_content(normalize(cl.name(i)))) for i in found}
        fewest = min(size.values())
        best = [i for i in found if size[i] == fewest]
        roots = [i for i in best if all(cl.is_a(o, i) for o in best)]
        if len(roots) == 1:
            return roots[0], "contained", round(100.0 * len(words) / fewest, 1), cl.name(roots[0])
    return None


@lru_cache(maxsize=1)
def _name_words() -> dict[str, set[str]]:
    """meaningful word of a current term's name -> the terms (species-restricted ones left out)."""
    cl = _ontology.get()
    out: dict[str, set[str]] = {}
    for cl_id in cl.ids():
        if cl_id == ROOT or species_restriction(cl_id) is not None:
            continue
        for w in _content(normalize(cl.name(cl_id))):
            out.setdefault(w, set()).add(cl_id)
    return out


def _partial(text: str) -> _Hit | None:
    """The most specific term left once marker tokens, then other words, are left out: first with
    the head noun (the last meaningful word) kept, as many words kept as possible, ties broken by
    ontology depth (``"Mucus-secreting goblet cells"`` -> ``goblet cell``); then without it."""
    for variant in coarse_variants(text):
        found = _lookup(variant)
        if found is not None and found[0] != ROOT:
            return found[0], "partial", 100.0 * len(variant.split()) / max(1, len(text.split())), found[2]
    for keep_head in (True, False):
        for variant in variants(text):
            words = normalize(variant).split()[-8:]
            required = {i for i, w in enumerate(words) if w in CLASS_WORDS}
            heads = [i for i, w in enumerate(words) if w not in _WEAK]
            if keep_head and heads:
                required.add(heads[-1])
            hit = _best_subset(words, required)
            if hit is not None:
                cl_id, matched, keep = hit
                return cl_id, "partial", round(100.0 * keep / len(words), 1), matched
    return None


def _best_subset(words: list[str], required: set[int]) -> tuple[str, str, int] | None:
    """The deepest term named by the largest subset of ``words`` that keeps ``required``."""
    cl = _ontology.get()
    for keep in range(len(words) - 1, 0, -1):
        found = []
        for idx in combinations(range(len(words)), keep):
            if not required <= set(idx):
                continue
            sub = [words[i] for i in idx]
            if set(sub) <= _WEAK:
                continue
            hit = _lookup(" ".join(sub))
            if hit is not None and hit[0] != ROOT:
                found.append(hit)
        if found:
            best = max(found, key=lambda h: cl.depth(h[0]))
            return best[0], best[2], keep
    return None


def _lineage_tokens(key: str) -> list[str]:
    return sorted(w for w in key.split() if _SHORT.match(w))


def _result(label: str, hits: list[_Hit]) -> LabelMapping:
    cl = _ontology.get()
    ids: list[str] = []
    for h in hits:
        if h[0] not in ids:
            ids.append(h[0])
    method = max((h[1] for h in hits), key=METHODS.index)
    score = round(min(h[2] for h in hits), 1)
    matched = "; ".join(dict.fromkeys(h[3] for h in hits))
    return LabelMapping(label, ids[0], cl.name(ids[0]), score, method, matched, tuple(ids))


def _unmapped(label: str) -> LabelMapping:
    return LabelMapping(label, None, UNMAPPED, 0.0, UNMAPPED, "", ())
