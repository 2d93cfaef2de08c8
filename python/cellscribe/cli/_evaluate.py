"""``cellscribe score`` and ``cellscribe benchmark gptcelltype``: how right are the labels?"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from . import app, err
from ._options import mode_option

benchmark_app = typer.Typer(help="Run an annotator over a benchmark table and score it.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@app.command()
def score(
    table: Path = typer.Argument(..., help="GPTCelltype-format CSV (e.g. ../shared/benchmarks/gptcelltype/dev.csv)."),
    column: str = typer.Option(..., "--column", "-c", help="Labels to score, e.g. gpt4aug3_annotation (or gpt4aug3)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for scores.csv and summary.csv."),
    truth_from_text: bool = typer.Option(False, help="Map the expert labels from text, ignoring manual_CLID."),
) -> None:
    """Score a column of labels against the expert labels (manual_annotation)."""
    from ..evaluate import score_column

    result = score_column(table, column, truth_from_text=truth_from_text, out=out)
    rows = result.rows
    scored = rows["agreement"].notna()
    levels = rows.loc[scored, "level"].value_counts(normalize=True)
    typer.echo(f"{result.provenance['column']}: mean agreement {result.mean:.3f} over {int(scored.sum())} rows "
               f"(exact {levels.get('exact', 0):.1%}, major {levels.get('major', 0):.1%}, "
               f"related {levels.get('related', 0):.1%}, wrong {levels.get('wrong', 0):.1%})")
    pub = result.provenance.get("published")
    if pub:
        typer.echo(f"published {pub['column']}: mean {pub['mean']:.3f}; identical score on {pub['same']}/{pub['n']} "
                   f"rows ({pub['same_share']:.1%})")
    typer.echo(_table(result.summary, result.name))
    _wrote(result.files)


@benchmark_app.command("gptcelltype")
def gptcelltype(
    table: Path = typer.Argument(..., help="GPTCelltype-format CSV (e.g. ../shared/benchmarks/gptcelltype/dev.csv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for predictions.csv, summary.csv, agreement.png."),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto, llamacpp, ollama or openai."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the backend (see `cellscribe models`)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    explain: bool = typer.Option(False, "--explain/--no-explain", help="Ask for explanations too (slower)."),
    mode: str = mode_option(),
    style: Optional[str] = typer.Option(None, help="json or markdown (passed to cellscribe.annotate)."),
    top_n: Optional[int] = typer.Option(None, help="Markers per row sent to the model (default 10)."),
    template: Optional[Path] = typer.Option(None, help="File with a Jinja2 user-prompt template to use instead."),
    system_prompt: Optional[Path] = typer.Option(None, help="File with a system prompt to use instead."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature."),
    concurrency: Optional[int] = typer.Option(None, help="Parallel requests (default: what the backend allows)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Read and write the on-disk answer cache."),
    host: Optional[str] = typer.Option(None, help="Ollama address (default OLLAMA_HOST or 127.0.0.1:11434)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the API key."),
    timeout: float = typer.Option(120.0, help="Seconds per request."),
    name: str = typer.Option("cellscribe", help="Name of this run in the summary and plot."),
    truth_from_text: bool = typer.Option(False, help="Map the expert labels from text, ignoring manual_CLID."),
) -> None:
    """Annotate every row (one cluster: its markers and tissue), score against manual_annotation, and
    compare with the published methods on the same rows. Answers are cached: a rerun resumes."""
    from ..evaluate import run_benchmark

    options: dict[str, Any] = {"cache": cache, "mode": mode}
    for key, value in (("style", style), ("top_n", top_n), ("seed", seed),
                       ("temperature", temperature), ("concurrency", concurrency), ("template", template),
                       ("system_prompt", system_prompt)):
        if value is not None:  # only what was given, so annotate's own defaults apply
            options[key] = value
    backend_options: dict[str, Any] = {"timeout": timeout}
    if host:
        backend_options["host"] = host
    if base_url:
        backend_options["base_url"] = base_url
    if backend == "openai":
        backend_options["api_key_env"] = api_key_env
    result = run_benchmark(table, backend=backend, model=model, limit=limit, out=out, name=name, explain=explain,
                           backend_options=backend_options,
                           truth_from_text=truth_from_text, **options)
    info = result.provenance
    per = info.get("seconds_per_answer")
    how = info["backend"] or f"{info['mode']}, no language model"
    err.print(f"{info['rows']} rows with {info['model']} ({how}): {info['answered_now']} answered "
              f"({'%.2f s per answer' % per if per is not None else 'no new answers'}), {info['from_cache']} from "
              f"cache, {info['failed']} failed; {info['wall_seconds']:.0f} s.", highlight=False)
    typer.echo(f"{name}: mean agreement {result.mean:.3f} on {info['rows']} rows")
    typer.echo(_table(result.summary, result.name))
    _wrote(result.files)


def _table(summary: pd.DataFrame, name: str) -> str:
    """The summary as a text table: this method next to the published ones (n where fewer rows ran)."""
    methods = [c for c in summary.columns if c not in ("n", name) and not c.startswith("n_")]
    table = Table(title="mean agreement (1 full, 0.5 partial, 0 mismatch); published methods on the same rows")
    for col in ("dataset", "n", name, *methods):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for dataset, row in summary.iterrows():
        cells = [str(dataset), str(int(row["n"])), _fmt(row[name])]
        for m in methods:
            ran = int(row.get(f"n_{m}", row["n"]))
            cells.append(_fmt(row[m]) + (f" ({ran})" if 0 < ran < int(row["n"]) else ""))
        table.add_row(*cells)
    console = Console(record=True, width=160)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def _fmt(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.3f}"


def _wrote(files: dict[str, Path]) -> None:
    for path in files.values():
        err.print(f"Wrote {path}", highlight=False)
