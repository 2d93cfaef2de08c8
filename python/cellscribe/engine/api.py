"""``cellscribe.annotate``: check the options, read the markers, run the mode's strategy.

The work itself is the runner's (:mod:`cellscribe.engine.runner`: cache, concurrency, progress,
failures, provenance) and the mode's (:mod:`cellscribe.engine.modes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .. import prompts, results
from ..config import settings
from ..errors import AnnotationError
from ..grounded import infer_tissue
from ..llm import Backend, get_backend
from ..markers import DEFAULT_TOP_N, read_markers
from ..progress import say
from .modes import STRATEGIES, ModeOptions
from .options import DEFAULT_MODE, checked, default_max_tokens, uses_model
from .runner import Run, Unit, run
from .structured import Sampling


def annotate(
    markers: Any, *, tissue: str | None = None, species: str = "human", backend: str | Backend = "auto",
    model: str | None = None, top_n: int = DEFAULT_TOP_N, explain: bool | str = True, mode: str = DEFAULT_MODE,
    style: prompts.Style = "json", system_prompt: str | Path | None = None, template: str | Path | None = None,
    temperature: float = 0.0, seed: int = 0, max_tokens: int | None = None, max_format_retries: int = 2,
    concurrency: int | None = None, cache: bool | str | Path = True, progress: bool | None = None,
    on_error: str = "raise", **backend_options: Any,
) -> pd.DataFrame:
    """Label and explain every cluster of a marker table.

    Parameters
    ----------
    markers
        What :func:`cellscribe.markers.read_markers` accepts: Seurat ``FindAllMarkers`` output, an
        AnnData with ``rank_genes_groups``, a ``{cluster: [genes]}`` mapping, or a file path.
    tissue, species, top_n
        Context for the answer (``species`` also checks gene-symbol style); markers per cluster used.
        Without a tissue (grounded and agentic modes, two or more clusters), the organ the clusters'
        markers point to is inferred and, when the guess is confident, used as the tissue.
    backend, model, **backend_options
        ``"auto"`` (Ollama when reachable, else the embedded model), ``"llamacpp"``, ``"ollama"``,
        ``"openai"``, ``"transformers"`` or a :class:`~cellscribe.llm.Backend`; the model as that
        backend names it; options such as ``timeout``, ``max_retries``, ``host``, ``base_url``,
        ``api_key_env``, ``n_threads``, and ``web_search=`` (a function, agentic mode only).
    explain
        Also a title and three bullets, checked against the label's case (evidence, definition,
        rival, caveats) before they are shown; a bullet that fails twice is rendered from the case.
        ``"knowledge"``: all three rendered from the case, no model (grounded and agentic).
        ``False``: label and confidence only (grounded then runs no model).
    mode
        ``"grounded"`` (default; GPTCelltype dev mean agreement 0.631 cross-validated), ``"llm"``
        (0.131 with the embedded 1.5B model) or ``"agentic"`` (backends with tool calls); see
        :mod:`cellscribe.engine.modes`. ``"markers"`` (old name of grounded without a model) warns.
    style, template, system_prompt
        ``style`` ``"json"`` or ``"markdown"`` and ``template`` apply to ``"llm"`` only; the system
        prompt replaces the packaged one in every mode (text or a file path).
    temperature, seed, max_tokens, max_format_retries
        Sampling (the defaults make runs reproducible; token limits per answer kind in
        ``MAX_TOKENS``); times a malformed answer goes back to the model with the problem.
    concurrency, cache, progress
        Parallel requests in every mode (default: what the backend allows); ``True`` for the default
        answer cache, a path, or ``False``; show progress (default ``settings.progress``).
    on_error
        ``"raise"``: raise :class:`~cellscribe.errors.AnnotationError` after all clusters ran if any
        failed (finished ones stay cached); ``"keep"``: return failed clusters with an ``error``.

    Returns
    -------
    One row per cluster with the mode's columns of :mod:`cellscribe.results` (list columns as
    lists); ``df.attrs["provenance"]`` (version, backend, model, digest, prompt hash, parameters,
    time; without a tissue, ``tissue_inferred``: the organ the clusters' markers point to, see
    :func:`cellscribe.grounded.infer_tissue`, used as the tissue when the guess is confident) and
    ``df.attrs["stats"]`` (model calls, cache hits, failures).
    """
    web_search = backend_options.pop("web_search", None)
    tissue, mode, explain, system = checked(
        tissue=tissue, mode=mode, explain=explain, style=style, template=template, system_prompt=system_prompt,
        backend=backend, model=model, concurrency=concurrency, on_error=on_error, web_search=web_search)
    table = read_markers(markers, species=species, top_n=top_n)
    units = [Unit(cluster, list(genes)) for cluster, genes in table.genes.items()]
    guess = None
    if tissue is None and mode != "llm" and len(units) > 1:  # the organ the markers point to
        guess = infer_tissue([u.genes for u in units], species=table.species)
        say(str(guess) + (": used for the candidates" if guess.confident else ""))
        tissue = guess.organ if guess.confident else None
    strategy = STRATEGIES[mode](ModeOptions(tissue=tissue, species=table.species, explain=explain, system=system,
                                            style=style, template=template, web_search=web_search))
    max_tokens = max_tokens or default_max_tokens(mode, style, explain)
    params = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens, "top_n": top_n, "explain": explain,
              **({"style": style} if mode == "llm" else {}), "tissue": tissue, "species": species, "mode": mode}
    out = run(strategy, units, parameters=params, cache=cache, concurrency=concurrency,
              backend=get_backend(backend, model=model, **backend_options) if uses_model(mode, explain) else None,
              sampling=Sampling(temperature, seed, max_tokens, max_format_retries),
              progress=settings.progress if progress is None else progress)
    df = result_table(out, units, mode, dropped=table.dropped, on_error=on_error)
    if guess is not None:
        df.attrs["provenance"]["tissue_inferred"] = str(guess) + (" (used)" if guess.confident else " (not used)")
    return df


def result_table(out: Run, units: list[Unit], mode: str, *, dropped: dict[str, str] | None = None,
                 on_error: str = "raise") -> pd.DataFrame:
    """The result table of a run: one row per unit in unit order (failed units with ``error``), the
    run's provenance and stats in ``attrs``; with ``on_error="raise"`` a failure raises
    :class:`~cellscribe.errors.AnnotationError` carrying the table."""
    rows = []
    for u in units:
        if u.id in out.answers:
            rows.append({**out.answers[u.id], "cached": out.cached[u.id], "seconds": out.seconds[u.id]})
        else:
            rows.append({"cluster": u.id, "markers": list(u.genes), "error": out.failures[u.id]})
    df = results.frame(rows, results.GROUPS[mode])
    df.attrs["provenance"] = {**out.provenance, "n_clusters": len(units), "dropped_clusters": dict(dropped or {})}
    df.attrs["stats"] = out.stats
    if out.failures and on_error == "raise":
        listing = "; ".join(f"{c}: {m}" for c, m in out.failures.items())
        raise AnnotationError(
            f"{len(out.failures)} of {len(units)} cluster(s) failed ({listing}). The {len(out.answers)} finished "
            "cluster(s) are cached: run again to retry only the failed ones.", failures=out.failures, partial=df)
    return df
