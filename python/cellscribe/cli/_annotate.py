"""``cellscribe annotate MARKERS``: label and explain the clusters of a marker table."""

from __future__ import annotations

import json
import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import InputError
from . import app, err
from ._options import check_output_file, mode_option

#: Keys of each object printed by ``--format json``.
JSON_FIELDS = ["cluster", "label", "broad_lineage", "confidence", "title", "bullets", "explanation_markdown",
               "supporting_markers"]
#: Added to the JSON objects by ``--mode grounded`` (the default) and ``agentic``.
GROUNDED_FIELDS = ["cl_id", "cl_name", "evidence_genes", "candidates", "chosen_by"]
_LISTS = ("bullets", "supporting_markers", "markers", "evidence_genes", "candidates")


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def render(df: pd.DataFrame, fmt: Format) -> str:
    """The results as text in one of the output formats."""
    if fmt is Format.json:
        fields = JSON_FIELDS + [f for f in GROUNDED_FIELDS if f in df.columns]
        records = [{k: _plain(r.get(k)) for k in fields} for r in df.to_dict("records")]
        return json.dumps(records, indent=2, ensure_ascii=False)
    if fmt is Format.csv:
        flat = df.copy()
        for col in [c for c in _LISTS if c in flat.columns]:
            flat[col] = flat[col].map(lambda v: "; ".join(map(str, v)) if _is_list(v) else v)
        return flat.drop(columns=["cached", "seconds"], errors="ignore").to_csv(index=False)
    if fmt is Format.markdown:
        parts = []
        for r in df.to_dict("records"):
            parts.append(f"# Cluster {r['cluster']}: {r['label']}\n\n{r.get('explanation_markdown') or ''}\n\n"
                         f"Markers: {', '.join(r.get('markers') or [])}\n")
        return "\n".join(parts)
    table = Table(show_lines=False)
    grounded = "cl_id" in df.columns
    for col in ("cluster", "label", *(["cl_id"] if grounded else []), "broad_lineage", "confidence",
                "evidence_genes" if grounded else "supporting_markers"):
        table.add_column(col)
    for r in df.to_dict("records"):
        conf = r.get("confidence")
        genes = r.get("evidence_genes" if grounded else "supporting_markers")
        table.add_row(str(r["cluster"]), str(r.get("label") or ""),
                      *([str(r.get("cl_id") or "unmapped")] if grounded else []), str(r.get("broad_lineage") or ""),
                      "" if conf is None or pd.isna(conf) else f"{conf:.2f}",
                      ", ".join(map(str, genes)) if _is_list(genes) else "")
    console = Console(record=True, width=120)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def _is_list(v: object) -> bool:
    """Lists, tuples and numpy arrays (what lists become after a round trip through ``adata.uns``)."""
    return isinstance(v, (list, tuple, np.ndarray))


def _plain(v: object) -> object:
    if isinstance(v, float) and pd.isna(v):
        return None
    return v


@app.command()
def annotate(
    markers: Path = typer.Argument(..., help="Seurat FindAllMarkers CSV, a cluster,gene CSV, or an .h5ad with "
                                   "rank_genes_groups."),
    tissue: Optional[str] = typer.Option(None, "--tissue", "-t", help="Tissue, e.g. PBMC."),
    species: str = typer.Option("human", help="human or mouse."),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto, llamacpp, ollama or openai."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the backend (see `cellscribe models`)."),
    top_n: int = typer.Option(10, help="Markers per cluster."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Add a title and three bullets per cluster."),
    style: str = typer.Option("json", help="json (structured answer) or markdown (the seed's free format)."),
    system_prompt: Optional[Path] = typer.Option(None, help="File with a system prompt to use instead."),
    template: Optional[Path] = typer.Option(None, help="File with a Jinja2 user-prompt template to use instead."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    host: Optional[str] = typer.Option(None, help="Ollama address (default OLLAMA_HOST or 127.0.0.1:11434)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the API key."),
    timeout: float = typer.Option(120.0, help="Seconds per request."),
    concurrency: Optional[int] = typer.Option(None, help="Parallel requests (default: what the backend allows)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    temperature: float = typer.Option(0.0, help="Sampling temperature."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Read and write the on-disk answer cache."),
    mode: str = mode_option(),
) -> None:
    """Label and explain each cluster of a marker table."""
    from .._annotate import annotate as run

    check_output_file(out)
    options: dict[str, object] = {"timeout": timeout}
    if host:
        options["host"] = host
    if base_url:
        options["base_url"] = base_url
    if backend == "openai":
        options["api_key_env"] = api_key_env
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = run(markers, tissue=tissue, species=species, backend=backend, model=model, top_n=top_n,
                 explain=explain, style=style, system_prompt=system_prompt, template=template, seed=seed,
                 temperature=temperature, cache=cache, concurrency=concurrency,
                 mode=mode, **options)
    for w in caught:
        err.print(f"[yellow]Warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)
    stats = df.attrs.get("stats", {})
    prov = df.attrs["provenance"]
    err.print(f"{len(df)} clusters with {prov.get('model') or 'marker databases'} ({prov.get('backend') or mode}): "
              f"{stats.get('model_calls', 0)} answered, {stats.get('cache_hits', 0)} from cache.", highlight=False)
    text = render(df, fmt)
    if out:
        try:
            out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            where = "the answer cache" if cache else "nowhere (--no-cache)"
            raise InputError(f"Could not write {out} ({exc.strerror or exc}); the answers are kept in {where}: "
                             "run again with another --out.") from None
        err.print(f"Wrote {out}")
    else:
        typer.echo(text)
