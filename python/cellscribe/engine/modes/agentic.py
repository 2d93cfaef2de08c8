"""Agentic annotation (``cellscribe.annotate(..., mode="agentic")``): the model calls local tools.

For backends that speak OpenAI's tool calls (``backend="openai"``: OpenAI, vLLM, llama.cpp's
server started with ``--chat_format chatml-function-calling``, Ollama's ``/v1``), the model gets the
cluster's markers and three local tools, and decides what to look up:

* ``lookup_markers(genes)``: the re-ranked candidate types of :func:`~cellscribe.grounded.candidates`
  (CellMarker 2.0 + singleCellBase, Cell Ontology IDs, probability, evidence genes);
* ``gene_info(symbol)``: the gene's name and main GO processes (NCBI Gene / GO, offline);
* ``ontology_lookup(cell_type)``: the Cell Ontology term a name maps to, with its parents;
* ``web_search(query)``: only when the caller passes ``web_search=`` (a function ``query -> str``),
  for hosted models; off by default, and nothing here searches the web by itself.

Its final answer (``{"cell_type": ...}``) is mapped to the Cell Ontology. A type among the
candidates keeps their evidence genes and the re-ranker's probability as confidence; a type the
databases do not propose gets :data:`OFF_LIST_CONFIDENCE`; no usable answer within
``max_rounds`` falls back to the re-ranker's choice (``chosen_by="reranker"``). The explanation is
then written as in the grounded mode.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import json_repair

from ... import prompts
from ...case import render_bullets
from ...errors import InputError
from ...grounded import UNMAPPED, Candidate, candidates
from ...knowledge import genes, labels, ontology
from ...llm import Backend, ToolCall
from ..explanation import KNOWLEDGE
from ..runner import Ask, Strategy, Unit
from .grounded import SYSTEM, chosen_row, explain, load_knowledge, unmapped_row, with_explanation

log = logging.getLogger(__name__)

#: Tool-calling rounds before the re-ranker's choice stands.
MAX_ROUNDS = 4
#: Confidence of a type the agent chose that the marker databases did not propose (a prior, not
#: calibrated: the re-ranker's probabilities are calibrated only for its own candidates).
OFF_LIST_CONFIDENCE = 0.25
#: The last question when the model has not answered within the rounds (or repeats its calls).
FINAL_QUESTION = ('Answer now with only a JSON object: '
                  '{"cell_type": "<the most specific cell type the evidence supports>"}.')
FINAL_SCHEMA = {"type": "object", "properties": {"cell_type": {"type": "string", "maxLength": 80}},
                "required": ["cell_type"]}
SYSTEM_TEMPLATE = "agent_system.j2"
USER_TEMPLATE = "agent_user.j2"


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}}


def tools(*, web_search: bool = False) -> list[dict[str, Any]]:
    """The tool definitions sent to the model (OpenAI function-calling format)."""
    out = [
        _function("lookup_markers", "Cell types whose known markers overlap the genes, most probable first, "
                  "with Cell Ontology IDs and the genes that support each.",
                  {"genes": {"type": "array", "items": {"type": "string"}}}, ["genes"]),
        _function("gene_info", "Full name and main biological processes of one gene.",
                  {"symbol": {"type": "string"}}, ["symbol"]),
        _function("ontology_lookup", "The Cell Ontology term for a cell-type name, with its parent terms.",
                  {"cell_type": {"type": "string"}}, ["cell_type"]),
    ]
    if web_search:
        out.append(_function("web_search", "Search the web; returns short text snippets.",
                             {"query": {"type": "string"}}, ["query"]))
    return out


class ToolRunner:
    """Runs the tools for one cluster and remembers what the lookups returned."""

    def __init__(self, genes: list[str], *, tissue: str | None, species: str,
                 web_search: Callable[[str], str] | None) -> None:
        self.genes, self.tissue, self.species, self.web_search = genes, tissue, species, web_search
        self.ranked: list[Candidate] = candidates(genes, tissue=tissue, species=species)
        self.trace: list[str] = []

    def __call__(self, call: ToolCall) -> Any:
        self.trace.append(call.name)
        args = call.arguments
        try:
            if call.name == "lookup_markers":
                asked = [str(g) for g in args.get("genes") or [] if str(g).strip()]
                ranked = self.ranked if not asked or set(asked) >= set(self.genes) else candidates(
                    asked, tissue=self.tissue, species=self.species)
                return [{"cell_type": c.name, "cl_id": c.cl_id, "probability": round(c.probability or 0.0, 3),
                         "evidence_genes": list(c.evidence)} for c in ranked[:5]]
            if call.name == "gene_info":
                f = genes.lookup(str(args.get("symbol", "")), species=self.species)  # type: ignore[arg-type]
                if f is None:
                    return {"error": f"no gene named {args.get('symbol')!r}"}
                return {"symbol": f.symbol, "name": f.name, "processes": list(f.go_bp[:5])}
            if call.name == "ontology_lookup":
                m = labels.map_label(str(args.get("cell_type", "")))
                if not m.cl_ids:
                    return {"error": "no Cell Ontology term for that name"}
                cl = ontology.get()
                return [{"cl_id": i, "name": cl.name(i), "parents": [cl.name(p) for p in cl.parents(i)][:4]}
                        for i in m.cl_ids]
            if call.name == "web_search" and self.web_search is not None:
                return {"results": str(self.web_search(str(args.get("query", ""))))[:4000]}
        except Exception as exc:  # a tool failure is the model's information, not the run's end
            log.info("tool %s failed: %s", call.name, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"error": f"unknown tool {call.name!r}"}


def _final_type(text: str) -> str | None:
    """The cell type of the agent's final answer: ``{"cell_type": ...}`` or, failing that, the text."""
    text = (text or "").strip()
    if not text:
        return None
    data = json_repair.loads(text)
    if isinstance(data, dict):
        for key in ("cell_type", "label", "celltype", "type"):
            if isinstance(data.get(key), str) and data[key].strip():
                return data[key].strip()
    first = text.splitlines()[0].strip().strip(".")
    return first if 0 < len(first) <= 80 else None


class Agentic(Strategy):
    """The model looks things up with tools and names the type; the grounded explanation follows.
    A cluster's whole answer (its tool conversation) is cached as one entry."""

    mode = "agentic"

    def __init__(self, *, tissue: str | None, species: str, explain: bool | str, system: str | None = None,
                 web_search: Callable[[str], str] | None = None, max_rounds: int = MAX_ROUNDS,
                 agent_max_tokens: int = 256) -> None:
        self.tissue, self.species, self.explain, self.system = tissue, species, explain, system
        self.web_search, self.max_rounds, self.agent_max_tokens = web_search, max_rounds, agent_max_tokens
        self.prompt_hash = hashlib.sha256((prompts.read_template(SYSTEM_TEMPLATE) + prompts.read_template(USER_TEMPLATE)
                                           + (system or SYSTEM)).encode()).hexdigest()[:16]

    def prepare(self, backend: Backend | None) -> None:
        if backend is None:
            raise InputError("mode='agentic' needs a language model that calls tools (backend='openai').")
        if not backend.supports_tools:  # fail before any work, with chat_tools' clear message
            backend.chat_tools([], [])
        load_knowledge(tissue=self.tissue, species=self.species)

    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        payload = [unit.genes, self.tissue, self.species, self.explain, self.prompt_hash, self.web_search is not None]
        row = ask.remember(payload, lambda: self._answer(unit, ask))
        return {**row, "cluster": unit.id}

    def _answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        run = ToolRunner(unit.genes, tissue=self.tissue, species=self.species, web_search=self.web_search)
        answer = self._converse(unit, ask, run)
        chosen, chosen_by = (run.ranked[0] if run.ranked else None), "reranker"
        if answer:
            mapped = labels.map_label(answer)
            by_id = {c.cl_id: c for c in run.ranked}
            hit = next((by_id[i] for i in mapped.cl_ids if i in by_id), None)
            if hit is not None:
                chosen, chosen_by = hit, "agent"
            elif mapped.cl_ids:
                cl_id = mapped.cl_ids[0]
                chosen = Candidate(cl_id=cl_id, name=ontology.get().name(cl_id) or answer, score=0.0, evidence=(),
                                   probability=OFF_LIST_CONFIDENCE)
                chosen_by = "agent"
        if chosen is None:
            return {**unmapped_row(unit, run.ranked, label=answer or UNMAPPED), "agent_tools": list(run.trace)}
        base, case = chosen_row(unit, chosen, chosen_by, run.ranked, species=self.species)
        row = {**base, "agent_tools": list(run.trace)}
        if self.explain == KNOWLEDGE:
            row = with_explanation(row, unit, case, render_bullets(case), [KNOWLEDGE] * 3)
        elif self.explain:
            bullets, sources = explain(ask, case, tissue=self.tissue, species=self.species, system=self.system)
            row = with_explanation(row, unit, case, bullets, sources)
        return row

    def _converse(self, unit: Unit, ask: Ask, run: ToolRunner) -> str | None:
        """The tool conversation; the model's final cell type (``None``: no usable answer)."""
        be, sampling = ask.backend, ask.sampling
        assert be is not None  # prepare() refused a run without a model
        conversation: list[dict[str, Any]] = [
            {"role": "system", "content": prompts.render(SYSTEM_TEMPLATE, web_search=self.web_search is not None)},
            {"role": "user", "content": prompts.render(USER_TEMPLATE, cluster=unit.id, genes=unit.genes,
                                                       tissue=self.tissue, species=self.species)},
        ]
        specs = tools(web_search=self.web_search is not None)
        seen: set[str] = set()
        for _ in range(self.max_rounds):
            turn = be.chat_tools(conversation, specs, temperature=sampling.temperature, seed=sampling.seed,
                                 max_tokens=self.agent_max_tokens)
            if not turn.tool_calls:
                conversation.append(turn.message)
                return _final_type(turn.content)
            calls = [json.dumps([c.name, c.arguments], sort_keys=True) for c in turn.tool_calls]
            if seen.issuperset(calls):  # going round in circles: time to answer
                break
            seen.update(calls)
            conversation.append(turn.message)
            for call in turn.tool_calls:
                conversation.append(be.tool_message(call, json.dumps(run(call))))
        # no final message yet: ask for it, without tools, in the answer's format
        response = be.chat([*conversation, {"role": "user", "content": FINAL_QUESTION}], schema=FINAL_SCHEMA,
                           temperature=sampling.temperature, seed=sampling.seed, max_tokens=48)
        return _final_type(response.content)

    def provenance(self) -> dict[str, Any]:
        return {"prompt_hash": self.prompt_hash,
                "tools": [t["function"]["name"] for t in tools(web_search=self.web_search is not None)]}
