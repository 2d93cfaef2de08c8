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

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..llm import Backend, ToolCall
from ..llm._errors import LLMError, OutputFormatError
from ._annotate import EXTRA_COLUMNS, SYSTEM, UNMAPPED, _ask, candidates, finish_table, messages, schema
from ._retrieval import Candidate

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


class _Tools:
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
                from ..knowledge import genes

                f = genes.lookup(str(args.get("symbol", "")), species=self.species)  # type: ignore[arg-type]
                if f is None:
                    return {"error": f"no gene named {args.get('symbol')!r}"}
                return {"symbol": f.symbol, "name": f.name, "processes": list(f.go_bp[:5])}
            if call.name == "ontology_lookup":
                from ..evaluate import map_label
                from ..knowledge import ontology

                m = map_label(str(args.get("cell_type", "")))
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
    import json_repair

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


def annotate_cluster_agentic(be: Backend, cluster: str, genes: list[str], *, tissue: str | None, species: str,
                             explain: bool, params: dict[str, Any], max_format_retries: int = 2,
                             web_search: Callable[[str], str] | None = None, system: str | None = None
                             ) -> dict[str, Any]:
    """One cluster's agentic answer as a result row (the grounded mode's columns)."""
    from .. import prompts
    from ..evaluate import broad_type, map_label
    from ..knowledge import ontology

    start = time.perf_counter()
    run = _Tools(genes, tissue=tissue, species=species, web_search=web_search)
    render = prompts._env.from_string
    conversation: list[dict[str, Any]] = [
        {"role": "system", "content": render(prompts.read_template(SYSTEM_TEMPLATE)).render(
            web_search=web_search is not None).strip()},
        {"role": "user", "content": render(prompts.read_template(USER_TEMPLATE)).render(
            cluster=cluster, genes=genes, tissue=tissue, species=species).strip()},
    ]
    specs = tools(web_search=web_search is not None)
    answer: str | None = None
    seen: set[str] = set()
    for _ in range(params.get("max_rounds", MAX_ROUNDS)):
        turn = be.chat_tools(conversation, specs, temperature=params["temperature"], seed=params["seed"],
                             max_tokens=params.get("agent_max_tokens", 256))
        if not turn.tool_calls:
            conversation.append(turn.message)
            answer = _final_type(turn.content)
            break
        calls = [json.dumps([c.name, c.arguments], sort_keys=True) for c in turn.tool_calls]
        if seen.issuperset(calls):  # going round in circles: time to answer
            break
        seen.update(calls)
        conversation.append(turn.message)
        for call in turn.tool_calls:
            conversation.append(be.tool_message(call, json.dumps(run(call))))
    if answer is None:  # no final message yet: ask for it, without tools, in the answer's format
        response = be.chat([*conversation, {"role": "user", "content": FINAL_QUESTION}], schema=FINAL_SCHEMA,
                           temperature=params["temperature"], seed=params["seed"], max_tokens=48)
        answer = _final_type(response.content)

    chosen, chosen_by = (run.ranked[0] if run.ranked else None), "reranker"
    if answer:
        mapped = map_label(answer)
        by_id = {c.cl_id: c for c in run.ranked}
        hit = next((by_id[i] for i in mapped.cl_ids if i in by_id), None)
        if hit is not None:
            chosen, chosen_by = hit, "agent"
        elif mapped.cl_ids:
            cl_id = mapped.cl_ids[0]
            chosen = Candidate(cl_id=cl_id, name=ontology.get().name(cl_id) or answer, score=0.0, evidence=(),
                               probability=OFF_LIST_CONFIDENCE)
            chosen_by = "agent"
    row: dict[str, Any] = {"cluster": cluster, "markers": list(genes), "cached": False, "title": None, "bullets": None,
                           "explanation_markdown": None, "supporting_markers": [],
                           "candidates": [c.name for c in run.ranked[:5]], "agent_tools": list(run.trace)}
    if chosen is None:
        return {**row, "label": answer or UNMAPPED, "cl_id": None, "cl_name": UNMAPPED, "broad_lineage": None,
                "confidence": 0.0, "evidence_genes": [], "chosen_by": "none",
                "seconds": round(time.perf_counter() - start, 3)}
    row.update({"label": chosen.name, "cl_id": chosen.cl_id, "cl_name": chosen.name,
                "broad_lineage": broad_type(chosen.cl_id), "confidence": round(float(chosen.probability or 0.0), 4),
                "evidence_genes": list(chosen.evidence), "chosen_by": chosen_by})
    if explain:
        from ..answers import cited_markers, render_markdown

        msgs = messages(genes, [chosen], tissue=tissue, species=species, explain_only=True, system=system)
        data = _ask(be, msgs, schema([chosen.name], True), params, True, max_format_retries)
        title = chosen.name[:1].upper() + chosen.name[1:]
        row.update({"title": title, "bullets": data["bullets"],
                    "explanation_markdown": render_markdown(title, data["bullets"]),
                    "supporting_markers": cited_markers(genes, title, *data["bullets"])})
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def annotate_table_agentic(table: Any, *, tissue: str | None, be: Backend, explain: bool, params: dict[str, Any],
                           cache: Any, progress: bool, on_error: str, max_format_retries: int = 2,
                           web_search: Callable[[str], str] | None = None, system: str | None = None
                           ) -> pd.DataFrame:
    """Agentic answers for every cluster of a :class:`~cellscribe.markers.MarkerTable`, in the layout
    of :func:`cellscribe.annotate` plus :data:`EXTRA_COLUMNS` and ``agent_tools`` (the tools the
    model called, in order). Answers are cached per cluster, so an interrupted run resumes."""
    import hashlib
    from datetime import datetime, timezone

    from .. import __version__, prompts
    from .._annotate import COLUMNS, _open_cache
    from ..cache import make_key
    from ..progress import Progress

    if type(be)._chat_tools is Backend._chat_tools:  # fail before any work, with chat_tools' clear message
        be.chat_tools([], [])
    identity = be.identity
    key_identity = {"backend": identity.backend, "model": identity.model,
                    "digest": identity.digest or identity.endpoint}
    prompt_hash = hashlib.sha256((prompts.read_template(SYSTEM_TEMPLATE) + prompts.read_template(USER_TEMPLATE)
                                  + (system or SYSTEM)).encode()).hexdigest()[:16]
    store = _open_cache(cache)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    calls = 0
    try:
        with Progress(len(table.genes), f"annotating (agentic) with {identity.model}", unit="clusters",
                      show=progress) as advance:
            for cluster, genes in table.genes.items():
                key = make_key(model=key_identity, messages=[{"role": "agentic", "content": json.dumps(
                    [list(genes), tissue, table.species, explain, prompt_hash, web_search is not None])}],
                    schema=None, sampling={k: params[k] for k in ("temperature", "seed", "max_tokens")})
                hit = store.get(key) if store is not None else None
                try:
                    if hit is not None:
                        row = {**hit["row"], "cluster": cluster, "cached": True}
                    else:
                        row = annotate_cluster_agentic(be, cluster, list(genes), tissue=tissue, species=table.species,
                                                       explain=explain, params=params,
                                                       max_format_retries=max_format_retries, web_search=web_search,
                                                       system=system)
                        calls += 1
                        if store is not None:
                            store.put(key, {"row": row, "created": pd.Timestamp.now("UTC").isoformat()})
                    rows.append(row)
                except (LLMError, OutputFormatError) as exc:
                    failures[cluster] = f"{type(exc).__name__}: {exc}"
                    rows.append({"cluster": cluster, "markers": list(genes), "error": failures[cluster]})
                    log.error("cluster %s failed: %s", cluster, exc)
                advance()
    finally:
        if store is not None:
            store.close()
    provenance = {
        "cellscribe_version": __version__, **identity.to_dict(), "mode": "agentic", "prompt_hash": prompt_hash,
        "tools": [t["function"]["name"] for t in tools(web_search=web_search is not None)],
        "parameters": params, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_clusters": len(table.genes), "dropped_clusters": dict(table.dropped),
    }
    return finish_table(rows, failures, columns=COLUMNS + EXTRA_COLUMNS + ["agent_tools"], provenance=provenance,
                        calls=calls, on_error=on_error)
