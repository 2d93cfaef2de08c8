"""A report a biologist can read: one card per cluster (label, explanation, markers, plots).

:func:`write_report` writes self-contained HTML (plots embedded) or Markdown (plots linked),
chosen by the file suffix. Templates live in ``report/templates/``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markdown_it import MarkdownIt

from ..errors import InputError
from ..results import records

_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files(__name__).joinpath("templates", name).read_text()),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _cards(results: pd.DataFrame, extra_columns: Sequence[str]) -> list[dict[str, Any]]:
    """One card per row; the rows read through :func:`cellscribe.results.records` (list columns
    as lists, missing values as ``None``)."""
    md = MarkdownIt()
    cards = []
    for row in records(results):
        conf = row.get("confidence")
        conf_value = None if conf is None else float(conf)
        explanation = row.get("explanation_markdown") or ""
        if not isinstance(explanation, str):
            explanation = ""
        cards.append({
            "cluster": row.get("cluster"),
            "label": row.get("label") if isinstance(row.get("label"), str) else "(not annotated)",
            "lineage": row.get("broad_lineage") if isinstance(row.get("broad_lineage"), str) else None,
            "confidence": "n/a" if conf_value is None else f"{conf_value:.2f}",
            "confidence_value": conf_value,
            "explanation": explanation,
            "explanation_html": jinja2.utils.markupsafe.Markup(md.render(explanation)) if explanation else "",
            "markers": row.get("markers") or [],
            "supporting": row.get("supporting_markers") or [],
            # grounded / agentic: the Cell Ontology term and the marker-database evidence
            "ontology": (f"{row.get('cl_name')} ({row['cl_id']})" if row.get("cl_name") not in (None, row["cl_id"])
                         else row["cl_id"]) if isinstance(row.get("cl_id"), str) else None,
            "evidence": row.get("evidence_genes") or [],
            # the case behind the label (evidence with support, definition, rival, caveats)
            "case": row.get("case_markdown") or "",
            "case_html": jinja2.utils.markupsafe.Markup(md.render(row["case_markdown"]))
            if row.get("case_markdown") else "",
            "caveats": row.get("caveats") or [],
            "sources": _sources_note(row.get("bullet_sources") or []),
            "extra": [(c, row[c]) for c in extra_columns if c in row and row[c] is not None],
        })
    return cards


def _sources_note(sources: Sequence[str]) -> str:
    """Which bullets were rendered from the case because the model's sentence failed a check."""
    rendered = [str(i) for i, s in enumerate(sources, 1) if s == "knowledge"]
    if not rendered:
        return "all bullets written by the model and checked against the case" if sources else ""
    if len(rendered) == len(sources):
        return "all bullets rendered from the case (no model sentence used)"
    return f"bullet{'s' if len(rendered) > 1 else ''} {', '.join(rendered)} rendered from the case; the rest written " \
           "by the model and checked"


def write_report(
    results: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "cellscribe annotation report",
    images: Sequence[tuple[str | Path, str]] = (),
    extra_columns: Sequence[str] = (),
) -> Path:
    """Write the report.

    Parameters
    ----------
    results
        The table returned by :func:`cellscribe.annotate` (or :func:`cellscribe.get.annotations`).
    path
        Output file; ``.html`` (self-contained) or ``.md``.
    title
        Heading of the report.
    images
        ``(png_path, caption)`` pairs shown above the cards (e.g. a UMAP coloured by label).
    extra_columns
        Further columns of ``results`` to show on each card (e.g. ``cl_id``, ``agreement``).

    Returns
    -------
    The path written.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".html", ".md"):
        raise InputError(f"Report files end in .html or .md; got {path.name!r}.")
    prov = results.attrs.get("provenance", {})
    summary = f"{len(results)} clusters annotated"
    if prov:
        summary += ((f" by {prov['model']} ({prov.get('backend')})" if prov.get("model")
                     else " from marker databases (no model)")
                    + (f", tissue {prov['parameters']['tissue']}" if prov.get("parameters", {}).get("tissue") else "")
                    + (f"; no tissue given, {prov['tissue_inferred']}" if prov.get("tissue_inferred") else ""))
    footer = " · ".join(f"{k}: {prov[k]}" for k in ("cellscribe_version", "digest", "prompt_hash", "created")
                        if prov.get(k))
    path.parent.mkdir(parents=True, exist_ok=True)
    imgs = []
    for img, caption in images:
        img = Path(img)
        entry = {"caption": caption, "path": _relative(img, path.parent)}
        if kind == ".html":
            entry["base64"] = base64.b64encode(img.read_bytes()).decode()
        imgs.append(entry)
    template = _env.get_template(f"report{kind}.j2")
    path.write_text(template.render(title=title, summary=summary, footer=footer, images=imgs,
                                    cards=_cards(results, extra_columns)), encoding="utf-8")
    return path


def _relative(target: Path, start: Path) -> str:
    try:
        return str(target.resolve().relative_to(start.resolve()))
    except ValueError:
        return str(target.resolve())
