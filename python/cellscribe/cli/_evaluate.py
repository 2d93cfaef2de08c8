"""``cellscribe score`` and ``cellscribe benchmark gptcelltype``: how right are the labels?"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ..benchmark import run_benchmark, score_column
from ..engine import DEFAULT_MODE
from ..llm import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S
from ._app import app, err
from ._options import (
    ApiKeyEnv,
    Backend,
    BaseUrl,
    Cache,
    Concurrency,
    Host,
    Mode,
    Model,
    Seed,
    SystemPrompt,
    Temperature,
    Template,
    Timeout,
    TopN,
    backend_options,
    given,
)

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
    backend: Backend = "auto",
    model: Model = None,
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    explain: bool = typer.Option(False, "--explain/--no-explain", help="Ask for explanations too (slower)."),
    mode: Mode = DEFAULT_MODE,
    style: Optional[str] = typer.Option(None, help="json or markdown (passed to cellscribe.annotate)."),
    top_n: TopN = None,
    template: Template = None,
    system_prompt: SystemPrompt = None,
    seed: Seed = None,
    temperature: Temperature = None,
    concurrency: Concurrency = None,
    cache: Cache = True,
    host: Host = None,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    name: str = typer.Option("cellscribe", help="Name of this run in the summary and plot."),
    truth_from_text: bool = typer.Option(False, help="Map the expert labels from text, ignoring manual_CLID."),
) -> None:
    """Annotate every row (one cluster: its markers and tissue), score against manual_annotation, and
    compare with the published methods on the same rows. Answers are cached: a rerun resumes."""
    # only what was given, so annotate's own defaults apply
    options = given(style=style, top_n=top_n, seed=seed, temperature=temperature, concurrency=concurrency,
                    template=template, system_prompt=system_prompt)
    result = run_benchmark(table, backend=backend, model=model, limit=limit, out=out, name=name, explain=explain,
                           backend_options=backend_options(backend, host=host, base_url=base_url,
                                                           api_key_env=api_key_env, timeout=timeout),
                           truth_from_text=truth_from_text, cache=cache, mode=mode, **options)
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
