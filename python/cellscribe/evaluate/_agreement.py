"""Agreement between a predicted and a true cell-type label, from the Cell Ontology.

Two scores for any two free-text labels (or labels with known CL IDs):

* :func:`agreement`: the GPTCelltype study's score (Hou & Ji, 2024). **1** (full match) when both
  labels name the same term(s) (same CL IDs after synonym resolution), are the same text ignoring
  case and a trailing ``s``, or both name tumour cells; **0.5** (partial) when their broad types
  (:mod:`~cellscribe.knowledge.lineage`) overlap or are related (``broad_related``: parent and child,
  or siblings under a class narrower than "immune cell"); **0** otherwise. A label mapped only
  partially (to a coarser term, see :func:`~cellscribe.evaluate.map_label`) never makes a full match
  by its term.
* :func:`agreement_level`: a finer four-level score: ``"exact"`` (the same term: full match),
  ``"major"`` (the same broad type, e.g. ``"T cell"`` vs ``"CD8 T cell"``), ``"related"`` (related
  broad types, e.g. ``"lymphocyte"`` vs ``"B cell"``, ``"pericyte"`` vs ``"fibroblast"``), ``"wrong"``.

Both accept either text alone or text plus known CL IDs / broad types for the truth (the
GPTCelltype table gives the experts' own mapping, ``manual_CLID`` and ``manual_broadtype``); the
prediction side is always mapped from its text by :func:`~cellscribe.evaluate.map_label`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..knowledge import ontology as _ontology
from ..knowledge.labels import PRECISE, LabelMapping, map_label
from ..knowledge.lineage import broad_related, broad_types

Level = Literal["exact", "major", "related", "wrong"]
#: The four levels, best first, and their GPTCelltype agreement.
LEVELS: dict[str, float] = {"exact": 1.0, "major": 0.5, "related": 0.5, "wrong": 0.0}
MALIGNANT = "malignant cell"


@dataclass(frozen=True)
class Side:
    """One label as the scorer sees it: its text, CL terms and broad types."""

    text: str
    cl_ids: frozenset[str]
    broad: frozenset[str]
    precise: bool = True
    mapping: LabelMapping | None = None

    @property
    def empty(self) -> bool:
        return not self.text


def side(label: str | None, *, cl_ids: str | Iterable[str] | float | None = None,
         broad: str | Iterable[str] | float | None = None, species: str | None = None) -> Side:
    """Resolve a label into what the scorer compares.

    Parameters
    ----------
    label
        The label's text.
    cl_ids
        Its Cell Ontology IDs when known (comma-separated text or a list). ``None`` maps the text
        with :func:`~cellscribe.evaluate.map_label`; an empty or missing value (``""``, ``NaN``) means
        "known to have no term", as for expert labels the GPTCelltype study could not map.
    broad
        Its broad types when known (comma-separated or a list); ``None`` derives them from the terms
        (or, for a label known to have no term, from the mapping of its text).
    species
        The species the label is about, when known: passed to
        :func:`~cellscribe.evaluate.map_label` (a term restricted to another species is not used).

    Returns
    -------
    A :class:`Side`: ``cl_ids``, ``broad``, and ``precise`` (whether the terms stand for the whole
    label: given IDs, or a mapping by name, synonym or fuzzy match, not a partial one).
    """
    text = "" if label is None or _isna(label) else str(label).strip()
    mapping = map_label(text, species=species) if text and (cl_ids is None or broad is None) else None
    if cl_ids is None:
        ids = frozenset(mapping.cl_ids) if mapping is not None else frozenset()
        precise = mapping is not None and mapping.method in PRECISE
    else:
        cl = _ontology.get()
        ids = frozenset(cl.resolve(i) for i in _split(cl_ids) if i in cl)
        precise = True
    if broad is not None:
        types = frozenset(_split(broad))
    elif ids:
        types = broad_types(ids)
    else:
        types = broad_types(mapping.cl_ids) if mapping is not None else frozenset()
    return Side(text, ids, types, precise, mapping)


def agreement(predicted: str | Side | None, truth: str | Side | None) -> float:
    """The GPTCelltype agreement (1, 0.5 or 0) of a predicted label with the true one.

    Parameters
    ----------
    predicted, truth
        Free-text labels (``"CD14+ Monocytes"``), or :class:`Side` objects from :func:`side` when
        the truth's CL IDs or broad types are known. A missing prediction scores 0.

    Returns
    -------
    1.0 (full), 0.5 (partial) or 0.0 (mismatch); see the module docstring for the rules.
    """
    return LEVELS[agreement_level(predicted, truth)]


def agreement_level(predicted: str | Side | None, truth: str | Side | None) -> Level:
    """The four-level agreement: ``"exact"``, ``"major"``, ``"related"`` or ``"wrong"``."""
    p = predicted if isinstance(predicted, Side) else side(predicted)
    t = truth if isinstance(truth, Side) else side(truth)
    if p.empty or t.empty:
        return "wrong"
    if _same_text(p.text, t.text) or (p.cl_ids and p.cl_ids == t.cl_ids and p.precise and t.precise):
        return "exact"
    if p.broad == {MALIGNANT} and t.broad == {MALIGNANT}:
        return "exact"
    if p.broad & t.broad:
        return "major"
    if broad_related(p.broad, t.broad):
        return "related"
    return "wrong"


def _same_text(a: str, b: str) -> bool:
    return a.lower().rstrip("s") == b.lower().rstrip("s")


def _split(value: str | Iterable[str] | float | None) -> list[str]:
    if value is None or _isna(value):
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(i).strip() for i in items if str(i).strip() and str(i).strip().upper() not in ("NA", "NAN")]


def _isna(value: object) -> bool:
    return isinstance(value, float) and value != value
