"""The case as text: three bullets any check accepts, and the case file under them.

:func:`render_bullets` writes the seed's three bullets from the case alone (no model): what an
explanation says when the model's sentence failed a check, and all of it with
``explain="knowledge"``. :func:`case_markdown` is the case itself (evidence with support, the
Cell Ontology definition, the rival, caveats) for the report and R's ``cellscribe_explanations()``.
"""

from __future__ import annotations

import re

from ._build import Case, cap, join

#: Which part of the explanation each bullet is, and what it says.
ROLES = ("markers", "function", "differential")
ROLE_TEXT = ("which recorded markers (two to four) identify the cell type, and why", "what these cells do",
             "why this type rather than the nearest rival, naming the markers that separate them, and any caveat")


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, without its full stop."""
    text = " ".join(text.split()).strip()
    m = re.match(r"(.+?[.!?])(?:\s+[A-Z(]|\s*$)", text)
    return (m.group(1) if m else text).rstrip(".!? ")


def marker_bullet(case: Case) -> str:
    """Bullet 1: which recorded markers identify the type, with their support."""
    if case.evidence:
        ev = case.evidence[:3]
        genes = join([e.gene for e in ev])
        pubs = join([str(e.publications) for e in ev])
        verb = "is a recorded marker" if len(ev) == 1 else "are recorded markers"
        return (f"{genes} {verb} of {case.name} in the marker databases and curated marker sets "
                f"({pubs} publications{'' if len(ev) == 1 else ' respectively'}).")
    top = join(list(case.genes[:3]))
    return f"None of the top markers ({top}) is well recorded for {case.name}, so the evidence for it is weak."


def function_bullet(case: Case) -> str:
    """Bullet 2: what these cells are and do (the Cell Ontology definition, what a marker encodes)."""
    if case.definition:
        definition = first_sentence(case.definition)
        first = f"The Cell Ontology defines {case.name} as {definition[:1].lower() + definition[1:]}."
    elif case.cl_id:
        first = f"{cap(case.name)} is the Cell Ontology term {case.cl_id}."
    else:
        first = f"{cap(case.name)} is not a Cell Ontology term, so its function is not stated."
    named = [e for e in case.evidence if e.name]
    if named:
        return f"{first} {named[0].gene} encodes {named[0].name}."
    return first


def differential_bullet(case: Case) -> str:
    """Bullet 3: why this type rather than the nearest rival, and the first caveat."""
    parts: list[str] = []
    if case.rival is not None:
        rival = case.rival
        if case.separating:
            sentence = (f"{join(list(case.separating[:2]))} {'is' if len(case.separating[:2]) == 1 else 'are'} "
                        f"recorded for {case.name} but not for {rival.name}")
        else:
            sentence = f"{cap(case.name)} is more probable than {rival.name}"
        crowded = bool(case.separating) and "two lineages" in case.flags  # the caveat names genes too
        if rival.absent and not crowded:
            sentence += f", and {join(list(rival.absent[:2]))}, recorded for {rival.name}, " \
                        "are not among the cluster's markers"
        parts.append(sentence + ".")
    if case.caveats:
        parts.append(case.caveats[0])
    if not parts:
        parts.append(f"No other candidate type is close to {case.name}.")
    return " ".join(parts[:2])


RENDERERS = (marker_bullet, function_bullet, differential_bullet)


def render_bullets(case: Case) -> list[str]:
    """The three bullets written from the case alone."""
    return [render(case) for render in RENDERERS]


def case_markdown(case: Case) -> str:
    """The case file as Markdown lines: evidence, definition, rival, caveats."""
    lines = []
    if case.evidence:
        lines.append("**Evidence** (publications in CellMarker 2.0 / singleCellBase; types recording the gene): "
                     + ", ".join(f"{e.gene} ({e.publications}; {e.n_types})" for e in case.evidence))
    else:
        lines.append("**Evidence**: no marker of the cluster is well recorded for this type")
    if case.definition:
        lines.append(f"**{case.cl_id}**: {case.definition}")
    if case.rival is not None:
        r = case.rival
        text = f"**Rival**: {r.name} (probability {r.probability:.2f})"
        if r.present:
            text += f"; its markers present: {', '.join(r.present)}"
        if r.absent:
            text += f"; absent: {', '.join(r.absent)}"
        lines.append(text)
    for caveat in case.caveats:
        lines.append(f"**Caveat**: {caveat}")
    return "\n".join(f"- {line}" for line in lines)
