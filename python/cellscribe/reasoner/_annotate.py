"""``cellscribe.reasoner.annotate_cells``: label every cell from its cell sentence, with reasons.

Throughput on a CPU comes from not repeating work:

* **shared prefix**: instructions, candidate labels and exemplars come first in every request,
  identical for all cells, so the embedded backend evaluates them once and reuses its key/value
  cache; only the cell sentence and the answer are computed per cell.
* **order**: cells are processed in sorted sentence order, so consecutive requests also share
  the sentence's leading genes (cells of one type start alike) and the reused prefix grows.
* **one call per distinct sentence**: cells with identical sentences share one answer.
* **answer cache**: every answer is stored on disk as it arrives (the core's SQLite cache, keyed
  by model, messages, schema and sampling), so a rerun is served from disk and an interrupted
  run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config import settings
from ..engine import Ask, Sampling, Strategy, Unit, check_concurrency, run
from ..errors import AnnotationError, InputError
from ..llm import Backend, get_backend
from ..version import __version__
from ._answer import CellAnswer, answer_schema, parse_answer
from ._evidence import SentenceMarkers, explain, pick_cells
from ._manifest import read_manifest
from ._prompt import ReasonPrompt, build_prompt
from ._reference import SENTENCE_KEY, reference_sentences, resolve_ranking
from ._sentences import DEFAULT_N_GENES, cell_sentences

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Generated-token limit per answer: three short evidence items and a label need ~40 tokens; the
#: limit covers three items cut at their maximum length even by a model that writes digit by digit.
MAX_TOKENS = 240


def annotate_cells(
    adata: AnnData,
    *,
    reference: AnnData | None = None,
    label_key: str | None = None,
    shots: int = 0,
    candidates: Sequence[str] | bool | None = None,
    groupby: str | None = None,
    n_genes: int = DEFAULT_N_GENES,
    ranking: Sequence[str] | None = None,
    use_raw: bool | None = None,
    layer: str | None = None,
    tissue: str | None = None,
    species: str = "human",
    backend: str | Backend = "auto",
    model: str | None = None,
    system_prompt: str | Path | None = None,
    template: str | Path | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    max_tokens: int = MAX_TOKENS,
    max_format_retries: int = 2,
    cache: bool | str | Path = True,
    progress: bool | None = None,
    concurrency: int | None = None,
    on_error: str = "raise",
    key_added: str = "reasoner",
    copy: bool = False,
    **backend_options: Any,
) -> AnnData | None:
    """Annotate every cell from its cell sentence, reasoning marker by marker.

    (Over 100 lines only because it documents 25 parameters and what it writes; the work is done
    by the helpers below and by :func:`run_cells`.)

    Parameters
    ----------
    adata
        Cells to annotate, log-normalised expression in ``.raw``, ``X`` or ``layer``.
    reference, label_key
        Labelled cells (``reference.obs[label_key]``): the source of few-shot exemplars and of the
        default candidate labels.
    shots
        Exemplars per reference type (0: zero-shot). Exemplars are balanced by type, the most
        typical cells of each type first; their rationale is built from marker evidence.
    candidates
        Labels the answer must be one of. ``None``: the reference's labels when a reference is
        given, else free labels; ``False``: free labels; or a list.
    groupby
        A cluster column of ``adata.obs``: adds the cluster-level majority label and the agreement
        between cell-level and cluster-level labels.
    n_genes, ranking, use_raw, layer
        Cell sentences (:func:`~cellscribe.reasoner.cell_sentences`); the ranking defaults to the
        one a fine-tuned ``adapter`` was trained with, then the one saved with ``adata``, then with
        the reference, else one computed on the reference.
    tissue, species
        Context in the prompt.
    backend, model, **backend_options
        As for :func:`cellscribe.annotate`; ``backend="transformers"`` with ``adapter=`` runs a
        fine-tuned model (:func:`~cellscribe.reasoner.finetune`).
    system_prompt, template
        Replace the packaged templates (``reason_system.j2``, ``reason_user.j2``).
    temperature, seed, max_tokens, max_format_retries
        Sampling (the defaults make runs reproducible); times a malformed answer is sent back with
        the problem before the cell fails.
    cache, progress, concurrency
        ``True`` for the default answer cache, a path, or ``False``; show progress (default
        ``settings.progress``); parallel requests (default: what the backend allows; 1 for the
        embedded model, whose shared prefix is reused between consecutive cells).
    on_error
        ``"raise"``: after all cells ran, write what finished, then raise
        :class:`~cellscribe.errors.AnnotationError` if any cell failed (finished answers are
        cached). ``"keep"``: leave failed cells unlabelled.
    key_added, copy
        Where results go; return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy), with

    ``adata.obs["cell_sentence"]``, ``adata.uns["cell_sentence"]``
        The sentences and the gene ranking (see :func:`~cellscribe.reasoner.cell_sentences`).
    ``adata.obs[key_added]``
        The cell-level label (categorical; missing where the cell failed or expresses no ranked gene).
    ``adata.obs[f"{key_added}_evidence"]``
        The rationale, evidence items joined by ``" | "``.
    ``adata.obs[f"{key_added}_cluster"]``, ``adata.obs[f"{key_added}_agrees"]``
        With ``groupby``: the majority label of the cell's cluster, and whether the cell's own
        label equals it.
    ``adata.uns[key_added]``
        ``params``; ``provenance`` (backend, model, digest, prompt hash, version, time);
        ``stats`` (cells, distinct sentences, model calls, cache hits, failures, seconds,
        cells per second); ``exemplars`` (reference cell names); ``candidates``; with ``groupby``
        ``cluster_labels`` ({cluster: majority}), ``cluster_agreement`` ({cluster: fraction})
        and ``agreement`` (fraction of all labelled cells).
    """
    _check_options(adata, on_error=on_error, shots=shots, reference=reference, label_key=label_key,
                   groupby=groupby)
    check_concurrency(concurrency)
    adata = adata.copy() if copy else adata

    if ranking is None and backend_options.get("adapter"):
        trained = read_manifest(backend_options["adapter"])["settings"]
        ranking = trained["ranking"]  # the adapter reads genes in the order it was trained on
        if trained.get("n_genes") != n_genes:
            log.warning("the adapter was trained on %s-gene sentences; annotating with n_genes=%d",
                        trained.get("n_genes"), n_genes)
    rank = resolve_ranking(adata, reference, ranking, use_raw=use_raw, layer=layer)
    cell_sentences(adata, n_genes=n_genes, ranking=rank, use_raw=use_raw, layer=layer, key_added=SENTENCE_KEY)
    sentences = [s.split() for s in adata.obs[SENTENCE_KEY]]

    labels, exemplars, exemplar_names = _few_shot(reference, label_key, candidates, shots=shots, ranking=rank,
                                                  n_genes=n_genes, seed=seed, use_raw=use_raw, layer=layer)
    prompt = build_prompt(candidates=labels, tissue=tissue, species=species, exemplars=exemplars,
                          system_prompt=system_prompt, template=template)
    schema = answer_schema(labels)

    be = get_backend(backend, model=model, **backend_options)
    identity = be.identity
    params = {"shots": shots, "n_genes": n_genes, "n_candidates": len(labels or []), "tissue": tissue or "",
              "species": species, "temperature": temperature, "seed": seed, "max_tokens": max_tokens,
              "groupby": groupby or "", "label_key": label_key or ""}
    answers, failures, stats = run_cells(
        be, prompt, sentences, schema=schema, candidates=labels, temperature=temperature, seed=seed,
        max_tokens=max_tokens, max_format_retries=max_format_retries, cache=cache, progress=progress,
        concurrency=concurrency,
    )

    _write(adata, key_added, sentences, answers)
    uns: dict[str, Any] = {
        "params": params, "candidates": list(labels or []), "exemplars": exemplar_names, "stats": stats,
        "provenance": {"cellscribe_version": __version__, **{k: v or "" for k, v in identity.to_dict().items()},
                       "prompt_hash": prompt.hash, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }
    if groupby is not None:
        uns.update(cluster_agreement(adata, groupby, key_added))
    adata.uns[key_added] = uns
    if failures and on_error == "raise":
        listing = "; ".join(f"{m}" for m in list(failures.values())[:3])
        raise AnnotationError(
            f"{len(failures)} of {len(answers) + len(failures)} distinct cell sentence(s) failed ({listing}). "
            "The finished answers are written and cached: run again to retry only the failed cells.",
            failures=failures, partial=adata.obs[[key_added]].copy(),
        )
    return adata if copy else None


def _check_options(adata: AnnData, *, on_error: str, shots: int, reference: AnnData | None, label_key: str | None,
                   groupby: str | None) -> None:
    """The options of :func:`annotate_cells` checked before any work."""
    if on_error not in ("raise", "keep"):
        raise InputError(f"on_error must be 'raise' or 'keep'; got {on_error!r}.")
    if shots < 0:
        raise InputError(f"shots must be 0 or more; got {shots}.")
    if (shots or label_key) and reference is None:
        raise InputError("Few-shot annotation needs labelled cells: pass reference= and label_key=.")
    if reference is not None and label_key is None:
        raise InputError("Pass label_key= to name the reference's label column.")
    if groupby is not None and groupby not in adata.obs:
        raise InputError(f"adata.obs has no column {groupby!r} (groupby).")


def _few_shot(reference: AnnData | None, label_key: str | None, candidates: Sequence[str] | bool | None, *,
              shots: int, ranking: list[str], n_genes: int, seed: int, use_raw: bool | None, layer: str | None
              ) -> tuple[list[str] | None, list[tuple[list[str], CellAnswer]], list[str]]:
    """The candidate labels (``None``: free labels), the exemplars (sentence and reasoned answer)
    and the exemplar cells' names, from the reference."""
    exemplar_names: list[str] = []
    exemplars: list[tuple[list[str], CellAnswer]] = []
    ref_labels: list[str] = []
    if reference is not None:
        ref_sentences, ref_labels = reference_sentences(reference, label_key, ranking, n_genes,
                                                        use_raw=use_raw, layer=layer)
        if shots:
            markers = SentenceMarkers.fit(ref_sentences, ref_labels)
            idx = pick_cells(ref_labels, shots, sentences=ref_sentences, markers=markers, seed=seed)
            exemplars = [(ref_sentences[i], explain(ref_sentences[i], ref_labels[i], markers)) for i in idx]
            names = reference.obs_names[reference.obs[label_key].notna().to_numpy()]
            exemplar_names = [str(names[i]) for i in idx]
    if candidates is None:
        labels = sorted(set(ref_labels)) if ref_labels else None
    elif candidates is False or candidates is True:
        if candidates is True and not ref_labels:
            raise InputError("candidates=True takes the reference's labels: pass reference= and label_key=.")
        labels = sorted(set(ref_labels)) if candidates else None
    else:
        labels = [str(c) for c in candidates] or None
    return labels, exemplars, exemplar_names


def _write(adata: AnnData, key_added: str, sentences: list[list[str]], answers: dict[str, CellAnswer]) -> None:
    """Each cell's label and evidence into ``adata.obs`` (cells share the answer of their sentence)."""
    keys = [" ".join(s) for s in sentences]
    adata.obs[key_added] = pd.Categorical([answers[k].label if k in answers else None for k in keys])
    adata.obs[f"{key_added}_evidence"] = [" | ".join(answers[k].evidence) if k in answers else "" for k in keys]


class CellReasoning(Strategy):
    """One cell sentence, one structured answer (label among the candidates, evidence items)."""

    mode = "reasoner"

    def __init__(self, prompt: ReasonPrompt, *, schema: dict[str, Any], candidates: list[str] | None) -> None:
        self.prompt, self.schema, self.candidates = prompt, schema, candidates

    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        answer = ask(self.prompt.messages(unit.genes), parse=lambda text: parse_answer(text, self.candidates),
                     schema=self.schema, hint="Try a larger model or a fine-tuned adapter.")
        return answer.model_dump()

    def provenance(self) -> dict[str, Any]:
        return {"prompt_hash": self.prompt.hash}


def run_cells(
    be: Backend,
    prompt: ReasonPrompt,
    sentences: Sequence[Sequence[str]],
    *,
    schema: dict[str, Any],
    candidates: list[str] | None,
    temperature: float = 0.0,
    seed: int = 0,
    max_tokens: int = MAX_TOKENS,
    max_format_retries: int = 2,
    cache: bool | str | Path = True,
    progress: bool | None = None,
    concurrency: int | None = None,
) -> tuple[dict[str, CellAnswer], dict[str, str], dict[str, Any]]:
    """Answer every distinct non-empty sentence once, in sorted order, through the engine's runner
    (cache, progress, failures; see :mod:`cellscribe.engine.runner`).

    Returns ``(answers, failures, stats)``: answers and error messages keyed by the sentence
    (genes joined by spaces), and the counts of the run.
    """
    start = time.perf_counter()
    distinct = sorted({tuple(s) for s in sentences if len(s)})
    empty = sum(1 for s in sentences if not len(s))
    if empty:
        log.warning("%d cell(s) express none of the ranked genes and stay unlabelled", empty)
    out = run(CellReasoning(prompt, schema=schema, candidates=candidates),
              [Unit(" ".join(s), list(s)) for s in distinct], backend=be,
              sampling=Sampling(temperature, seed, max_tokens, max_format_retries), cache=cache,
              concurrency=concurrency, progress=settings.progress if progress is None else progress,
              unit_name="cell sentences")
    answers = {k: CellAnswer.model_validate(v) for k, v in out.answers.items()}
    seconds = time.perf_counter() - start
    stats = {"cells": len(sentences), "distinct_sentences": len(distinct), "empty_sentences": empty,
             **out.stats, "seconds": round(seconds, 3),
             "cells_per_second": round(len(sentences) / seconds, 3) if seconds else 0.0}
    return answers, out.failures, stats


def cluster_agreement(adata: AnnData, groupby: str, key_added: str) -> dict[str, Any]:
    """Majority label per cluster, written per cell, and the cell/cluster agreement."""
    labels = adata.obs[key_added].astype(object)
    clusters = adata.obs[groupby].astype(str)
    frame = pd.DataFrame({"cluster": clusters, "label": labels}).dropna()
    majority = (frame.groupby("cluster")["label"]
                .agg(lambda s: s.value_counts().sort_index(kind="stable").idxmax() if len(s) else None))
    majority = majority.loc[lambda s: s.notna()]
    cluster_label = clusters.map(majority)
    adata.obs[f"{key_added}_cluster"] = pd.Categorical(cluster_label)
    agrees = (labels == cluster_label) & labels.notna()
    adata.obs[f"{key_added}_agrees"] = agrees.to_numpy(dtype=bool)
    labelled = labels.notna().to_numpy()
    per_cluster = {str(c): float(agrees[labelled & (clusters == c).to_numpy()].mean())
                   for c in majority.index}
    return {
        "cluster_labels": {str(c): str(v) for c, v in majority.items()},
        "cluster_agreement": per_cluster,
        "agreement": float(agrees[labelled].mean()) if labelled.any() else float("nan"),
    }
