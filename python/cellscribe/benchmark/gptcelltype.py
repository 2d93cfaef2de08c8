"""The GPTCelltype benchmark (Hou & Ji, Nature Methods 2024): run an annotator, score, compare.

A GPTCelltype-format table has one row per cluster: ``dataset``, ``tissue``, ``marker`` (the top
markers, comma-separated), the expert label ``manual_annotation`` (with its Cell Ontology mapping
``manual_CLID``/``manual_broadtype`` when known), and for each published method ``M`` in
:data:`PUBLISHED_METHODS` its ``M_annotation`` and ``M_agreement``. The development part ships in
``../shared/benchmarks/gptcelltype/dev.csv`` beside a checkout.

* :func:`run_benchmark` annotates every row with :func:`cellscribe.annotate` (answers cached on disk
  as they arrive, so an interrupted run resumes), scores each prediction against the expert label
  (:func:`~cellscribe.evaluate.score_labels`) and summarises the mean agreement overall and per
  dataset next to the published methods' means on the same rows.
* :func:`score_column` scores an existing column of labels the same way and reports how often the
  scores equal a published ``*_agreement`` column (the scorer's validity check).

Species: a ``species`` column when present; otherwise a row whose marker symbols are mostly written
in mouse style (``Cd3e``: capital then lower case) is mouse (the MCA rows), every other row human.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import settings
from ..engine import DEFAULT_MODE, annotate, uses_model
from ..errors import InputError
from ..evaluate import SCORE_COLUMNS, score_labels
from ..llm import get_backend
from ..progress import Progress

log = logging.getLogger(__name__)

#: Published methods of the GPTCelltype table, in the study's order.
PUBLISHED_METHODS = ("gpt4aug3", "gpt4mar23", "gpt3.5aug3", "CellMarker2.0", "SingleR", "ScType")
REQUIRED_COLUMNS = ("marker", "manual_annotation")
#: Columns of the per-row results, in order (after them, every column of :func:`score_labels`).
ROW_COLUMNS = ["row", "dataset", "tissue", "species", "cluster", "marker", "manual_annotation", "prediction"]

_MOUSE_SYMBOL = re.compile(r"^[A-Z][a-z][a-z0-9-]*$|^[0-9]+[A-Za-z0-9]*Rik$|^Gm\d+$")


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` and :func:`score_column` return.

    Attributes
    ----------
    rows
        One row per input row, in input order: :data:`ROW_COLUMNS`, then the columns of
        :func:`~cellscribe.evaluate.score_labels` (``agreement``, ``level``, the prediction's Cell
        Ontology mapping, ...), then run details (``confidence``, ``cached``, ``seconds``, ``error``)
        for a benchmark run.
    summary
        Mean agreement overall (``"all"``) and per dataset: ``n`` rows, the scored method's mean
        (column ``name``), and each published method's mean on the same rows (``n_<method>`` rows
        where it ran).
    name
        Column name of the scored method in ``summary``.
    provenance
        Backend, model, parameters, timing (benchmark runs).
    files
        Paths written (``rows``, ``summary``, ``plot``, ``provenance``).
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.summary.loc["all", self.name])


def read_table(path: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read and check a GPTCelltype-format table (CSV path or DataFrame); adds ``dataset``/``tissue``
    when absent. Raises :class:`~cellscribe.errors.InputError` naming missing columns."""
    if isinstance(path, pd.DataFrame):
        table = path.copy()
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p} does not exist. Pass a GPTCelltype-format CSV (e.g. "
                             "../shared/benchmarks/gptcelltype/dev.csv).")
        try:
            table = pd.read_csv(p)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{p} is not a readable CSV table ({exc}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"The table lacks column(s) {', '.join(missing)}; a GPTCelltype table has "
                         f"{', '.join(REQUIRED_COLUMNS)} (plus dataset, tissue, manual_CLID, ...).")
    if table.empty:
        raise InputError("The table has no rows.")
    for col in ("dataset", "tissue"):
        if col not in table.columns:
            table[col] = None
    return table.reset_index(drop=True)


def marker_genes(text: Any) -> list[str]:
    """The genes of a ``marker`` cell (``"MS4A1, CD79A, ..."``), in order, without blanks or ``NA``."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return []
    genes = [g.strip() for g in re.split(r"[,;]", str(text))]
    return [g for g in genes if g and g.upper() not in ("NA", "NAN")]


def species_of(genes: Sequence[str]) -> str:
    """``"mouse"`` when most symbols are written in mouse style (``Cd3e``, ``2210407C18Rik``), else
    ``"human"``."""
    if not genes:
        return "human"
    mouse = sum(bool(_MOUSE_SYMBOL.match(g)) for g in genes)
    return "mouse" if mouse / len(genes) >= 0.5 else "human"


def score_table(table: pd.DataFrame, predictions: Sequence[Any], *, truth_from_text: bool = False) -> pd.DataFrame:
    """Per-row scores of ``predictions`` (one per table row) against ``manual_annotation``.

    The truth uses the table's own ``manual_CLID``/``manual_broadtype`` when present (unless
    ``truth_from_text``); the predictions are always mapped from their text.

    Returns
    -------
    :data:`ROW_COLUMNS` followed by the columns of :func:`~cellscribe.evaluate.score_labels`.
    """
    use_ids = not truth_from_text and "manual_CLID" in table.columns
    use_broad = not truth_from_text and "manual_broadtype" in table.columns
    genes = [marker_genes(m) for m in table["marker"]]
    species = table["species"].tolist() if "species" in table.columns else [species_of(g) for g in genes]
    scored = score_labels(
        list(predictions), table["manual_annotation"].tolist(),
        truth_cl_ids=table["manual_CLID"].tolist() if use_ids else None,
        truth_broad=table["manual_broadtype"].tolist() if use_broad else None,
        species=species,
    )
    front = pd.DataFrame({
        "row": range(len(table)),
        "dataset": table["dataset"].tolist(),
        "tissue": table["tissue"].tolist(),
        "species": species,
        "cluster": [f"row{i}" for i in range(len(table))],
        "marker": table["marker"].tolist(),
        "manual_annotation": table["manual_annotation"].tolist(),
        "prediction": list(predictions),
    })
    return pd.concat([front, scored.drop(columns=["predicted", "truth"])], axis=1)


def summarise(rows: pd.DataFrame, table: pd.DataFrame, *, name: str) -> pd.DataFrame:
    """Mean agreement overall and per dataset, next to the published methods on the same rows.

    Returns
    -------
    Indexed by ``"all"`` then each dataset (table order): ``n``, ``name`` (this method's mean), then
    for each published method present, its mean and ``n_<method>`` (rows where it ran).
    """
    data = pd.DataFrame({"dataset": table["dataset"].fillna("(none)").astype(str).tolist(),
                         name: rows["agreement"].tolist()})
    methods = [m for m in PUBLISHED_METHODS if f"{m}_agreement" in table.columns and m != name]
    for m in methods:
        data[m] = pd.to_numeric(table[f"{m}_agreement"], errors="coerce").tolist()
    groups = [("all", data)] + [(d, data[data["dataset"] == d]) for d in dict.fromkeys(data["dataset"])]
    records = []
    for label, g in groups:
        rec: dict[str, Any] = {"dataset": label, "n": len(g), name: g[name].mean()}
        for m in methods:
            rec[m] = g[m].mean()
            rec[f"n_{m}"] = int(g[m].notna().sum())
        records.append(rec)
    return pd.DataFrame.from_records(records).set_index("dataset")


def score_column(table: str | Path | pd.DataFrame, column: str, *, truth_from_text: bool = False,
                 out: str | Path | None = None) -> BenchmarkResult:
    """Score an existing column of labels against ``manual_annotation``.

    Parameters
    ----------
    table
        GPTCelltype-format CSV path or DataFrame.
    column
        The labels to score (``gpt4aug3_annotation``; a published method's name such as
        ``gpt4aug3`` is read as ``<name>_annotation``).
    truth_from_text
        Map the expert labels from their text instead of using ``manual_CLID``/``manual_broadtype``.
    out
        Folder to write ``scores.csv`` (one row per input row, in order) and ``summary.csv`` into.

    Returns
    -------
    A :class:`BenchmarkResult` whose ``rows`` has one row per input row. When a published
    ``<method>_agreement`` column exists, rows it leaves empty (method not run) stay unscored
    (``agreement`` missing), ``rows["published_agreement"]`` repeats it, and
    ``provenance["published"]`` holds its mean, the number of rows it scored, and on how many of them
    our score is identical (``"same"``, ``"same_share"``).
    """
    t = read_table(table)
    col = column if column in t.columns else f"{column}_annotation"
    if col not in t.columns:
        options = [c for c in t.columns if c.endswith("_annotation")]
        raise InputError(f"No column {column!r} in the table; label columns: {', '.join(options) or 'none'}.")
    method = col[: -len("_annotation")] if col.endswith("_annotation") else col
    rows = score_table(t, t[col].tolist(), truth_from_text=truth_from_text)
    info: dict[str, Any] = {"column": col, "truth_from_text": truth_from_text}
    published = f"{method}_agreement"
    if published in t.columns:  # rows where the method did not run stay unscored, as in the study
        pub = pd.to_numeric(t[published], errors="coerce")
        ran = pub.notna().to_numpy()
        rows.loc[~ran, "agreement"] = float("nan")
        rows.loc[~ran, "level"] = None
        rows["published_agreement"] = pub.tolist()
        same = int((rows["agreement"].to_numpy()[ran] == pub.to_numpy()[ran]).sum())
        info["published"] = {"column": published, "mean": float(pub[ran].mean()), "n": int(ran.sum()),
                             "same": same, "same_share": same / max(1, int(ran.sum()))}
    name = f"{method} (rescored)"
    result = BenchmarkResult(rows=rows, summary=summarise(rows, t, name=name), name=name, provenance=info)
    if out is not None:
        result.files = _write(result, Path(out), rows_name="scores.csv", plot=False)
    return result


def run_benchmark(
    table: str | Path | pd.DataFrame,
    *,
    backend: Any = "auto",
    model: str | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
    name: str = "cellscribe",
    explain: bool = False,
    backend_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    on_group: Callable[[int, int], None] | None = None,
    truth_from_text: bool = False,
    **annotate_options: Any,
) -> BenchmarkResult:
    """Annotate every row of a GPTCelltype-format table, score it, and compare with the published methods.

    Parameters
    ----------
    table
        GPTCelltype-format CSV path or DataFrame.
    backend, model, backend_options
        The annotator's backend (name or :class:`~cellscribe.llm.Backend`), model and backend options
        (``timeout``, ``host``, ``base_url``, ...); the backend is made once for the whole run.
    limit
        Only the first ``limit`` rows.
    out
        Folder for ``predictions.csv`` (one row per input row, in order), ``summary.csv``,
        ``agreement.png`` (bar plot of the means) and ``provenance.json``.
    name
        Name of this method in the summary and plot.
    explain
        Ask for explanations too (slower; only the label is scored). Default: label only.
    progress
        Show a progress bar over rows (default ``settings.progress``).
    on_group
        Called as ``on_group(rows_done, rows_total)`` after each (tissue, species) group.
    truth_from_text
        Map the expert labels from their text instead of using ``manual_CLID``/``manual_broadtype``.
    **annotate_options
        Passed to :func:`cellscribe.annotate` (``style``, ``top_n``, ``temperature``, ``seed``,
        ``template``, ``system_prompt``, ``mode``, ...).

    Returns
    -------
    A :class:`BenchmarkResult`: ``rows`` (predictions, their mapping and ``agreement`` per row, plus
    ``confidence``, ``cached``, ``seconds``, ``error``), ``summary``, ``provenance`` (including
    ``seconds_per_answer`` over rows answered by the model in this run) and ``files``.
    """
    t, genes, species, tissues = _rows(table, limit)
    mode = annotate_options.get("mode", DEFAULT_MODE)
    be = get_backend(backend, model=model, **(backend_options or {})) if uses_model(mode, explain) else None
    identity = be.identity if be is not None else None
    model_name = identity.model if identity is not None else "marker databases"

    groups: dict[tuple[str | None, str], list[int]] = {}
    for i, key in enumerate(zip(tissues, species, strict=True)):
        groups.setdefault(key, []).append(i)
    answers: dict[int, dict[str, Any]] = {}
    provenance: dict[str, Any] = {}
    show = settings.progress if progress is None else progress
    start = time.perf_counter()
    with Progress(len(t), f"benchmark with {model_name}", unit="rows", show=show) as advance:
        done = 0
        for (tissue, sp), idx in groups.items():
            markers = {f"row{i}": genes[i] for i in idx}
            df = annotate(markers, tissue=tissue, species=sp, backend=be, explain=explain, progress=False,
                          on_error="keep", **annotate_options)
            provenance = df.attrs.get("provenance", provenance)
            for rec in df.to_dict("records"):
                answers[int(str(rec["cluster"])[3:])] = rec
            done += len(idx)
            advance(len(idx))
            if on_group is not None:
                on_group(done, len(t))
    wall = time.perf_counter() - start

    predictions = [answers.get(i, {}).get("label") for i in range(len(t))]
    predictions = [None if (p is None or (isinstance(p, float) and pd.isna(p)) or p == "") else p for p in predictions]
    rows = score_table(t.assign(species=species), predictions, truth_from_text=truth_from_text)
    for col in ("confidence", "cached", "seconds", "error"):
        rows[col] = [answers.get(i, {}).get(col) for i in range(len(t))]
    answered = [a for a in answers.values() if not a.get("cached") and not _failed(a)]
    info = {
        "backend": identity.backend if identity else None, "model": model_name,
        "digest": identity.digest if identity else None, "mode": mode,
        "prompt_hash": provenance.get("prompt_hash"), "parameters": provenance.get("parameters"),
        "cellscribe_version": provenance.get("cellscribe_version"), "rows": len(t), "groups": len(groups),
        "answered_now": len(answered), "from_cache": sum(bool(a.get("cached")) for a in answers.values()),
        "failed": sum(_failed(a) for a in answers.values()), "wall_seconds": round(wall, 2),
        "seconds_per_answer": (round(sum(float(a.get("seconds") or 0) for a in answered) / len(answered), 3)
                               if answered else None),
        "truth_from_text": truth_from_text, "explain": explain,
        "annotate_options": {k: str(v) for k, v in annotate_options.items()},
    }
    result = BenchmarkResult(rows=rows, summary=summarise(rows, t, name=name), name=name, provenance=info)
    if out is not None:
        result.files = _write(result, Path(out), rows_name="predictions.csv", plot=True)
    return result


def _rows(table: str | Path | pd.DataFrame, limit: int | None
          ) -> tuple[pd.DataFrame, list[list[str]], list[str], list[str | None]]:
    """The benchmark table (its first ``limit`` rows), each row's marker genes, species and tissue."""
    t = read_table(table)
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be a positive number of rows; got {limit}.")
        t = t.head(limit).reset_index(drop=True)
    genes = [marker_genes(m) for m in t["marker"]]
    empty = [i for i, g in enumerate(genes) if not g]
    if empty:
        raise InputError(f"Row(s) {', '.join(map(str, empty[:10]))} have no marker genes; fix or drop them.")
    species = t["species"].tolist() if "species" in t.columns else [species_of(g) for g in genes]
    tissues = [None if (x is None or (not isinstance(x, str) and pd.isna(x))) else str(x) for x in t["tissue"]]
    return t, genes, species, tissues


def plot_means(summary: pd.DataFrame, *, name: str, path: str | Path | None = None, title: str | None = None):
    """Grouped bar plot of mean agreement per dataset (and overall) for this method and the
    published ones. Returns the matplotlib figure; saves it as PNG when ``path`` is given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    methods = [name] + [m for m in PUBLISHED_METHODS if m in summary.columns and summary[m].notna().any()]
    datasets = list(summary.index)
    x = np.arange(len(datasets))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(datasets) + 4), 4.5))
    colors = plt.get_cmap("tab10")
    for k, m in enumerate(methods):
        values = summary[m].astype(float).to_numpy()
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, np.nan_to_num(values), width,
               label=m, color=colors(k), edgecolor="black" if m == name else "none", linewidth=0.8)
    ax.set_xticks(x, labels=[f"{d}\n(n={int(summary.loc[d, 'n'])})" for d in datasets], fontsize=8)
    ax.set_ylabel("mean agreement (1 full, 0.5 partial)")
    ax.set_ylim(0, 1.05)
    ax.axhline(summary.loc["all", name], color=colors(0), linestyle=":", linewidth=1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or f"GPTCelltype benchmark: {name} vs published methods (same rows)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def _write(result: BenchmarkResult, out: Path, *, rows_name: str, plot: bool) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"rows": out / rows_name, "summary": out / "summary.csv"}
    result.rows.to_csv(files["rows"], index=False)
    result.summary.to_csv(files["summary"])
    if plot:
        import matplotlib.pyplot as plt

        files["plot"] = out / "agreement.png"
        plt.close(plot_means(result.summary, name=result.name, path=files["plot"]))
    files["provenance"] = out / "provenance.json"
    files["provenance"].write_text(json.dumps(result.provenance, indent=2, default=str) + "\n")
    return files


def _failed(answer: dict[str, Any]) -> bool:
    err = answer.get("error")
    return isinstance(err, str) and bool(err)


__all__ = ["BenchmarkResult", "PUBLISHED_METHODS", "ROW_COLUMNS", "SCORE_COLUMNS", "marker_genes", "plot_means",
           "read_table", "run_benchmark", "score_column", "score_table", "species_of", "summarise"]
