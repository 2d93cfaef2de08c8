"""The result table of an annotation: every column, its kind and what it holds, in one place.

:func:`cellscribe.annotate` returns one row per cluster in this layout; ``cellscribe.get``,
the CLI's output formats, the HTML report and the R bridge read it from here, and the bridge
sends the kinds along so that R builds each column with the matching R type. A mode adds the
columns of its groups (see :data:`GROUPS`): the model alone writes ``base``, grounded adds
``grounded``, agentic adds ``agentic`` as well.

Kinds: ``id`` (text that names a thing: a cluster, a Cell Ontology ID), ``text``, ``number``,
``flag`` (true/false) and ``list`` (a list of text).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

Kind = Literal["id", "text", "number", "flag", "list"]


@dataclass(frozen=True)
class Column:
    """One result column: its name, kind, the group that adds it, and what it holds."""

    name: str
    kind: Kind
    group: str
    doc: str


#: Every result column, in table order.
COLUMNS: tuple[Column, ...] = (
    Column("cluster", "id", "base", "the cluster's ID, as text"),
    Column("label", "text", "base", "the cell type"),
    Column("broad_lineage", "text", "base", "the broad lineage (T cell, B cell, myeloid, ...)"),
    Column("confidence", "number", "base", "0-1; grounded and agentic: the re-ranker's probability"),
    Column("title", "text", "base", "the explanation's title"),
    Column("bullets", "list", "base", "the explanation's bullets"),
    Column("explanation_markdown", "text", "base", "title and bullets as Markdown"),
    Column("bullet_sources", "list", "base",
           "per bullet: 'model' (written by the model, passed the checks) or 'knowledge' (rendered from the case)"),
    Column("supporting_markers", "list", "base", "markers the explanation cites"),
    Column("markers", "list", "base", "markers sent (the cluster's top markers)"),
    Column("cached", "flag", "base", "served from the answer cache"),
    Column("seconds", "number", "base", "time spent on the cluster"),
    Column("cl_id", "id", "grounded", "Cell Ontology ID of the label"),
    Column("cl_name", "text", "grounded", "Cell Ontology name ('unmapped' when no marker is known)"),
    Column("evidence_genes", "list", "grounded",
           "the cluster's markers with real support for the type in the databases"),
    Column("candidates", "list", "grounded", "the top candidate types, most probable first"),
    Column("chosen_by", "text", "grounded", "who chose the label: reranker, model, agent or none"),
    Column("rival", "text", "grounded", "the nearest other candidate type (neither an ancestor nor a subtype)"),
    Column("caveats", "list", "grounded", "what makes the label less certain (low-information or mixed markers, "
           "a close rival)"),
    Column("case_markdown", "text", "grounded", "the case behind the label: evidence with support, definition, "
           "rival, caveats"),
    Column("agent_tools", "list", "agentic", "the tools the model called, in order"),
    Column("error", "text", "error", "why the cluster failed (only with on_error='keep')"),
)
#: The column groups each mode writes.
GROUPS: dict[str, tuple[str, ...]] = {
    "llm": ("base",),
    "grounded": ("base", "grounded"),
    "agentic": ("base", "grounded", "agentic"),
}
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
LIST_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.kind == "list")


def columns(*groups: str) -> list[str]:
    """Names of the columns of ``groups``, in table order."""
    return [c.name for c in COLUMNS if c.group in groups]


def kinds(names: Iterable[str]) -> dict[str, Kind]:
    """``{name: kind}`` for ``names`` (a column not in :data:`COLUMNS` is ``text``)."""
    return {n: BY_NAME[n].kind if n in BY_NAME else "text" for n in names}


def frame(rows: Sequence[Mapping[str, Any]], groups: Sequence[str]) -> pd.DataFrame:
    """The result table of ``rows`` (one dict per cluster): the columns of ``groups`` in order,
    plus ``error`` when a row has one; each column coerced to its kind."""
    names = columns(*groups)
    if any(r.get("error") is not None for r in rows):
        names.append("error")
    return _table(rows, names)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a result table as JSON-ready dicts: lists as lists, missing values as ``None``."""
    kind = kinds(df.columns)
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: _as_list(v) if kind[k] == "list" else json_ready(v) for k, v in rec.items()})
    return out


def from_records(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A result table rebuilt from stored records (``adata.uns``, JSON): list columns as lists,
    columns in table order, unknown columns after them."""
    rows = list(rows)
    present = {k for r in rows for k in r}
    names = [c.name for c in COLUMNS if c.name in present] + sorted(present - set(BY_NAME))
    return _table(rows, names)


def json_ready(value: Any) -> Any:
    """``value`` with plain Python types only, for JSON: numpy scalars and arrays as Python
    numbers and lists, tuples as lists, NaN / NA / NaT as ``None``, dict keys as text."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        return json_ready(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _table(rows: Sequence[Mapping[str, Any]], names: list[str]) -> pd.DataFrame:
    """``rows`` as a table of the columns ``names``, each coerced to its kind."""
    df = pd.DataFrame.from_records([{n: r.get(n) for n in names} for r in rows], columns=names)
    for name, kind in kinds(names).items():
        if kind == "number":
            df[name] = pd.to_numeric(df[name], errors="coerce")
        elif kind == "list":
            df[name] = [_as_list(v) for v in df[name]]
    return df


def _as_list(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


__all__ = ["BY_NAME", "COLUMNS", "GROUPS", "LIST_COLUMNS", "Column", "Kind", "columns", "frame", "from_records",
           "json_ready", "kinds", "records"]
