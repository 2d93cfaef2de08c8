"""``cellscribe annotate MARKERS``: label and explain the clusters of a marker table."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from .. import results
from ..engine import DEFAULT_MODE
from ..engine import annotate as annotate_markers
from ..errors import InputError
from ..llm import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S
from ..markers import DEFAULT_TOP_N
from ._app import app, err, warnings_shown
from ._options import (
    ApiKeyEnv,
    Backend,
    BaseUrl,
    Cache,
    Concurrency,
    Explain,
    ExplainFrom,
    Host,
    Mode,
    Model,
    Seed,
    Species,
    SystemPrompt,
    Temperature,
    Template,
    Timeout,
    Tissue,
    TopN,
    backend_options,
    check_output_file,
    explain_value,
)

#: Result columns left out of ``--format csv``: run bookkeeping.
CSV_OMITTED = ("cached", "seconds")
#: Left out of ``--format json`` as well: the markers sent (the input holds them).
JSON_OMITTED = ("markers", *CSV_OMITTED)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def render(df: pd.DataFrame, fmt: Format) -> str:
    """The results as text in one of the output formats (every result column of
    :mod:`cellscribe.results` the table has, lists as lists in JSON and joined with ``; `` in CSV)."""
    rows = results.records(df)
    if fmt is Format.json:
        return json.dumps([_without(r, JSON_OMITTED) for r in rows], indent=2, ensure_ascii=False)
    if fmt is Format.csv:
        flat = [{k: "; ".join(v) if k in results.LIST_COLUMNS else v for k, v in _without(r, CSV_OMITTED).items()}
                for r in rows]
        return pd.DataFrame(flat, columns=[c for c in df.columns if c not in CSV_OMITTED]).to_csv(index=False)
    if fmt is Format.markdown:
        return "\n".join(f"# Cluster {r['cluster']}: {r['label']}\n\n{r.get('explanation_markdown') or ''}\n\n"
                         f"Markers: {', '.join(r.get('markers') or [])}\n" for r in rows)
    return _table(rows, grounded="cl_id" in df.columns)


def _without(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def _table(rows: list[dict[str, Any]], grounded: bool) -> str:
    """The ``table`` format: one line per cluster, the label and the genes behind it."""
    genes = "evidence_genes" if grounded else "supporting_markers"
    table = Table(show_lines=False)
    for col in ("cluster", "label", *(["cl_id"] if grounded else []), "broad_lineage", "confidence", genes):
        table.add_column(col)
    for r in rows:
        conf = r.get("confidence")
        table.add_row(str(r["cluster"]), str(r.get("label") or ""),
                      *([str(r.get("cl_id") or "unmapped")] if grounded else []), str(r.get("broad_lineage") or ""),
                      "" if conf is None else f"{conf:.2f}", ", ".join(r.get(genes) or []))
    console = Console(record=True, width=120)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


@app.command()
def annotate(
    markers: Path = typer.Argument(..., help="Seurat FindAllMarkers CSV, a cluster,gene CSV, or an .h5ad with "
                                   "rank_genes_groups."),
    tissue: Tissue = None,
    species: Species = "human",
    backend: Backend = "auto",
    model: Model = None,
    top_n: TopN = DEFAULT_TOP_N,
    explain: Explain = True,
    explain_from: ExplainFrom = "model",
    style: str = typer.Option("json", help="json (structured answer) or markdown (the seed's free format)."),
    system_prompt: SystemPrompt = None,
    template: Template = None,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    host: Host = None,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    concurrency: Concurrency = None,
    seed: Seed = 0,
    temperature: Temperature = 0.0,
    cache: Cache = True,
    mode: Mode = DEFAULT_MODE,
) -> None:
    """Label and explain each cluster of a marker table."""
    check_output_file(out)
    with warnings_shown():
        df = annotate_markers(markers, tissue=tissue, species=species, backend=backend, model=model, top_n=top_n,
                              explain=explain_value(explain, explain_from), style=style, system_prompt=system_prompt,
                              template=template,
                              seed=seed, temperature=temperature, cache=cache, concurrency=concurrency, mode=mode,
                              **backend_options(backend, host=host, base_url=base_url, api_key_env=api_key_env,
                                                timeout=timeout))
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
