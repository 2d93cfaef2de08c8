"""Annotate clusters from their marker genes: the central job of cellscribe.

For every cluster, :func:`annotate` renders the prompt, asks the backend, validates the answer
(repairing or re-asking when it is malformed), and stores it in the on-disk cache the moment it
arrives. Clusters run concurrently where the backend allows it, with a progress bar. A rerun is
served from the cache; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__, prompts
from ._settings import settings
from .answers import ClusterAnswer, LabelAnswer, cited_markers, json_schema, parse_json, parse_markdown, render_markdown
from .cache import ResponseCache, make_key
from .errors import CellscribeError, InputError
from .llm import BACKEND_NAMES, Backend, OutputFormatError, get_backend
from .llm._errors import LLMError
from .markers import DEFAULT_TOP_N, read_markers
from .progress import Progress

log = logging.getLogger(__name__)

#: Columns of the result table, in order.
COLUMNS = [
    "cluster", "label", "broad_lineage", "confidence", "title", "bullets", "explanation_markdown",
    "supporting_markers", "markers", "cached", "seconds",
]
#: Annotation modes; the first is the default in every entry point (Python, CLI, R bridge, R).
#: Mean agreement on the GPTCelltype development table (447 rows): grounded 0.601 (re-ranker
#: cross-validated leave-one-dataset-out; GPT-4 0.588 on the same rows), llm 0.131 (the embedded
#: 1.5B model alone).
MODES = ("grounded", "llm", "agentic")
DEFAULT_MODE = MODES[0]
#: Old mode names still accepted, with a warning: name -> (mode, explain).
DEPRECATED_MODES = {"markers": ("grounded", False)}
#: Longest tissue text put in a prompt (longer text is cut, with a warning: it would crowd out
#: the markers and can overflow a small model's context).
MAX_TISSUE_CHARS = 120
#: Generated-token limits per answer kind.
MAX_TOKENS = {"label": 48, "json": 320, "markdown": 600}


class AnnotationError(CellscribeError):
    """Some clusters could not be annotated; the others are in ``partial`` and in the cache."""

    def __init__(self, message: str, *, failures: dict[str, str], partial: pd.DataFrame) -> None:
        super().__init__(message)
        self.failures = failures
        self.partial = partial


@dataclass(frozen=True)
class _Job:
    cluster: str
    genes: list[str]
    messages: list[dict[str, str]]
    key: str


def annotate(
    markers: Any,
    *,
    tissue: str | None = None,
    species: str = "human",
    backend: str | Backend = "auto",
    model: str | None = None,
    top_n: int = DEFAULT_TOP_N,
    explain: bool = True,
    style: prompts.Style = "json",
    system_prompt: str | Path | None = None,
    template: str | Path | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    max_tokens: int | None = None,
    max_format_retries: int = 2,
    concurrency: int | None = None,
    cache: bool | str | Path = True,
    progress: bool | None = None,
    on_error: str = "raise",
    mode: str = DEFAULT_MODE,
    **backend_options: Any,
) -> pd.DataFrame:
    """Label and explain every cluster of a marker table.

    Parameters
    ----------
    markers
        Anything :func:`cellscribe.markers.read_markers` accepts: Seurat ``FindAllMarkers`` output,
        an AnnData with ``rank_genes_groups``, a ``{cluster: [genes]}`` mapping, or a file path.
    tissue, species
        Put in the prompt (``species`` also checks gene-symbol style).
    backend, model
        ``"auto"`` (Ollama when reachable, else the embedded model), ``"llamacpp"``, ``"ollama"``,
        ``"openai"``, or a :class:`~cellscribe.llm.Backend`; ``model`` as that backend takes it.
    top_n
        Markers per cluster sent to the model.
    explain
        ``True``: label, lineage, confidence, title and three bullets. ``False``: label and
        confidence only (fast).
    style
        ``"json"`` (structured answer) or ``"markdown"`` (the seed's free Markdown answer; the
        label is its title).
    system_prompt, template
        Replace the packaged system prompt / user template (text or file path).
    temperature, seed
        Sampling; the defaults (0, 0) make runs reproducible.
    max_tokens
        Generated-token limit per answer (defaults per answer kind in ``MAX_TOKENS``).
    max_format_retries
        Times a malformed answer is sent back to the model with the problem before giving up.
    concurrency
        Parallel requests (default: what the backend allows; 1 for the embedded model).
    cache
        ``True`` for the default cache file, a path for another, ``False`` to neither read nor write.
    progress
        Show a progress bar (default ``settings.progress``).
    on_error
        ``"raise"``: after all clusters ran, raise :class:`AnnotationError` if any failed (finished
        clusters stay cached). ``"keep"``: return failed clusters with an empty label and an
        ``error`` column.
    mode
        ``"grounded"`` (default): candidate Cell Ontology types from marker databases (CellMarker
        2.0, singleCellBase) re-ranked by a learned model, which chooses; the language model
        explains the choice (:mod:`cellscribe.grounded`); with ``explain=False`` no language model
        runs at all. ``"llm"``: the model alone names the type (weak with the embedded 1.5B model:
        mean agreement 0.131 on the GPTCelltype development table, against 0.601 grounded).
        ``"agentic"`` (backends with tool calls: ``backend="openai"`` against OpenAI, vLLM,
        llama.cpp's server or Ollama's ``/v1``): the model calls local tools (marker lookup, gene
        facts, the Cell Ontology; a ``web_search=`` function only when given) and names the type,
        then explains it (:mod:`cellscribe.grounded._agent`); it also adds ``agent_tools``.
        Grounded and agentic add the columns ``cl_id``, ``cl_name`` (``"unmapped"`` when no marker
        is known), ``evidence_genes``, ``candidates`` and ``chosen_by``; ``confidence`` is then the
        re-ranker's probability (calibrated on the GPTCelltype benchmark). ``style`` and
        ``template`` apply to ``"llm"`` only (an error otherwise); ``system_prompt`` also replaces
        the system prompt of the grounded explanation. ``"markers"`` (the old name
        of grounded without a model) still works, with a warning.
    **backend_options
        Passed to the backend (``timeout``, ``max_retries``, ``host``, ``base_url``, ``api_key_env``,
        ``think``, ``n_threads``, ...).

    Returns
    -------
    One row per cluster with columns ``cluster, label, broad_lineage, confidence, title, bullets,
    explanation_markdown, supporting_markers, markers, cached, seconds``. ``bullets``,
    ``supporting_markers`` (markers the explanation cites) and ``markers`` (markers sent) are
    lists. ``df.attrs["provenance"]`` holds backend, model, model digest, prompt hash, parameters,
    package version and time; ``df.attrs["stats"]`` the counts of model calls and cache hits.
    """
    tissue, mode, explain, system = _checked(
        tissue=tissue, mode=mode, explain=explain, style=style, template=template, system_prompt=system_prompt,
        backend=backend, model=model, concurrency=concurrency, on_error=on_error)
    web_search = backend_options.pop("web_search", None)
    if web_search is not None and (mode != "agentic" or not callable(web_search)):
        raise InputError("web_search= takes a function (query -> text) and only applies to mode='agentic'.")
    table = read_markers(markers, species=species, top_n=top_n)
    if mode == "agentic":
        from .grounded._agent import annotate_table_agentic

        return annotate_table_agentic(
            table, tissue=tissue, be=get_backend(backend, model=model, **backend_options), explain=explain,
            params={"temperature": temperature, "seed": seed, "max_tokens": max_tokens or MAX_TOKENS["json"],
                    "top_n": top_n, "explain": explain, "tissue": tissue, "species": species, "mode": mode},
            cache=cache, progress=settings.progress if progress is None else progress, on_error=on_error,
            max_format_retries=max_format_retries, web_search=web_search, system=system)
    if mode == "grounded":
        from .grounded._annotate import annotate_table

        return annotate_table(
            table, tissue=tissue, species=species, explain=explain, cache=cache, on_error=on_error,
            be=get_backend(backend, model=model, **backend_options) if uses_model(mode, explain) else None,
            params={"temperature": temperature, "seed": seed, "max_tokens": max_tokens or MAX_TOKENS["json"],
                    "top_n": top_n, "explain": explain, "tissue": tissue, "species": species, "mode": mode},
            progress=settings.progress if progress is None else progress, max_format_retries=max_format_retries,
            system=system)
    prompt_set = prompts.load(style, system_prompt=system, template=template)
    be = get_backend(backend, model=model, **backend_options)
    answer_model = ClusterAnswer if explain else LabelAnswer
    schema = json_schema(answer_model) if style == "json" else None
    kind = "markdown" if style == "markdown" else ("json" if explain else "label")
    params = {
        "temperature": temperature, "seed": seed, "max_tokens": max_tokens or MAX_TOKENS[kind],
        "top_n": top_n, "explain": explain, "style": style, "tissue": tissue, "species": species, "mode": mode,
    }
    identity = be.identity  # fails early (server down, model missing) before any work
    key_identity = {"backend": identity.backend, "model": identity.model,
                    "digest": identity.digest or identity.endpoint}
    jobs = []
    for cluster, genes in table.genes.items():
        messages = prompt_set.messages(genes, tissue=tissue, species=table.species, cluster=cluster, explain=explain)
        key = make_key(model=key_identity, messages=messages, schema=schema,
                       sampling={k: params[k] for k in ("temperature", "seed", "max_tokens")})
        jobs.append(_Job(cluster, genes, messages, key))

    store = _open_cache(cache)
    parse: Callable[[str], Any] = (
        parse_markdown if style == "markdown" else (lambda text: parse_json(text, answer_model))
    )
    rows: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    calls = 0

    def run(job: _Job) -> tuple[dict[str, Any], bool]:
        hit = store.get(job.key) if store is not None else None
        if hit is not None:
            try:
                return _row(job, parse_cached(hit, answer_model, style), cached=True, seconds=0.0), True
            except OutputFormatError:
                log.warning("ignoring an unreadable cache entry for cluster %s", job.cluster)
        start = time.perf_counter()
        answer, raw, attempts = _ask(be, job, parse, schema, params, max_format_retries)
        if store is not None:
            store.put(job.key, {"answer": answer.model_dump(), "raw": raw, "attempts": attempts,
                                "created": _now()})
        return _row(job, answer, cached=False, seconds=time.perf_counter() - start), False

    workers = max(1, min(concurrency or be.max_concurrency, len(jobs)))
    show = settings.progress if progress is None else progress
    with Progress(len(jobs), f"annotating with {identity.model}", unit="clusters", show=show) as advance, \
            ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(run, job): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                rows[job.cluster], cached = fut.result()
                calls += not cached
            except (LLMError, OutputFormatError) as exc:
                failures[job.cluster] = f"{type(exc).__name__}: {exc}"
                log.error("cluster %s failed: %s", job.cluster, exc)
            advance()
    if store is not None:
        store.close()

    df = _frame(jobs, rows, failures)
    df.attrs["provenance"] = {
        "cellscribe_version": __version__, **identity.to_dict(), "mode": mode, "prompt_hash": prompt_set.hash,
        "parameters": params, "created": _now(), "n_clusters": len(jobs),
        "dropped_clusters": dict(table.dropped),
    }
    df.attrs["stats"] = {"model_calls": calls, "cache_hits": len(rows) - calls, "failed": len(failures)}
    if failures and on_error == "raise":
        listing = "; ".join(f"{c}: {m}" for c, m in failures.items())
        raise AnnotationError(
            f"{len(failures)} of {len(jobs)} cluster(s) failed ({listing}). The {len(rows)} finished "
            "cluster(s) are cached: run again to retry only the failed ones.",
            failures=failures, partial=df,
        )
    return df


def _checked(*, tissue: Any, mode: str, explain: bool, style: str, template: Any, system_prompt: Any,
             backend: Any, model: str | None, concurrency: Any, on_error: str
             ) -> tuple[str | None, str, bool, str | None]:
    """Every option of :func:`annotate` checked before any work, with the option's name in the
    message; returns the tissue as it goes into prompts, the mode and ``explain`` (an old mode name
    mapped, with a warning) and the system prompt's text (``None``: the packaged one)."""
    if on_error not in ("raise", "keep"):
        raise InputError(f"on_error must be 'raise' or 'keep'; got {on_error!r}.")
    tissue = check_tissue(tissue)
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise InputError(f"concurrency must be a positive whole number of parallel requests; got {concurrency!r}.")
    if style == "markdown" and not explain:
        raise InputError("style='markdown' always explains; use style='json' with explain=False for labels only.")
    if mode in DEPRECATED_MODES:
        new_mode, new_explain = DEPRECATED_MODES[mode]
        warnings.warn(f"mode={mode!r} is deprecated; use mode={new_mode!r}, explain={new_explain} "
                      "(the same answer without a language model).", FutureWarning, stacklevel=3)
        mode, explain = new_mode, new_explain
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}.")
    if mode != "llm" and (template is not None or style != "json"):
        raise InputError(f"template= and style= apply to mode='llm' (the model names the type); mode={mode!r} asks "
                         "its own grounded question. Pass mode='llm' to use them.")
    system = prompts.text_or_file(system_prompt, "system prompt") if system_prompt is not None else None
    if isinstance(backend, str) and backend not in BACKEND_NAMES:  # also when no model will run
        raise InputError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}.")
    if model is not None and not uses_model(mode, explain):
        warnings.warn(f"model={model!r} is not used: grounded annotation with explain=False runs no language "
                      "model.", UserWarning, stacklevel=3)
    return tissue, mode, explain, system


def check_tissue(tissue: Any) -> str | None:
    """``tissue`` as it goes into prompts: text or ``None``; longer than :data:`MAX_TISSUE_CHARS`
    it is cut at a word, with a warning."""
    if tissue is None:
        return None
    if not isinstance(tissue, str):
        raise InputError(f"tissue must be text such as 'PBMC' or 'lung'; got {type(tissue).__name__} {tissue!r}.")
    tissue = " ".join(tissue.split())
    if len(tissue) > MAX_TISSUE_CHARS:
        cut = tissue[:MAX_TISSUE_CHARS].rsplit(" ", 1)[0] or tissue[:MAX_TISSUE_CHARS]
        warnings.warn(f"tissue is {len(tissue)} characters long; only the first {len(cut)} go into the prompt "
                      f"({cut[:40]!r}...). Name the tissue in a few words.", UserWarning, stacklevel=4)
        tissue = cut
    return tissue or None


def uses_model(mode: str, explain: bool) -> bool:
    """Whether :func:`annotate` runs a language model in ``mode`` (grounded without explanations
    does not: the re-ranker's choice stands)."""
    mode, explain = DEPRECATED_MODES.get(mode, (mode, explain))
    return mode != "grounded" or explain


def _ask(be: Backend, job: _Job, parse: Callable[[str], Any], schema: dict[str, Any] | None,
         params: dict[str, Any], max_format_retries: int) -> tuple[Any, str, int]:
    """Ask until the answer parses; send the problem back to the model between attempts."""
    messages = list(job.messages)
    problem = ""
    for attempt in range(1, max_format_retries + 2):
        response = be.chat(messages, schema=schema, temperature=params["temperature"], seed=params["seed"],
                           max_tokens=params["max_tokens"])
        try:
            if response.finish_reason == "length":
                raise OutputFormatError(
                    f"the answer was cut off at max_tokens={params['max_tokens']}; answer more briefly"
                )
            return parse(response.content), response.content, attempt
        except OutputFormatError as exc:
            problem = str(exc)
            log.info("cluster %s: malformed answer (%s); asking again", job.cluster, problem)
            messages = [*job.messages, {"role": "assistant", "content": response.content},
                        {"role": "user", "content": prompts.repair_message(problem)}]
    raise OutputFormatError(
        f"cluster {job.cluster}: the answer stayed malformed after {max_format_retries + 1} attempts "
        f"({problem}). Try a larger model, a higher max_tokens, or style='json'."
    )


def parse_cached(hit: dict[str, Any], answer_model: type, style: str) -> Any:
    """Rebuild a validated answer from a cache entry."""
    from .answers import MarkdownAnswer

    model = MarkdownAnswer if style == "markdown" else answer_model
    try:
        return model.model_validate(hit["answer"])
    except Exception as exc:  # an entry from an older schema
        raise OutputFormatError(str(exc)) from None


def _row(job: _Job, answer: Any, *, cached: bool, seconds: float) -> dict[str, Any]:
    data = answer.model_dump()
    title = data.get("title")
    bullets = data.get("bullets")
    explained = title is not None and bullets is not None
    return {
        "cluster": job.cluster,
        "label": data.get("label") or title,
        "broad_lineage": data.get("broad_lineage"),
        "confidence": data.get("confidence"),
        "title": title,
        "bullets": bullets,
        "explanation_markdown": render_markdown(title, bullets) if explained else None,
        "supporting_markers": cited_markers(job.genes, title, *bullets) if explained else [],
        "markers": list(job.genes),
        "cached": cached,
        "seconds": round(seconds, 3),
    }


def _frame(jobs: list[_Job], rows: dict[str, dict[str, Any]], failures: dict[str, str]) -> pd.DataFrame:
    records = []
    for job in jobs:
        if job.cluster in rows:
            records.append(rows[job.cluster])
        elif job.cluster in failures:
            records.append({"cluster": job.cluster, "markers": list(job.genes), "error": failures[job.cluster]})
    df = pd.DataFrame.from_records(records, columns=COLUMNS + (["error"] if failures else []))
    df["confidence"] = pd.to_numeric(df["confidence"], errors="coerce")
    return df


def _open_cache(cache: bool | str | Path) -> ResponseCache | None:
    if cache is False:
        return None
    return ResponseCache(None if cache is True else cache)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
